"""Image embeddings that FID and KID are measured in, registered by name.

- `random-conv` (default, offline): a fixed, randomly initialised convolutional network
  whose weights come from a seeded numpy generator, so the same features come out on
  every machine and torch version with no download.
- `mel-stats` (offline cross-check): hand-crafted per-band statistics of the mel image:
  level and spread over time, and the size of frame-to-frame changes.
- `inception`: the standard FID Inception-v3 from a TorchScript file on disk
  (`trainables/metrics/inception.py`); its values are comparable with published FIDs.

The offline embeddings' features have arbitrary scales, so they are `standardised`: the
metrics are computed on features divided by the real data's per-feature spread (see
`trainables/metrics/fid.py`), which weighs every feature alike and makes values read well. Their
values rank models trained on the same dataset; they are not comparable with Inception FIDs.
"""
import hashlib
import json

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F


class Embedding(nn.Module):
    name: str
    dim: int
    standardised: bool  # metrics in units of the real features' spread

    def settings(self) -> dict:
        """What fixes the features: part of the real-statistics cache key."""
        return {}

    @property
    def cache_key(self) -> str:
        digest = hashlib.md5(json.dumps(self.settings(), sort_keys=True).encode()).hexdigest()[:8]
        return f"{self.name}-{digest}"


class RandomConvEmbedding(Embedding):
    """Mean and spread of every layer's activations, for three stride-2 3x3 conv layers.

    Measured on synthetic techno mels (benchmarks/fid_sensitivity.py), narrow layers beat
    wide ones: with 256 samples a 48-dimensional feature keeps the estimator's bias low,
    and FID grows faster with noise, blur and mode collapse. The first layer's kernels
    have zero mean so they respond to texture (noise, blur) rather than loudness.
    """
    name = "random-conv"
    standardised = True

    def __init__(self, seed: int = 1234, channels: tuple[int, ...] = (8, 8, 8)):
        super().__init__()
        self.seed, self.channels = seed, tuple(channels)
        rng = np.random.default_rng(seed)
        weights, c_in = [], 1
        for layer, c_out in enumerate(channels):
            w = rng.normal(0, np.sqrt(2.0 / (c_in * 9)), (c_out, c_in, 3, 3))  # He: activations stay in range
            if layer == 0:
                w -= w.mean(axis=(1, 2, 3), keepdims=True)
            weights.append(torch.from_numpy(w.astype(np.float32)))
            c_in = c_out
        for i, w in enumerate(weights):
            self.register_buffer(f"w{i}", w)
        self.dim = 2 * sum(channels)

    def settings(self) -> dict:
        return {"seed": self.seed, "channels": list(self.channels), "version": 2}

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x, features = images.float(), []
        for i in range(len(self.channels)):
            x = F.relu(F.conv2d(x, getattr(self, f"w{i}"), stride=2, padding=1))
            features += [x.mean(dim=(2, 3)), x.std(dim=(2, 3))]
        return torch.cat(features, dim=1)


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


def _inception(weights: str | None = None) -> Embedding:
    from trainables.metrics.inception import InceptionEmbedding  # loads a large file: only when asked for
    return InceptionEmbedding(weights)


BUILDERS = {
    RandomConvEmbedding.name: lambda weights=None: RandomConvEmbedding(),
    MelStatsEmbedding.name: lambda weights=None: MelStatsEmbedding(),
    "inception": _inception,
}


def build(name: str, inception_weights: str | None = None) -> Embedding:
    assert name in BUILDERS, f"unknown embedding {name!r}"
    return BUILDERS[name](inception_weights)
