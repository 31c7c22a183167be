"""`mel-stats`: hand-crafted per-band statistics of the mel image, an offline cross-check."""
import torch
from torch.nn import functional as F

from trainables.metrics.embedding import Embedding


class MelStatsEmbedding(Embedding):
    """Per mel-band group: mean and spread over time, and mean absolute frame difference.

    The difference is taken at full resolution before bands are pooled, so fine texture
    (noise, blur) shows; 16 band groups keep the dimension at 48.
    """
    name = "mel-stats"
    standardised = True

    def __init__(self, bands: int = 16):
        super().__init__()
        self.bands = bands
        self.dim = 3 * bands

    def settings(self) -> dict:
        return {"bands": self.bands, "version": 1}

    def _pool_bands(self, x: torch.Tensor) -> torch.Tensor:
        # (n, mels, frames) -> (n, bands, frames): average neighbouring mel bands
        return F.adaptive_avg_pool1d(x.transpose(1, 2), self.bands).transpose(1, 2)

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images.float()[:, 0]
        level = self._pool_bands(x)
        change = self._pool_bands((x[:, :, 1:] - x[:, :, :-1]).abs())
        return torch.cat([level.mean(dim=2), level.std(dim=2), change.mean(dim=2)], dim=1)
