"""Probes of what an FID embedding responds to, on synthetic techno mels.

A fixture of the tests and of `benchmarks/fid_sensitivity.py`, kept out of the product
code so nothing there comes to depend on it (tests import `benchmarks.probes`): a set of
real-looking mel images made without Ray (seeded synthetic tracks, cut into 5 s
segments), split by track into two disjoint halves, and the distortions a generator's failures look like: additive
noise, blur, and mode collapse (a few segments repeated).
"""
from functools import lru_cache

import numpy as np
import torch
from scipy import ndimage

from data import mel, synthetic
from data.spec import DatasetSpec, MelParams


@lru_cache(maxsize=4)  # tests in several modules share one rendering
def synthetic_mels(tracks: int = 48, seconds: float = 30.0, seed: int = 0,
                   sample_rate: int = 16000) -> tuple[np.ndarray, np.ndarray]:
    """(images (n, 1, 64, 64) float32 in [-1, 1], track index of each image)."""
    spec = DatasetSpec(mel=MelParams(sample_rate=sample_rate))
    length = int(round(spec.segment.seconds * sample_rate))
    images, owners = [], []
    for track in range(tracks):
        wave, _ = synthetic.render_track(seed * 100_003 + track, seconds, sample_rate)
        pieces = wave[: len(wave) // length * length].reshape(-1, length)
        images.append(mel.to_image(pieces, spec))
        owners += [track] * len(pieces)
    images, owners = np.concatenate(images)[:, None], np.asarray(owners)
    images.flags.writeable = owners.flags.writeable = False  # shared by the cache: read only
    return images, owners


def halves(images: np.ndarray, owners: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Two disjoint halves split by track (even / odd), so no track is in both."""
    even = owners % 2 == 0
    return torch.from_numpy(images[even].copy()), torch.from_numpy(images[~even].copy())


def add_noise(images: torch.Tensor, std: float, seed: int = 0) -> torch.Tensor:
    noise = torch.randn(images.shape, generator=torch.Generator().manual_seed(seed))
    return (images + std * noise).clamp(-1, 1)


def blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian blur over both mel bands and time, `sigma` in pixels."""
    blurred = ndimage.gaussian_filter(images.numpy(), sigma=(0, 0, sigma, sigma), mode="nearest")
    return torch.from_numpy(blurred)


def collapse(images: torch.Tensor, modes: int) -> torch.Tensor:
    """A generator that found `modes` outputs: that many segments repeated to the same count."""
    picks = torch.arange(len(images)) % modes * (len(images) // modes)
    return images[picks]


def cases(other: torch.Tensor, noise=(0.05, 0.1, 0.2, 0.4), blur_sigmas=(0.5, 1.0, 2.0, 4.0),
          modes=(16, 4)) -> dict[str, torch.Tensor]:
    """Another real set, and that set noised, blurred and collapsed, by name."""
    found = {"real halves": other}
    found.update({f"noise {s}": add_noise(other, s) for s in noise})
    found.update({f"blur {s}": blur(other, s) for s in blur_sigmas})
    found.update({f"collapse {m}": collapse(other, m) for m in modes})
    return found


def sensitivity(embedding, real: torch.Tensor, other: torch.Tensor, **levels) -> dict[str, float]:
    """FID against `real` of each of `cases(other, **levels)`."""
    from trainables.metrics.feature_stats import feature_stats, in_batches
    from trainables.metrics.fid import fid
    real_stats = feature_stats(in_batches(real), embedding)
    return {name: fid(real_stats, feature_stats(in_batches(images), embedding), embedding.standardised)
            for name, images in cases(other, **levels).items()}
