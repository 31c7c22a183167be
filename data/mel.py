"""Waveform <-> scaled log-mel image, with librosa.

Forward, kind "study": mel power -> dB relative to the segment's own peak, clipped at
-top_db, then scaled linearly to [-1, 1] (the generator's tanh range). Kind "hifigan":
HiFi-GAN's log mel magnitude (its meldataset.py: reflect-padded, uncentred STFT magnitude,
librosa's slaney filter bank to 8 kHz, ln of max(x, 1e-5)), at absolute level, scaled from
[LOG_MIN, LOG_MAX] to [-1, 1]. `scaling()` describes the map for the manifest so it can be
undone; `to_audio` undoes it and inverts the mel with Griffin-Lim so samples can be heard
(trainables/vocoder.py has the neural alternative).
"""
import functools
import math

import librosa
import numpy as np

from data.spec import HIFIGAN_FMAX, DatasetSpec

# HiFi-GAN's clamp, and a ceiling above real music's loudest mel bin (measured in
# docs/listening.md), so 3.0 clips nothing real.
LOG_MIN, LOG_MAX = math.log(1e-5), 3.0
DB_PER_LOG = 20 / math.log(10)  # 20 log10(x) = DB_PER_LOG * ln(x): the figures' dB scale


def _mel_kwargs(spec: DatasetSpec) -> dict:
    m = spec.mel
    return dict(sr=m.sample_rate, n_fft=m.n_fft, hop_length=spec.hop_length(),
                n_mels=m.n_mels, fmin=m.fmin)


def _fmax(spec: DatasetSpec) -> float | None:
    return HIFIGAN_FMAX if spec.mel.kind == "hifigan" else None


def hifigan_log_mel(waveforms: np.ndarray, spec: DatasetSpec) -> np.ndarray:
    """(batch, samples) -> (batch, 80, frames): ln mel magnitude as HiFi-GAN computes it,
    the waveform zero-padded (or cut) at its end to fill `frames` hops."""
    m, hop = spec.mel, spec.hop_length()
    need = m.frames * hop
    waveforms = np.asarray(waveforms, dtype=np.float32)[..., :need]
    waveforms = np.pad(waveforms, [(0, 0)] * (waveforms.ndim - 1) + [(0, need - waveforms.shape[-1])])
    side = (m.n_fft - hop) // 2  # meldataset.py's padding: frame t covers output samples t*hop ... (t+1)*hop
    padded = np.pad(waveforms, [(0, 0)] * (waveforms.ndim - 1) + [(side, side)], mode="reflect")
    magnitude = np.abs(librosa.stft(padded, n_fft=m.n_fft, hop_length=hop, win_length=m.n_fft, window="hann",
                                    center=False))
    basis = librosa.filters.mel(sr=m.sample_rate, n_fft=m.n_fft, n_mels=m.n_mels, fmin=m.fmin, fmax=HIFIGAN_FMAX)
    return np.log(np.maximum(basis @ magnitude, 1e-5))[..., : m.frames].astype(np.float32)


def log_mel(image: np.ndarray, spec: DatasetSpec) -> np.ndarray:
    """A kind-hifigan image in [-1, 1] -> HiFi-GAN's ln mel magnitude."""
    assert spec.mel.kind == "hifigan", spec.mel.kind
    return (np.clip(np.asarray(image, dtype=np.float32), -1, 1) + 1.0) / 2.0 * (LOG_MAX - LOG_MIN) + LOG_MIN


def to_image(waveforms: np.ndarray, spec: DatasetSpec) -> np.ndarray:
    """(batch, samples) float32 -> (batch, n_mels, frames) float32 in [-1, 1]."""
    if spec.mel.kind == "hifigan":
        logs = np.clip(hifigan_log_mel(waveforms, spec), LOG_MIN, LOG_MAX)
        return (2.0 * (logs - LOG_MIN) / (LOG_MAX - LOG_MIN) - 1.0).astype(np.float32)
    power = librosa.feature.melspectrogram(y=waveforms, **_mel_kwargs(spec))
    top_db = spec.mel.top_db
    peak = power.max(axis=(-2, -1), keepdims=True)
    db = 10.0 * np.log10(np.maximum(power, 1e-10) / np.maximum(peak, 1e-10))
    db = np.maximum(db, -top_db)
    image = 2.0 * (db + top_db) / top_db - 1.0
    return image[..., : spec.mel.frames].astype(np.float32)


