"""Density and coverage (Naeem et al. 2020): fidelity and diversity of generated samples.

Each real feature vector gets a ball reaching its k-th nearest real neighbour (a point at
exactly that distance is outside, as in the authors' prdc). Density
counts how many real balls hold each fake (about 1 when fakes look like real data);
coverage is the share of real balls that hold at least one fake, so it falls when a
generator collapses onto a few modes, which FID shows only weakly at small sample counts.

In torch, float64, on the device that holds the features (numpy arrays are taken too).
"""
import torch


def _distances(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    squared = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T
    return squared.clamp_min(0).sqrt()


def _rows(features, device=None) -> torch.Tensor:
    return torch.as_tensor(features).to(device=device, dtype=torch.float64)


def real_radii(real, k: int = 5) -> torch.Tensor:
    """Distance from each real row to its k-th nearest real neighbour (itself excluded)."""
    real = _rows(real)
    assert len(real) > k, f"density and coverage need more than k={k} real rows"
    # the smallest (k + 1): the first is the row itself
    return _distances(real, real).topk(k + 1, dim=1, largest=False).values[:, k]


def density_coverage(real, fake, k: int = 5, radii=None) -> tuple[float, float]:
    """`radii`: `real_radii(real, k)`, when the caller keeps them across evaluations."""
    real = _rows(real)
    fake = _rows(fake, real.device)
    radii = real_radii(real, k) if radii is None else _rows(radii, real.device)
    # strictly inside, as the reference implementation (clovaai/generative-evaluation-prdc) counts
    inside = _distances(real, fake) < radii[:, None]  # (real, fake)
    density = inside.sum().item() / (k * len(fake))
    coverage = inside.any(dim=1).double().mean().item()
    return float(density), float(coverage)
