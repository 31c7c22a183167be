"""FID, KID, density/coverage: exact answers, and a real-statistics cache that is hit."""
import numpy as np
import pytest
import torch

from trainables.metrics import embeddings, feature_stats, fid, reference
from trainables.metrics.coverage import density_coverage
from trainables.metrics.kid import kernel_inception_distance


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


def test_a_point_mass_against_a_gaussian_gives_mean_distance_plus_trace():
    # a fully collapsed set: its covariance is zero, the product singular
    rng = np.random.default_rng(2)
    sigma = np.cov(rng.normal(size=(300, 6)), rowvar=False)
    mu1, mu2 = rng.normal(size=6), rng.normal(size=6)
    expected = np.sum((mu1 - mu2) ** 2) + np.trace(sigma)
    assert fid.frechet_distance(mu1, np.zeros((6, 6)), mu2, sigma) == pytest.approx(expected, rel=1e-6)


def test_rank_deficient_covariance_gives_a_finite_distance():
    rng = np.random.default_rng(3)
    few, many = rng.normal(size=(5, 20)), rng.normal(size=(400, 20))
    value = fid.frechet_distance(few.mean(0), np.cov(few, rowvar=False), many.mean(0), np.cov(many, rowvar=False))
    assert np.isfinite(value) and value > 0


def test_a_complex_square_root_is_a_clear_error():
    with pytest.raises(ValueError, match="imaginary component"):
        fid.frechet_distance(np.zeros(2), np.diag([1.0, -1.0]), np.zeros(2), np.eye(2))


def test_the_formula_needs_no_torch():
    # fid.py is the formula alone (numpy, scipy); statistics and the reference live beside it
    import subprocess
    import sys
    from tests.helpers import ROOT
    code = "import sys, trainables.metrics.fid; print(sorted({'torch', 'data'} & set(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.stdout.strip() == "[]", done.stderr[-2000:]


def test_fewer_rows_than_features_give_the_square_root_trace_from_the_rows():
    # 30 fake rows of 40 features (Inception's case: a few hundred samples, 2,048 features):
    # fid() takes the trace term from the rows, which must equal the eigenvalue definition
    rng = np.random.default_rng(5)
    real_rows, fake_rows = rng.normal(size=(300, 40)), rng.normal(size=(30, 40)) * 1.5 + 0.2
    stats = [feature_stats.RunningStats(40) for _ in range(2)]
    stats[0].add(real_rows), stats[1].add(fake_rows)
    real, fake = (s.result() for s in stats)
    assert fake.count == len(fake.sample) < 40
    eigenvalues = np.linalg.eigvals(fake.sigma @ real.sigma).real
    trace = np.sqrt(np.maximum(eigenvalues, 0)).sum()
    expected = np.sum((fake.mu - real.mu) ** 2) + np.trace(fake.sigma) + np.trace(real.sigma) - 2 * trace
    assert fid.fid(real, fake, standardised=False) == pytest.approx(expected, rel=1e-7)
    # and the same as the matrix square root where that is exact (more rows than features)
    many = rng.normal(size=(80, 40))
    sigma = np.cov(many, rowvar=False)
    with_rows = fid.frechet_distance(many.mean(0), sigma, real.mu, real.sigma, rows1=many)
    assert with_rows == pytest.approx(fid.frechet_distance(many.mean(0), sigma, real.mu, real.sigma), rel=1e-7)


def test_running_stats_match_numpy_and_keep_a_bounded_sample():
    rng = np.random.default_rng(2)
    rows = rng.normal(size=(101, 5))
    stats = feature_stats.RunningStats(5, keep=30)
    for chunk in np.array_split(rows, 4):
        stats.add(chunk)
    result = stats.result()
    assert np.allclose(result.mu, rows.mean(0)) and np.allclose(result.sigma, np.cov(rows, rowvar=False))
    assert result.count == 101 and np.allclose(result.sample, rows[:30])


def test_standardised_fid_is_fid_of_standardised_features():
    rng = np.random.default_rng(4)
    scale = np.array([1e-3, 1.0, 1e3])
    real, fake = rng.normal(size=(500, 3)) * scale, (rng.normal(size=(400, 3)) + 0.3) * scale
    stats = [feature_stats.RunningStats(3) for _ in range(2)]
    stats[0].add(real), stats[1].add(fake)
    real_s, fake_s = (s.result() for s in stats)
    z_real, z_fake = ((x - real_s.mu) / np.sqrt(np.diag(real_s.sigma)) for x in (real, fake))
    direct = fid.frechet_distance(z_fake.mean(0), np.cov(z_fake, rowvar=False), z_real.mean(0), np.cov(z_real, rowvar=False))
    assert fid.fid(real_s, fake_s, standardised=True) == pytest.approx(direct, rel=1e-9)


def test_kid_on_whole_sets_is_the_unbiased_mmd():
    rng = np.random.default_rng(5)
    real, fake = rng.normal(size=(60, 4)), rng.normal(size=(60, 4)) + 0.5
    k = lambda a, b: (a @ b.T / 4 + 1) ** 3
    off_diagonal = lambda a: (k(a, a).sum() - np.trace(k(a, a))) / (60 * 59)
    expected = off_diagonal(fake) + off_diagonal(real) - 2 * k(fake, real).mean()
    assert kernel_inception_distance(real, fake, subsets=3, subset_size=60) == pytest.approx(expected)
    # subsets of 40 average estimates around the same value
    assert kernel_inception_distance(real, fake, subsets=50, subset_size=40) == pytest.approx(expected, rel=0.2)


