"""Fréchet distance between feature statistics, and the real-data statistics cache.

`frechet_distance` is the pure formula (as in pytorch-fid); when the generated side has no
more rows than features and all are kept, its trace term comes exactly from the rows, an
n x n eigenvalue problem instead of a d x d matrix square root. Features are accumulated in
float64 as running sums (`RunningStats`), never all in memory; a bounded sample of rows
is kept beside them for KID and density/coverage, which need feature vectors.

`real_vs_real` is the fid a perfect generator would score: held-out real images against
the same reference, cached beside it; `readable` shows an fid as a multiple of it.

Real-data statistics are computed once per (dataset fingerprint, embedding, sample
count, seed) and cached next to the dataset in `fid_stats/`. A file lock makes trials
that start together wait for the one computing them instead of repeating the work, and
the file is written under a temporary name and moved into place, so no reader ever sees
half of it.
"""
import fcntl
import json
import os
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from scipy import linalg

from trainables.metrics.embedding import Embedding

# Feature rows kept for KID and density/coverage. KID's subsets hold 1,000 rows at most;
# 5,000 Inception rows are 40 MB.
MAX_KEPT_ROWS = 5000


def _is_square_root(root: np.ndarray, matrix: np.ndarray, tolerance: float = 1e-4) -> bool:
    if not np.isfinite(root).all():
        return False
    return np.linalg.norm(root @ root - matrix) <= tolerance * max(np.linalg.norm(matrix), 1e-30)


def _trace_sqrt_from_rows(rows1: np.ndarray, sigma2: np.ndarray) -> float:
    """tr sqrt(sigma1 @ sigma2) where sigma1 is the covariance of `rows1` (n x d), exactly:
    the non-zero eigenvalues of sigma1 @ sigma2 are those of the symmetric n x n matrix
    B sigma2 B^T / (n - 1), B the centred rows. With n <= d this is an n x n eigenvalue
    problem instead of scipy's d x d Schur square root: 0.16 s against 20 s for 256
    Inception rows (2,048 features) here, the same trace to 1e-7."""
    centred = rows1 - rows1.mean(axis=0)
    inner = centred @ sigma2 @ centred.T / (len(rows1) - 1)
    return float(np.sqrt(np.maximum(linalg.eigvalsh(inner), 0.0)).sum())


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray,
                     eps: float = 1e-6, rows1: np.ndarray | None = None) -> float:
    """`rows1`: every feature row behind (mu1, sigma1), when there are no more of them than
    features: the trace term is then computed from them (`_trace_sqrt_from_rows`)."""
    diff = mu1 - mu2
    if rows1 is not None:
        return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * _trace_sqrt_from_rows(rows1, sigma2))
    with warnings.catch_warnings():
        # a singular product is expected with few samples; it is handled just below
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        product = sigma1 @ sigma2
        covmean = linalg.sqrtm(product)
    if not _is_square_root(covmean, product):
        # singular product: nudge both covariances off the singular point and retry
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError(f"FID: the matrix square root has an imaginary component of "
                             f"{np.max(np.abs(covmean.imag)):.3g}, so the feature statistics are degenerate")
        covmean = covmean.real
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


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


def fid(real: FeatureStats, fake: FeatureStats, standardised: bool) -> float:
    """FID of `fake` against `real`; `standardised` measures it in units of the real
    features' spread (the offline embeddings, whose feature scales are arbitrary)."""
    # every fake row kept and no more rows than features (Inception's 2,048 at up to 2,048
    # samples): the exact trace from the rows, far cheaper than the matrix square root
    rows = fake.sample.astype(np.float64) if fake.count == len(fake.sample) <= len(fake.mu) else None
    if not standardised:
        return frechet_distance(fake.mu, fake.sigma, real.mu, real.sigma, rows1=rows)
    centre, scale = real.standardiser()
    inv = 1.0 / scale
    return frechet_distance((fake.mu - centre) * inv, fake.sigma * np.outer(inv, inv),
                            np.zeros_like(centre), real.sigma * np.outer(inv, inv),
                            rows1=None if rows is None else rows * inv)


def cache_path(dataset_path: str | os.PathLike, fingerprint: str, embedding: Embedding,
               count: int, seed: int) -> Path:
    return Path(dataset_path) / "fid_stats" / f"{fingerprint}-{embedding.cache_key}-n{count}-seed{seed}.npz"


def _load(path: Path) -> FeatureStats:
    with np.load(path) as saved:
        return FeatureStats(saved["mu"], saved["sigma"], saved["sample"], int(saved["count"]))


