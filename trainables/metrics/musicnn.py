"""`fad-musicnn`: Fréchet Audio Distance in the space of musicnn, a pretrained music tagger.

FAD (Kilgour et al. 2019) is FID on the embeddings of a pretrained audio network. Every
common FAD toolkit (VGGish, PANNs, CLAP, EnCodec) downloads its weights at run time; the
`musicnn` wheel (Pons & Serra 2019, ISC licence) ships its checkpoints, so this is FAD with
nothing downloaded. The model is `MTT_musicnn`, trained to tag MagnaTagATune clips (its 50
tags include techno, electronic, beat, drums, synth, dance). The wheel holds TensorFlow 1
checkpoints; TensorFlow is not needed: `tf_checkpoint.read` takes the weights with numpy and
`MusicnnNet` below is the same network in torch (musicnn/models.py: `build_musicnn` with
the 7774timbraltemporal front end, 64 mid-end filters, 200 back-end units; TF's batch
norm epsilon 0.001 and "same" padding).

The embedding of a clip is the 200-unit penultimate layer (batch-normalised dense layer
before the tag logits) on the clip's central 3 s: musicnn was trained on 3 s patches, and
the network's cost grows with length. Mel images become audio by the
project's inversion (`data.mel.to_audio`, Griffin-Lim), real and generated alike, so both
sides carry the same inversion loss; the audio is resampled to musicnn's 16 kHz and turned
into its input, log10(1 + 10,000 mel power) with 96 bands, hop 256, FFT 512.

`pip install --no-deps musicnn` (its metadata pins numpy<1.17 and TensorFlow, neither
needed here): platform/bootstrap.py installs it so.
"""
import importlib.util
from pathlib import Path

import librosa
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from data import mel
from data.spec import DatasetSpec
from trainables.metrics import tf_checkpoint
from trainables.metrics.embedding import Embedding

SAMPLE_RATE, HOP, N_FFT, N_MELS = 16000, 256, 512, 96  # musicnn/configuration.py
MODEL = "MTT_musicnn"
MTT_TAGS = ("guitar", "classical", "slow", "techno", "strings", "drums", "electronic", "rock", "fast", "piano",
            "ambient", "beat", "violin", "vocal", "synth", "female", "indian", "opera", "male", "singing",
            "vocals", "no vocals", "harpsichord", "loud", "quiet", "flute", "woman", "male vocal", "no vocal",
            "pop", "soft", "sitar", "solo", "man", "classic", "choir", "voice", "new age", "dance",
            "male voice", "female vocal", "beats", "harp", "cello", "no voice", "weird", "country", "metal",
            "female voice", "choral")
EPS = 1e-3  # tf.compat.v1.layers.batch_normalization


def checkpoint_prefix(model: str = MODEL) -> Path:
    """The folder of the wheel's checkpoint (its files have an empty prefix)."""
    spec = importlib.util.find_spec("musicnn")  # not imported: its modules import TensorFlow
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("The musicnn weights are not on this machine: run `python3 -m platform.bootstrap` "
                                "(or `.venv/bin/pip install --no-deps musicnn`), whose wheel ships them.")
    return Path(list(spec.submodule_search_locations)[0]) / model


class _BN(nn.Module):
    """Inference-mode batch norm over the last axis of the TF layer `name`."""

    def __init__(self, weights: dict, name: str):
        super().__init__()
        scale = weights[f"{name}/gamma"] / np.sqrt(weights[f"{name}/moving_variance"] + EPS)
        self.register_buffer("scale", torch.from_numpy(scale.astype(np.float32)))
        shift = weights[f"{name}/beta"] - weights[f"{name}/moving_mean"] * scale
        self.register_buffer("shift", torch.from_numpy(shift.astype(np.float32)))

    def forward(self, x: torch.Tensor, channel_dim: int = 1) -> torch.Tensor:
        shape = [1] * x.dim()
        shape[channel_dim] = -1
        return x * self.scale.view(shape) + self.shift.view(shape)


