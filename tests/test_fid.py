"""FID: exact answers for the formula, and a real-statistics cache that is hit."""
import numpy as np
import pytest
import torch

from trainables import embeddings, fid


def test_identical_statistics_give_zero():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(200, 8))
    mu, sigma = a.mean(0), np.cov(a, rowvar=False)
    assert fid.frechet_distance(mu, sigma, mu, sigma) == pytest.approx(0.0, abs=1e-6)


def test_equal_covariances_give_the_squared_mean_distance():
    rng = np.random.default_rng(1)
    sigma = np.cov(rng.normal(size=(300, 6)), rowvar=False)
    mu1, mu2 = rng.normal(size=6), rng.normal(size=6)
    assert fid.frechet_distance(mu1, sigma, mu2, sigma) == pytest.approx(np.sum((mu1 - mu2) ** 2), rel=1e-6)


def test_running_stats_match_numpy():
    rng = np.random.default_rng(2)
    rows = rng.normal(size=(101, 5))
    stats = fid.RunningStats(5)
    for chunk in np.array_split(rows, 4):
        stats.add(chunk)
    mu, cov = stats.mean_cov()
    assert np.allclose(mu, rows.mean(0)) and np.allclose(cov, np.cov(rows, rowvar=False))


def test_default_embedding_is_the_same_on_every_build():
    images = torch.rand(4, 1, 64, 64) * 2 - 1
    a, b = embeddings.build("random-conv"), embeddings.build("random-conv")
    assert torch.equal(a(images), b(images))
    assert a(images).shape == (4, a.dim)


def test_real_statistics_are_cached_next_to_the_dataset(tmp_path, monkeypatch):
    images = torch.rand(64, 1, 64, 64) * 2 - 1
    embedding = embeddings.build("random-conv")
    calls = []
    real = fid.feature_stats
    monkeypatch.setattr(fid, "feature_stats", lambda *a, **k: calls.append(1) or real(*a, **k))
    mu1, s1 = fid.real_stats(tmp_path, images, embedding, 32)
    mu2, s2 = fid.real_stats(tmp_path, images, embedding, 32)
    assert len(calls) == 1, "the second call reads the cache"
    assert np.array_equal(mu1, mu2) and np.array_equal(s1, s2)
    assert [p.name for p in (tmp_path / "fid_stats").iterdir()] == ["random-conv-n32-seed0.npz"]
    fid.real_stats(tmp_path, images, embedding, 48)
    assert len(calls) == 2, "another sample count is another entry"
