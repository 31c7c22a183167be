"""`random-conv`: a fixed, randomly initialised convolutional network, the cheapest embedding
(not the default: how it ranks real music is in docs/fid.md, benchmarks/metric_agreement.py)."""
import numpy as np
import torch
from torch.nn import functional as F

from trainables.metrics.embedding import Embedding


class RandomConvEmbedding(Embedding):
    """Mean and spread of every layer's activations, for three stride-2 3x3 conv layers.

    Narrow layers: a low-dimensional feature keeps the estimator's bias low at a few hundred
    samples, and FID grows faster with noise, blur and mode collapse than with wide ones
    (benchmarks/fid_sensitivity.py on synthetic techno mels). The first layer's kernels
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
