"""The study's GAN networks, built by family name from a ModelConfig.

All four are DCGAN-style stacks of 4x4 (transposed) convolutions on one-channel mel
images, batch norm and ReLU in the generator with a tanh out, LeakyReLU(0.2) in the
discriminator. The discriminator returns one raw score per image: logits for the DCGANs
(BCE-with-logits is the study's sigmoid + BCE, computed stably), the critic's value for
the WGANs (no sigmoid).

  dcgan1     5 + 5 layers at 64 x 64: 1 -> 4 -> 8 -> 16 -> 32 -> 64 and back.
  dcgan2     4 + 4 layers at 64 x 64: the last generator layer and the first critic layer
             have stride 4 (16 <-> 64); two dropouts in G, one in D.
  wgan_clip  the dcgan1 architecture (the study: "the same for both techniques").
  wgan_gp    the same, with layer norm (or none) in the critic instead of batch norm.

At 128 x 128 every family gets one more stride-2 stage in each network (6 + 6 layers for
dcgan1 and the WGANs, 5 + 5 for dcgan2), so a layer always keeps its 4x4 kernel and
stride and the widest layer has twice the feature maps of the 64 x 64 model.

A non-square image (bands x frames, e.g. the HiFi-GAN preset's 80 x 432) keeps the 64 x 64
networks' stages and grows only their ends: the core is (bands / 16) x (frames / 16)
instead of 4 x 4 (5 x 27 for 80 x 432), made by the generator's first transposed
convolution from the latent vector and read by the critic's last convolution, both with
a kernel of the core's shape. Every stage between keeps its 4x4 kernel and stride.
"""
import contextlib
import math
from collections.abc import Iterator

import torch
from torch import nn

from trainables.config import FAMILIES, ModelConfig

# Stride of the generator's last and the critic's first layer: dcgan2 covers 16 <-> 64 in one.
EDGE_STRIDE = {family: 4 if family == "dcgan2" else 2 for family in FAMILIES}


def _init_weights(module: nn.Module) -> None:
    # The DCGAN paper's initialisation: N(0, 0.02) convolutions, N(1, 0.02) batch norm.
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(module.weight, 0.0, 0.02)
    elif isinstance(module, (nn.BatchNorm2d, nn.GroupNorm)):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


def _scale(cfg: ModelConfig) -> int:
    """How much larger the image is than the core, on each side: 16 for 64 x 64 and any
    non-square image, 32 for 128 x 128."""
    return cfg.image_size // 4 if isinstance(cfg.image_size, int) else 16


def core(cfg: ModelConfig) -> tuple[int, int]:
    """(bands, frames) of the smallest feature map: 4 x 4 for the square sizes."""
    return tuple(side // _scale(cfg) for side in cfg.shape)


def _middle_stages(cfg: ModelConfig) -> int:
    """Stride-2 stages between the core and the edge layer."""
    stages = math.log2(_scale(cfg) // EDGE_STRIDE[cfg.family])
    assert stages.is_integer() and stages >= 1, (cfg.image_size, cfg.family)
    return int(stages)


def _edge(stride: int) -> dict:
    # stride 2: (k4, s2, p1) doubles or halves; stride 4: (k4, s4, p0) quadruples or quarters
    return {"kernel_size": 4, "stride": stride, "padding": 1 if stride == 2 else 0, "bias": False}


def _critic_norm(kind: str, channels: int) -> list[nn.Module]:
    if kind == "batch":
        return [nn.BatchNorm2d(channels)]
    if kind == "layer":
        # GroupNorm with one group normalises each sample over (C, H, W): layer norm for conv maps
        return [nn.GroupNorm(1, channels)]
    return []


class Generator(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        middle = _middle_stages(cfg)
        dropouts = 2 if cfg.family == "dcgan2" else 0  # after the first two hidden layers
        channels = cfg.width * 2 ** middle
        layers = [nn.ConvTranspose2d(cfg.latent_dim, channels, core(cfg), 1, 0, bias=False),  # 1 -> core
                  nn.BatchNorm2d(channels), nn.ReLU(True)]
        hidden = 1
        for _ in range(middle):
            if hidden <= dropouts:
                layers.append(nn.Dropout(cfg.dropout_g))
            layers += [nn.ConvTranspose2d(channels, channels // 2, 4, 2, 1, bias=False),
                       nn.BatchNorm2d(channels // 2), nn.ReLU(True)]
            channels //= 2
            hidden += 1
        if hidden <= dropouts:
            layers.append(nn.Dropout(cfg.dropout_g))
        layers += [nn.ConvTranspose2d(channels, 1, **_edge(EDGE_STRIDE[cfg.family])), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        self.apply(_init_weights)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z[:, :, None, None])


class Discriminator(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        middle = _middle_stages(cfg)
        channels = cfg.width
        layers = [nn.Conv2d(1, channels, **_edge(EDGE_STRIDE[cfg.family])), nn.LeakyReLU(0.2, True)]
        for stage in range(middle):
            layers += [nn.Conv2d(channels, channels * 2, 4, 2, 1, bias=False),
                       *_critic_norm(cfg.critic_norm, channels * 2), nn.LeakyReLU(0.2, True)]
            channels *= 2
            if cfg.family == "dcgan2" and stage == 0:
                layers.append(nn.Dropout(cfg.dropout_d))
        layers.append(nn.Conv2d(channels, 1, core(cfg), 1, 0, bias=False))  # core -> 1
        self.net = nn.Sequential(*layers)
        self.apply(_init_weights)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).flatten()


def build(cfg: ModelConfig) -> tuple[nn.Module, nn.Module]:
    return Generator(cfg), Discriminator(cfg)


@contextlib.contextmanager
def inference(net: nn.Module) -> Iterator[nn.Module]:
    """`net` in eval mode (dropout off, batch norm on its running statistics) and without
    gradients, its mode restored afterwards: evaluations and artifacts generate from a
    generator in the middle of its training."""
    was_training = net.training
    net.eval()
    try:
        with torch.no_grad():
            yield net
    finally:
        net.train(was_training)
