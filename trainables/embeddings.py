"""Image embeddings that FID is measured in, registered by name.

`random-conv`: the offline default. A fixed, randomly initialised convolutional network
whose weights come from a seeded numpy generator, so the same features come out on every
machine and torch version with no download. Its FID values are not comparable with
published Inception FIDs; they rank models trained on the same data.
"""
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F


class Embedding(nn.Module):
    name: str
    dim: int


class RandomConvEmbedding(Embedding):
    name = "random-conv"

    def __init__(self, seed: int = 1234, channels: tuple[int, ...] = (16, 32, 64)):
        super().__init__()
        rng = np.random.default_rng(seed)
        weights, c_in = [], 1
        for c_out in channels:
            std = np.sqrt(2.0 / (c_in * 16))  # He initialisation keeps activations in range
            weights.append(torch.from_numpy(rng.normal(0, std, (c_out, c_in, 4, 4)).astype(np.float32)))
            c_in = c_out
        self.weights = nn.ParameterList(nn.Parameter(w, requires_grad=False) for w in weights)
        # pooled features of the last two layers: coarse and fine structure
        self.dim = channels[-1] + channels[-2]

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x, pooled = images, []
        for w in self.weights:
            x = F.relu(F.conv2d(x, w, stride=2, padding=1))
            pooled.append(x.mean(dim=(2, 3)))
        return torch.cat(pooled[-2:], dim=1)


EMBEDDINGS = {RandomConvEmbedding.name: RandomConvEmbedding}


def build(name: str) -> Embedding:
    return EMBEDDINGS[name]()