def scaling(spec: DatasetSpec) -> dict:
    if spec.mel.kind == "hifigan":
        return {"db_reference": "mel magnitude 1 (db = 20 log10, HiFi-GAN's ln = db / 8.686)",
                "db_min": DB_PER_LOG * LOG_MIN, "db_max": DB_PER_LOG * LOG_MAX,
                "formula": "image = 2 * (db - db_min) / (db_max - db_min) - 1"}
    return {"db_reference": "segment peak", "db_min": -spec.mel.top_db, "db_max": 0.0,
            "formula": "image = 2 * (db - db_min) / (db_max - db_min) - 1"}


@functools.lru_cache(maxsize=8)
def _inverse_basis(sr: int, n_fft: int, n_mels: int, fmin: float, fmax: float | None = None) -> np.ndarray:
    return np.linalg.pinv(librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax))


def to_power_spectrogram(power_mel: np.ndarray, spec: DatasetSpec) -> np.ndarray:
    """Mel power -> linear-frequency power, by the mel filter bank's pseudo-inverse (clipped
    at 0). librosa's mel_to_stft solves a non-negative least squares problem instead, slower
    for the same round-trip error (benchmarks/mel_inverse.py, docs/tracking.md)."""
    m = spec.mel
    return np.maximum(_inverse_basis(m.sample_rate, m.n_fft, m.n_mels, m.fmin, _fmax(spec)) @ power_mel, 0.0)


def _hifigan_griffin_lim(image: np.ndarray, spec: DatasetSpec, n_iter: int, seed: int | None = None) -> np.ndarray:
    # the filter bank's pseudo-inverse works on magnitudes as on powers (it is linear)
    magnitude = to_power_spectrogram(np.exp(log_mel(image, spec)), spec)
    hop = spec.hop_length()
    audio = librosa.griffinlim(magnitude, n_iter=n_iter, hop_length=hop, n_fft=spec.mel.n_fft,
                               win_length=spec.mel.n_fft, length=(spec.mel.frames - 1) * hop, random_state=seed)
    # Griffin-Lim centres frame t on sample t*hop; HiFi-GAN's frames are centred half a hop later
    audio = np.pad(audio, (hop // 2, 0))[: spec.samples()]
    return np.clip(audio, -1.0, 1.0).astype(np.float32)  # an absolute level: kept, not normalised


def to_audio(image: np.ndarray, spec: DatasetSpec, n_iter: int = 32, seed: int | None = None) -> np.ndarray:
    """Scaled log-mel image (n_mels, frames) -> waveform, by Griffin-Lim (`seed`: of its
    random initial phases, for the same audio every time; None: fresh ones)."""
    if spec.mel.kind == "hifigan":
        return _hifigan_griffin_lim(image, spec, n_iter, seed)
    top_db = spec.mel.top_db
    db = (np.clip(image.astype(np.float32), -1, 1) + 1.0) * top_db / 2.0 - top_db
    magnitude = np.sqrt(to_power_spectrogram(librosa.db_to_power(db), spec))
    length = int(round(spec.segment.seconds * spec.mel.sample_rate))
    audio = librosa.griffinlim(magnitude, n_iter=n_iter, hop_length=spec.hop_length(), n_fft=spec.mel.n_fft,
                               length=length, random_state=seed)
    # the scaling kept levels relative to the segment's peak only: play it at a fixed level
    return (0.9 * audio / max(float(np.abs(audio).max()), 1e-9)).astype(np.float32)
