"""Feature statistics, accumulated batch by batch, and their on-disk cache.

Features are accumulated in float64 as running sums (`RunningStats`), never all in
memory; a bounded sample of rows is kept beside them for KID and density/coverage, which
need feature vectors.

Real-data statistics are computed once per (dataset fingerprint, embedding, sample count,
seed) and cached next to the dataset in `fid_stats/` (`cache_path`, `cached`). A file
lock makes trials that start together wait for the one computing them instead of
repeating the work, and the file is written under a temporary name and moved into place,
so no reader ever sees half of it. A process keeps the last files it read (`_read`, keyed by
the file's path, size and modification time), so a worker that runs trial after trial reads
them once. Which real images they are is the reference set's business
(trainables/metrics/reference.py).
"""
import fcntl
import functools
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from trainables.metrics.embedding import Embedding

# Feature rows kept for KID and density/coverage. KID's subsets hold 1,000 rows at most;
# 5,000 Inception rows are 40 MB.
MAX_KEPT_ROWS = 5000


@dataclass(frozen=True)
class FeatureStats:
    mu: np.ndarray        # (dim,) float64
    sigma: np.ndarray     # (dim, dim) float64
    sample: np.ndarray    # (rows <= MAX_KEPT_ROWS, dim) float32: the first rows seen
    count: int

    def standardiser(self) -> tuple[np.ndarray, np.ndarray]:
        """Centre and scale that give these (real) features zero mean and unit spread."""
        return self.mu, np.sqrt(np.maximum(np.diagonal(self.sigma), 1e-12))


class RunningStats:
    """Mean and covariance of feature rows, accumulated in float64 on the device the rows
    come from (a GPU's features are not copied to the host batch by batch), plus a bounded
    sample of rows."""

    def __init__(self, dim: int, keep: int = MAX_KEPT_ROWS):
        self.n, self.keep, self.dim = 0, keep, dim
        self.total: torch.Tensor | None = None
        self.outer: torch.Tensor | None = None
        self.kept: list[torch.Tensor] = []

    def add(self, features) -> None:
        """`features`: (rows, dim), a tensor on any device or a numpy array."""
        features = torch.as_tensor(features)
        if self.total is None:
            self.total = torch.zeros(self.dim, dtype=torch.float64, device=features.device)
            self.outer = torch.zeros(self.dim, self.dim, dtype=torch.float64, device=features.device)
        room = self.keep - sum(len(k) for k in self.kept)
        if room > 0:
            self.kept.append(features[:room].float())
        features = features.to(device=self.total.device, dtype=torch.float64)
        self.n += len(features)
        self.total += features.sum(dim=0)
        self.outer += features.T @ features

    def result(self) -> FeatureStats:
        assert self.n >= 2, "need at least two feature rows for a covariance"
        total, outer = self.total.cpu().numpy(), self.outer.cpu().numpy()
        mu = total / self.n
        cov = (outer - self.n * np.outer(mu, mu)) / (self.n - 1)
        return FeatureStats(mu, cov, torch.cat(self.kept).cpu().numpy(), self.n)


@torch.no_grad()
def feature_stats(batches: Iterable[torch.Tensor], embedding: Embedding) -> FeatureStats:
    """Statistics of the embedding's features over image batches (an iterable, so the
    images need not all exist at once)."""
    stats = RunningStats(embedding.dim)
    for batch in batches:
        stats.add(embedding(batch))
    return stats.result()


def in_batches(images: torch.Tensor, batch_size: int = 256) -> Iterable[torch.Tensor]:
    return (images[start:start + batch_size] for start in range(0, len(images), batch_size))


def cache_path(dataset_path: str | os.PathLike, fingerprint: str, embedding: Embedding,
               count: int, seed: int) -> Path:
    return Path(dataset_path) / "fid_stats" / f"{fingerprint}-{embedding.cache_key}-n{count}-seed{seed}.npz"


def _load(path: Path) -> FeatureStats:
    stat = path.stat()
    return _read(str(path), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=4)
def _read(path: str, size: int, mtime_ns: int) -> FeatureStats:
    """The file's statistics, read-only: the trials that share them cannot change them."""
    with np.load(path) as saved:
        arrays = [saved[key] for key in ("mu", "sigma", "sample")]
        for array in arrays:
            array.setflags(write=False)
        return FeatureStats(*arrays, int(saved["count"]))


def cached(path: Path, compute: Callable[[], FeatureStats]) -> FeatureStats:
    """The statistics saved at `path`, else `compute()`'s, saved there: computed once however
    many trials ask at the same time."""
    if path.exists():
        return _load(path)
    path.parent.mkdir(exist_ok=True)
    with open(path.with_name(f".{path.stem}.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a trial that started at the same time computes them
        if path.exists():
            return _load(path)
        stats = compute()
        tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.npz")
        np.savez(tmp, mu=stats.mu, sigma=stats.sigma, sample=stats.sample, count=stats.count)
        os.replace(tmp, path)
    return stats
