"""Fréchet distance between feature statistics: the formula, and an fid a person can read.

`frechet_distance` is the pure formula (as in pytorch-fid); when the generated side has no
more rows than features and all are kept, its trace term comes exactly from the rows, an
n x n eigenvalue problem instead of a d x d matrix square root. `fid` applies it to two
`FeatureStats` (trainables/metrics/feature_stats.py), which accumulate the features;
the real side comes from the reference set (trainables/metrics/reference.py).

numpy and scipy only: the formula is checked and timed without torch or an embedding.
"""
from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

import numpy as np
from scipy import linalg

if TYPE_CHECKING:  # the statistics' type only; importing it at run time would load torch
    from trainables.metrics.feature_stats import FeatureStats


def _is_square_root(root: np.ndarray, matrix: np.ndarray, tolerance: float = 1e-4) -> bool:
    if not np.isfinite(root).all():
        return False
    return np.linalg.norm(root @ root - matrix) <= tolerance * max(np.linalg.norm(matrix), 1e-30)


def _trace_sqrt_from_rows(rows1: np.ndarray, sigma2: np.ndarray) -> float:
    """tr sqrt(sigma1 @ sigma2) where sigma1 is the covariance of `rows1` (n x d), exactly:
    the non-zero eigenvalues of sigma1 @ sigma2 are those of the symmetric n x n matrix
    B sigma2 B^T / (n - 1), B the centred rows. With n <= d this is an n x n eigenvalue
    problem instead of scipy's d x d Schur square root (docs/fid.md has the timings)."""
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


def readable(value: float, baseline: float | None) -> str:
    """"fid 504.8 = 137x real-vs-real": an fid a person can read, beside the real-data floor."""
    if not baseline or baseline <= 0:
        return f"fid {value:.4g}"
    return f"fid {value:.4g} = {value / baseline:.3g}x real-vs-real"
