"""Fréchet distance between feature statistics, and the real-data statistics cache.

`frechet_distance` is the pure formula (as in pytorch-fid). Features are accumulated in
float64 as running sums (`RunningStats`), never all in memory. Real-data statistics are
computed once per (dataset, embedding, sample count) and cached next to the dataset,
written to a temporary file and moved into place, so concurrent trials share them.
"""
import os
import warnings
from pathlib import Path

import numpy as np
import torch
from scipy import linalg

from trainables.embeddings import Embedding


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray,
                     eps: float = 1e-6) -> float:
    diff = mu1 - mu2
    with warnings.catch_warnings():
        # a singular product is expected with few samples; it is handled just below
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        covmean, _ = linalg.sqrtm(sigma1 @ sigma2, disp=False)
    if not np.isfinite(covmean).all():
        # singular product: nudge both covariances off the singular point and retry
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError(f"FID: imaginary component {np.max(np.abs(covmean.imag)):.3g} "
                             "is not negligible; the feature statistics are degenerate")
        covmean = covmean.real
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


class RunningStats:
    """Mean and covariance of feature rows, accumulated in float64."""

    def __init__(self, dim: int):
        self.n = 0
        self.total = np.zeros(dim)
        self.outer = np.zeros((dim, dim))

    def add(self, features: np.ndarray) -> None:
        features = features.astype(np.float64)
        self.n += len(features)
        self.total += features.sum(axis=0)
        self.outer += features.T @ features

    def mean_cov(self) -> tuple[np.ndarray, np.ndarray]:
        assert self.n >= 2, "need at least two feature rows for a covariance"
        mu = self.total / self.n
        cov = (self.outer - self.n * np.outer(mu, mu)) / (self.n - 1)
        return mu, cov


@torch.no_grad()
def feature_stats(images: torch.Tensor, embedding: Embedding, batch_size: int = 256):
    stats = RunningStats(embedding.dim)
    for start in range(0, len(images), batch_size):
        stats.add(embedding(images[start:start + batch_size].float()).cpu().numpy())
    return stats.mean_cov()


def real_stats(dataset_path: str | os.PathLike, images: torch.Tensor, embedding: Embedding,
               count: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Statistics of `count` seeded real images, from the cache next to the dataset."""
    count = min(count, len(images))
    cache = Path(dataset_path) / "fid_stats" / f"{embedding.name}-n{count}-seed{seed}.npz"
    if cache.exists():
        with np.load(cache) as saved:
            return saved["mu"], saved["sigma"]
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))[:count]
    mu, sigma = feature_stats(images[order], embedding)
    cache.parent.mkdir(exist_ok=True)
    tmp = cache.with_name(f".{cache.name}.{os.getpid()}.tmp.npz")
    np.savez(tmp, mu=mu, sigma=sigma)
    os.replace(tmp, cache)
    return mu, sigma
