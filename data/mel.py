"""Waveform <-> scaled log-mel image, with librosa.

Forward: mel power -> dB relative to the segment's own peak, clipped at -top_db, then
scaled linearly to [-1, 1] (the generator's tanh range). `scaling()` describes that map
for the manifest so it can be undone; `to_audio` undoes it and inverts the mel with
Griffin-Lim so samples can be heard.
"""
import functools

import librosa
import numpy as np

from data.spec import DatasetSpec


def _mel_kwargs(spec: DatasetSpec) -> dict:
    m = spec.mel
    return dict(sr=m.sample_rate, n_fft=m.n_fft, hop_length=spec.hop_length(),
                n_mels=m.n_mels, fmin=m.fmin)


def to_image(waveforms: np.ndarray, spec: DatasetSpec) -> np.ndarray:
    """(batch, samples) float32 -> (batch, n_mels, frames) float32 in [-1, 1]."""
    power = librosa.feature.melspectrogram(y=waveforms, **_mel_kwargs(spec))
    top_db = spec.mel.top_db
    peak = power.max(axis=(-2, -1), keepdims=True)
    db = 10.0 * np.log10(np.maximum(power, 1e-10) / np.maximum(peak, 1e-10))
    db = np.maximum(db, -top_db)
    image = 2.0 * (db + top_db) / top_db - 1.0
    return image[..., : spec.mel.frames].astype(np.float32)


def scaling(spec: DatasetSpec) -> dict:
    return {"db_reference": "segment peak", "db_min": -spec.mel.top_db, "db_max": 0.0,
            "formula": "image = 2 * (db - db_min) / (db_max - db_min) - 1"}


@functools.lru_cache(maxsize=8)
def _inverse_basis(sr: int, n_fft: int, n_mels: int, fmin: float) -> np.ndarray:
    return np.linalg.pinv(librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin))


def to_power_spectrogram(power_mel: np.ndarray, spec: DatasetSpec) -> np.ndarray:
    """Mel power -> linear-frequency power, by the mel filter bank's pseudo-inverse (clipped
    at 0). librosa's mel_to_stft solves a non-negative least squares problem instead: 3x
    slower here for the same round-trip error (benchmarks/mel_inverse.py)."""
    m = spec.mel
    return np.maximum(_inverse_basis(m.sample_rate, m.n_fft, m.n_mels, m.fmin) @ power_mel, 0.0)


def to_audio(image: np.ndarray, spec: DatasetSpec, n_iter: int = 32, seed: int | None = None) -> np.ndarray:
    """Scaled log-mel image (n_mels, frames) -> waveform, by Griffin-Lim (`seed`: of its
    random initial phases, for the same audio every time; None: fresh ones)."""
    top_db = spec.mel.top_db
    db = (np.clip(image.astype(np.float32), -1, 1) + 1.0) * top_db / 2.0 - top_db
    magnitude = np.sqrt(to_power_spectrogram(librosa.db_to_power(db), spec))
    length = int(round(spec.segment.seconds * spec.mel.sample_rate))
    audio = librosa.griffinlim(magnitude, n_iter=n_iter, hop_length=spec.hop_length(), n_fft=spec.mel.n_fft,
                               length=length, random_state=seed)
    # the scaling kept levels relative to the segment's peak only: play it at a fixed level
    return (0.9 * audio / max(float(np.abs(audio).max()), 1e-9)).astype(np.float32)
