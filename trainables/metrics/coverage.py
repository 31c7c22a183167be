"""Density and coverage (Naeem et al. 2020): fidelity and diversity of generated samples.

Each real feature vector gets a ball reaching its k-th nearest real neighbour. Density
counts how many real balls hold each fake (about 1 when fakes look like real data);
coverage is the share of real balls that hold at least one fake, so it falls when a
generator collapses onto a few modes, which FID shows only weakly at small sample counts.
"""
import numpy as np


def _distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = a.astype(np.float64), b.astype(np.float64)
    squared = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T
    return np.sqrt(np.maximum(squared, 0))


def real_radii(real: np.ndarray, k: int = 5) -> np.ndarray:
    """Distance from each real row to its k-th nearest real neighbour (itself excluded)."""
    assert len(real) > k, f"density and coverage need more than k={k} real rows"
    # column 0 after sorting is the row itself
    return np.sort(_distances(real, real), axis=1)[:, k]


def density_coverage(real: np.ndarray, fake: np.ndarray, k: int = 5,
                     radii: np.ndarray | None = None) -> tuple[float, float]:
    """`radii`: `real_radii(real, k)`, when the caller keeps them across evaluations."""
    radii = real_radii(real, k) if radii is None else radii
    inside = _distances(real, fake) <= radii[:, None]  # (real, fake)
    density = inside.sum() / (k * len(fake))
    coverage = inside.any(axis=1).mean()
    return float(density), float(coverage)
