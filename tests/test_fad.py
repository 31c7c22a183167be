"""FAD in musicnn's space: the wheel's TF checkpoint read without TensorFlow, the torch port
tags techno as techno, and the distance behaves (finite, near zero for two halves of one
real set, growing with noise). The "real" audio is the synthetic techno generator's."""
from functools import lru_cache

import numpy as np
import pytest
import torch

from data import synthetic
from trainables.metrics import embeddings, feature_stats, fid, musicnn, tf_checkpoint

RATE = musicnn.SAMPLE_RATE


@lru_cache(maxsize=1)
def _embedding() -> musicnn.MusicnnEmbedding:
    return embeddings.build("fad-musicnn")


def _techno(tracks: int, seconds: float = 6.0) -> tuple[np.ndarray, np.ndarray]:
    """3 s clips of seeded synthetic techno tracks, and each clip's track."""
    clips, owners = [], []
    for track in range(tracks):
        wave, _ = synthetic.render_track(track, seconds, RATE)
        pieces = wave[: len(wave) // (3 * RATE) * 3 * RATE].reshape(-1, 3 * RATE)
        clips.append(pieces)
        owners += [track] * len(pieces)
    return np.concatenate(clips), np.asarray(owners)


def _stats(rows: torch.Tensor) -> feature_stats.FeatureStats:
    stats = feature_stats.RunningStats(rows.shape[1])
    stats.add(rows.double().numpy())
    return stats.result()


def test_the_wheels_checkpoint_is_read_without_tensorflow():
    weights = tf_checkpoint.read(f"{musicnn.checkpoint_prefix()}/")
    assert weights["conv2d/kernel"].shape == (7, 38, 1, 204)  # timbral 7 x 0.4 * 96 filters
    assert weights["conv2d_5/kernel"].shape == (7, 561, 1, 64)  # mid-end over the 561 front-end maps
    assert weights["dense_1/kernel"].shape == (200, len(musicnn.MTT_TAGS))
    assert all(np.isfinite(w).all() for w in weights.values())


def test_the_port_tags_techno_as_techno_and_noise_not():
    clips, _ = _techno(2)
    techno = _embedding().tags(clips, RATE).mean(axis=0)
    top = [musicnn.MTT_TAGS[i] for i in np.argsort(-techno)[:3]]
    assert "techno" in top, top
    noise = np.random.default_rng(0).normal(0, 0.3, (2, 3 * RATE)).astype(np.float32)
    noise_tags = _embedding().tags(noise, RATE).mean(axis=0)
    assert noise_tags[musicnn.MTT_TAGS.index("techno")] < techno[musicnn.MTT_TAGS.index("techno")] / 3


@pytest.mark.slow
def test_fad_is_near_zero_for_real_halves_and_grows_with_noise():
    clips, owners = _techno(16)
    even, odd = clips[owners % 2 == 0], clips[owners % 2 == 1]  # no track in both halves
    embed = _embedding().embed_audio
    reference = _stats(embed(even, RATE))
    rng = np.random.default_rng(0)
    scores = {std: fid.fid(reference, _stats(embed((odd + std * rng.standard_normal(odd.shape)).astype(np.float32),
                                                   RATE)), standardised=False)
              for std in (0.0, 0.03, 0.3)}
    assert all(np.isfinite(v) and v >= 0 for v in scores.values()), scores
    assert scores[0.0] < scores[0.03] / 3 < scores[0.3] / 3, scores


def test_mel_images_go_through_the_projects_inversion_and_resampling():
    from data import mel
    from data.spec import DatasetSpec
    spec = DatasetSpec()
    wave, _ = synthetic.render_track(0, spec.segment.seconds, spec.mel.sample_rate)
    image = torch.from_numpy(mel.to_image(wave[None], spec)).unsqueeze(1)
    features = _embedding()(image)
    assert features.shape == (1, 200) and torch.isfinite(features).all()
    # the same as inverting by hand (Griffin-Lim's phases seeded alike) and embedding the audio
    audio = mel.to_audio(image[0, 0].numpy(), spec, 32, seed=0)[None]
    assert torch.allclose(features, _embedding().embed_audio(audio, spec.mel.sample_rate), atol=1e-4)
    assert torch.equal(features, _embedding()(image))  # the same mel, the same score