def _conv(weights: dict, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """TF (kh, kw, in, out) kernel -> torch (out, in, kh, kw), and the bias."""
    kernel = torch.from_numpy(weights[f"{name}/kernel"].transpose(3, 2, 0, 1).copy())
    return kernel, torch.from_numpy(weights[f"{name}/bias"].copy())


class MusicnnNet(nn.Module):
    """musicnn's MTT network in torch: (batch, frames, 96) log-mel -> (penultimate (batch, 200), logits)."""

    def __init__(self, weights: dict):
        super().__init__()
        self.bn_in = _BN(weights, "batch_normalization")
        # front end: two timbral (7 x 38, 7 x 67) and three temporal (128, 64, 32 x 1) filters
        self.front = [f"conv2d{'' if i == 0 else f'_{i}'}" for i in range(5)]
        self.mid = ["conv2d_5", "conv2d_6", "conv2d_7"]
        for i, name in enumerate(self.front + self.mid):
            kernel, bias = _conv(weights, name)
            self.register_buffer(f"k{i}", kernel)
            self.register_buffer(f"b{i}", bias)
        self.bn = nn.ModuleList(_BN(weights, f"batch_normalization_{i}") for i in range(1, 11))
        for name in ("dense", "dense_1"):
            self.register_buffer(f"{name}_w", torch.from_numpy(weights[f"{name}/kernel"].T.copy()))
            self.register_buffer(f"{name}_b", torch.from_numpy(weights[f"{name}/bias"].copy()))

    def _kernel(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return getattr(self, f"k{i}"), getattr(self, f"b{i}")

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.bn_in(x.unsqueeze(1))  # (B, 1, T, F): time as height, mel bands as width
        front = []
        for i in range(5):
            kernel, bias = self._kernel(i)
            kh = kernel.shape[2]
            if i < 2:  # timbral: time padded by 3 each side, valid over frequency
                h = F.conv2d(F.pad(x, (0, 0, 3, 3)), kernel, bias)
            else:      # temporal: TF's "same" padding, the odd sample at the end
                h = F.conv2d(F.pad(x, (0, 0, (kh - 1) // 2, kh // 2)), kernel, bias)
            h = self.bn[i](F.relu(h))
            front.append(h.amax(dim=3))  # max over frequency: (B, C, T)
        features = [torch.cat(front, dim=1)]  # (B, 561, T)
        h = features[0]
        for j in range(3):
            kernel, bias = self._kernel(5 + j)  # (64, 1, 7, C_in): a 1-D conv over time
            out = self.bn[5 + j](F.relu(F.conv1d(F.pad(h, (3, 3)), kernel[:, 0].transpose(1, 2).contiguous(), bias)))
            h = out if j == 0 else out + h
            features.append(h)
        stacked = torch.cat(features, dim=1)  # (B, 753, T)
        # TF flattens (753, 2) = [max, mean] per channel, interleaved
        pooled = torch.stack([stacked.amax(dim=2), stacked.mean(dim=2)], dim=2).flatten(1)
        pooled = self.bn[8](pooled)
        penultimate = self.bn[9](F.relu(pooled @ self.dense_w.T + self.dense_b))
        return penultimate, penultimate @ self.dense_1_w.T + self.dense_1_b


def log_mel(audio: np.ndarray, sample_rate: int) -> torch.Tensor:
    """(batch, samples) audio -> musicnn's input (batch, frames, 96)."""
    if sample_rate != SAMPLE_RATE:
        audio = librosa.resample(audio, orig_sr=sample_rate, target_sr=SAMPLE_RATE, axis=-1)
    power = librosa.feature.melspectrogram(y=audio, sr=SAMPLE_RATE, hop_length=HOP, n_fft=N_FFT, n_mels=N_MELS)
    return torch.from_numpy(np.log10(10000 * power + 1).astype(np.float32)).transpose(1, 2)


class MusicnnEmbedding(Embedding):
    name = "fad-musicnn"
    dim = 200
    standardised = False  # raw embeddings, as published FADs

    def __init__(self, spec: DatasetSpec | None = None, griffin_lim_iters: int = 32, seconds: float = 3.0):
        super().__init__()
        self.spec = spec or DatasetSpec()
        self.griffin_lim_iters, self.seconds = griffin_lim_iters, seconds
        self.prefix = checkpoint_prefix()
        self.net = MusicnnNet(tf_checkpoint.read(f"{self.prefix}/"))  # files `.index`, `.data-...` in it

    def settings(self) -> dict:
        m = self.spec.mel
        return {"model": MODEL, "griffin_lim_iters": self.griffin_lim_iters, "sample_rate": m.sample_rate,
                "n_fft": m.n_fft, "n_mels": m.n_mels, "frames": m.frames, "fmin": m.fmin, "top_db": m.top_db,
                "seconds": self.spec.segment.seconds, "window": self.seconds, "version": 1}

    def audio(self, images: torch.Tensor) -> np.ndarray:
        """Mel images (n, 1, mels, frames) -> waveforms (n, samples), by the project's inversion."""
        mels = images.float().cpu().numpy()[:, 0]
        # Griffin-Lim's initial phases seeded: the same mel always gives the same audio and score
        return np.stack([mel.to_audio(m, self.spec, self.griffin_lim_iters, seed=0) for m in mels])

    def embed_audio(self, audio: np.ndarray, sample_rate: int) -> torch.Tensor:
        """(batch, samples) audio -> (batch, 200): the central `seconds` of each clip."""
        window = int(self.seconds * sample_rate)
        if audio.shape[-1] > window:
            start = (audio.shape[-1] - window) // 2
            audio = audio[..., start:start + window]
        return torch.cat([self.net(log_mel(chunk, sample_rate))[0] for chunk in np.array_split(
            audio, max(1, len(audio) // 16))])

    def tags(self, audio: np.ndarray, sample_rate: int) -> np.ndarray:
        """Tag probabilities (batch, 50), in the order of MTT_TAGS."""
        return torch.sigmoid(self.net(log_mel(audio, sample_rate))[1]).numpy()

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.embed_audio(self.audio(images), self.spec.mel.sample_rate).to(images.device)