def test_kid_from_the_whole_kernels_equals_stylegan3s_per_subset_loop():
    """The kernels are computed once and each subset read from them: the same subsets, in
    the same order, as StyleGAN3's loop of three new products per subset, the same value."""
    rng = np.random.default_rng(8)
    real, fake = rng.normal(size=(90, 7)), rng.normal(size=(70, 7)) * 1.3 + 0.2
    k = lambda a, b: (a @ b.T / 7 + 1) ** 3

    def mmd(x, y):
        m = len(x)
        return ((k(x, x).sum() - np.trace(k(x, x)) + k(y, y).sum() - np.trace(k(y, y))) / (m * (m - 1))
                - 2 * k(x, y).mean())
    draw = np.random.default_rng(3)
    loop = np.mean([mmd(fake[draw.choice(70, 50, replace=False)], real[draw.choice(90, 50, replace=False)])
                    for _ in range(12)])
    assert kernel_inception_distance(real, fake, subsets=12, subset_size=50, seed=3) == pytest.approx(loop, rel=1e-10)
    # tensors are taken as they are, numpy arrays too
    assert kernel_inception_distance(torch.from_numpy(real).float(), torch.from_numpy(fake).float(), subsets=12,
                                     subset_size=50, seed=3) == pytest.approx(loop, rel=1e-5)


def test_density_and_coverage_match_the_reference_on_a_set_worked_by_hand():
    """Naeem et al.'s prdc: radius = distance to the k-th nearest real neighbour; a fake counts
    for a real ball when its distance is strictly below the radius. Reals on a line at 0, 1, 3, 7
    (k = 1: radii 1, 1, 2, 4), fakes at 2, 5, 11. Strictly inside: fake 2 in ball 3 (1 < 2),
    fake 5 in ball 7 (2 < 4); on the boundary, not counted: fake 2 of ball 1, fake 5 of ball 3,
    fake 11 of ball 7. density = 2 / (k * 3 fakes) = 2/3; coverage = 2 of 4 balls = 1/2
    (with <= it would be 5/3 and 3/4)."""
    line = lambda *xs: np.array([[x, 0.0] for x in xs])
    density, coverage = density_coverage(line(0, 1, 3, 7), line(2, 5, 11), k=1)
    assert density == pytest.approx(2 / 3, abs=1e-12)
    assert coverage == pytest.approx(1 / 2, abs=1e-12)


def test_kid_is_near_zero_for_one_distribution_and_grows_with_a_shift():
    rng = np.random.default_rng(6)
    real = rng.normal(size=(300, 8))
    same, shifted = rng.normal(size=(300, 8)), rng.normal(size=(300, 8)) + 1.0
    near = kernel_inception_distance(real, same, subsets=20, subset_size=100)
    far = kernel_inception_distance(real, shifted, subsets=20, subset_size=100)
    assert abs(near) < 0.1 * far


def test_coverage_falls_when_fakes_collapse():
    rng = np.random.default_rng(7)
    real, fresh = rng.normal(size=(200, 6)), rng.normal(size=(200, 6))
    collapsed = np.repeat(fresh[:3], 67, axis=0)[:200]
    density, coverage = density_coverage(real, fresh)
    _, collapsed_coverage = density_coverage(real, collapsed)
    assert 0.6 < density < 1.5 and coverage > 0.8
    assert collapsed_coverage < 0.1


def test_real_statistics_are_cached_per_fingerprint(tmp_path, monkeypatch):
    images = torch.rand(64, 1, 64, 64) * 2 - 1
    embedding = embeddings.build("random-conv")
    calls = []
    compute = reference._compute
    monkeypatch.setattr(reference, "_compute", lambda *a, **k: calls.append(1) or compute(*a, **k))
    first = reference.real_stats(tmp_path, "fp-a", embedding, 32, images=images)
    second = reference.real_stats(tmp_path, "fp-a", embedding, 32, images=images)
    assert len(calls) == 1, "the second call reads the cache"
    assert np.array_equal(first.mu, second.mu) and np.array_equal(first.sigma, second.sigma)
    assert np.array_equal(first.sample, second.sample) and second.sample.shape == (32, embedding.dim)
    reference.real_stats(tmp_path, "fp-b", embedding, 32, images=images)
    assert len(calls) == 2, "another dataset fingerprint misses the cache"
    reference.real_stats(tmp_path, "fp-a", embedding, 48, images=images)
    assert len(calls) == 3, "another sample count is another entry"
    reference.real_stats(tmp_path, "fp-a", embeddings.build("mel-stats"), 32, images=images)
    assert len(calls) == 4, "another embedding is another entry"
    saved = sorted(p.name for p in (tmp_path / "fid_stats").iterdir() if not p.name.startswith("."))
    assert len(saved) == 4 and saved[0].startswith("fp-a-mel-stats-")
    assert not [p for p in (tmp_path / "fid_stats").iterdir() if ".tmp" in p.name], "no temporary file is left"


def test_trials_starting_together_compute_the_reference_once(tmp_path, monkeypatch):
    import threading
    import time
    images = torch.rand(32, 1, 64, 64) * 2 - 1
    embedding = embeddings.build("random-conv")
    calls = []
    compute = reference._compute

    def slow_compute(*args, **kwargs):
        calls.append(1)
        time.sleep(0.3)  # long enough for the other trial to arrive while this one works
        return compute(*args, **kwargs)

    monkeypatch.setattr(reference, "_compute", slow_compute)
    results = []
    trials = [threading.Thread(target=lambda: results.append(
        reference.real_stats(tmp_path, "fp", embedding, 32, images=images))) for _ in range(2)]
    for trial in trials:
        trial.start()
    for trial in trials:
        trial.join()
    assert len(calls) == 1 and len(results) == 2
    assert np.array_equal(results[0].sigma, results[1].sigma)