def _compute(images: torch.Tensor, embedding: Embedding, count: int, seed: int) -> FeatureStats:
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))[:count]
    return feature_stats((images[chunk.to(images.device)] for chunk in order.split(256)), embedding)


def _from_disk(dataset_path: str | os.PathLike, count: int, seed: int, device: torch.device) -> torch.Tensor:
    from data.dataset import load_mels  # a seeded subset of the built dataset, read row by row
    return torch.from_numpy(load_mels(dataset_path, max_segments=count, seed=seed)).unsqueeze(1).to(device)


def real_stats(dataset_path: str | os.PathLike, fingerprint: str, embedding: Embedding, count: int,
               seed: int = 0, images: torch.Tensor | None = None,
               device: torch.device = torch.device("cpu")) -> FeatureStats:
    """Statistics of `count` seeded real images, from the cache next to the dataset.

    On a miss the images are a seeded subset of `images` when given, else of the whole
    dataset on disk: a trial that trains on a subset (training.max_segments) is still
    scored against the same reference as every other trial of the dataset.
    """
    path = cache_path(dataset_path, fingerprint, embedding, count, seed)
    if path.exists():
        return _load(path)
    path.parent.mkdir(exist_ok=True)
    with open(path.with_name(f".{path.stem}.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a trial that started at the same time computes them
        if path.exists():
            return _load(path)
        if images is None:
            images = _from_disk(dataset_path, count, seed, device)
        stats = _compute(images, embedding, count, seed)
        tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.npz")
        np.savez(tmp, mu=stats.mu, sigma=stats.sigma, sample=stats.sample, count=stats.count)
        os.replace(tmp, path)
    return stats


def _held_out(dataset_path: str | os.PathLike, count: int, seed: int, images: torch.Tensor | None) -> torch.Tensor:
    """Up to `count` seeded real images that are not in the reference subset of (count, seed)."""
    from data.dataset import load_mels, subset_indices
    every = images if images is not None else torch.from_numpy(load_mels(dataset_path)).unsqueeze(1)
    if images is not None:  # the reference was drawn from `images` by _compute's permutation
        used = torch.randperm(len(every), generator=torch.Generator().manual_seed(seed))[:count].numpy()
    else:  # the reference was drawn by load_mels(max_segments=count, seed=seed)
        used = subset_indices(len(every), count, seed)
    rest = np.setdiff1d(np.arange(len(every)), used)
    picks = np.sort(np.random.default_rng(seed + 1).permutation(rest)[:count])
    return every[torch.from_numpy(picks)]


def real_vs_real(dataset_path: str | os.PathLike, fingerprint: str, embedding: Embedding, count: int,
                 seed: int = 0, device: torch.device = torch.device("cpu"),
                 images: torch.Tensor | None = None) -> dict:
    """{"fid": held-out real images against the reference, "count": how many were held out}.

    The real-data floor of an fid: trials are scored against `real_stats(..., count, seed)`,
    and a generator as good as the data scores this. Fewer than `count` are held out when the
    dataset is smaller than twice `count` (FID grows as samples shrink, so the count is kept
    beside the value). Cached beside the reference, so each sweep of a dataset computes it once.
    """
    path = cache_path(dataset_path, fingerprint, embedding, count, seed).with_suffix(".real-vs-real.json")
    if path.exists():
        return json.loads(path.read_text())
    held_out = _held_out(dataset_path, count, seed, images)
    if len(held_out) >= count // 2 and len(held_out) >= 2:
        reference = real_stats(dataset_path, fingerprint, embedding, count, seed, images=images, device=device)
    else:  # the reference takes (nearly) the whole dataset: two disjoint halves of it instead
        from data.dataset import load_mels
        every = images if images is not None else torch.from_numpy(load_mels(dataset_path)).unsqueeze(1)
        order = torch.randperm(len(every), generator=torch.Generator().manual_seed(seed))
        half = len(every) // 2
        assert half >= 2, f"the dataset at {dataset_path} has too few segments for a real-vs-real baseline"
        reference = feature_stats(in_batches(every[order[:half]].to(device)), embedding)
        held_out = every[order[half:2 * half]]
    stats = feature_stats(in_batches(held_out.to(device)), embedding)
    result = {"fid": fid(reference, stats, embedding.standardised), "count": len(held_out)}
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(result))
    os.replace(tmp, path)
    return result


def readable(value: float, baseline: float | None) -> str:
    """"fid 504.8 = 137x real-vs-real": an fid a person can read, beside the real-data floor."""
    if not baseline or baseline <= 0:
        return f"fid {value:.4g}"
    return f"fid {value:.4g} = {value / baseline:.3g}x real-vs-real"
