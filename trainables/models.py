"""GAN networks, registered by family name.

DCGAN 1 (the study's first model): generator of 5 transposed convolutions and
discriminator of 5 convolutions, 4x4 kernels, batch norm, ReLU / LeakyReLU(0.2), tanh
out; the discriminator returns logits (BCE-with-logits is the sigmoid + BCE of the
study, computed stably). 64 x 64 images of one channel (the mel).
"""
import torch
from torch import nn

from trainables.config import ModelConfig


def _init_weights(module: nn.Module) -> None:
    # The DCGAN paper's initialisation: N(0, 0.02) convolutions, N(1, 0.02) batch norm.
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(module.weight, 0.0, 0.02)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


class DCGAN1Generator(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        w = cfg.width

        def up(c_in, c_out):
            return [nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(True)]

        self.net = nn.Sequential(
            nn.ConvTranspose2d(cfg.latent_dim, w * 8, 4, 1, 0, bias=False),  # 1 -> 4
            nn.BatchNorm2d(w * 8), nn.ReLU(True),
            *up(w * 8, w * 4), *up(w * 4, w * 2), *up(w * 2, w),               # 4 -> 32
            nn.ConvTranspose2d(w, 1, 4, 2, 1, bias=False), nn.Tanh(),          # 32 -> 64
        )
        self.apply(_init_weights)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z[:, :, None, None])


class DCGAN1Discriminator(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        w = cfg.width

        def down(c_in, c_out):
            return [nn.Conv2d(c_in, c_out, 4, 2, 1, bias=False), nn.BatchNorm2d(c_out), nn.LeakyReLU(0.2, True)]

        self.net = nn.Sequential(
            nn.Conv2d(1, w, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, True),     # 64 -> 32
            *down(w, w * 2), *down(w * 2, w * 4), *down(w * 4, w * 8),         # 32 -> 4
            nn.Conv2d(w * 8, 1, 4, 1, 0, bias=False),                          # 4 -> 1
        )
        self.apply(_init_weights)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).flatten()


MODELS = {"dcgan1": (DCGAN1Generator, DCGAN1Discriminator)}


def build(cfg: ModelConfig) -> tuple[nn.Module, nn.Module]:
    generator_cls, discriminator_cls = MODELS[cfg.family]
    return generator_cls(cfg), discriminator_cls(cfg)
