"""Seeded synthetic techno: the embedded default source, so everything runs offline.

A 4/4 kick on every beat, open hats on the off-beats, a 16th-note bass line and a chord
stab, at a random tempo of 120-140 BPM. Each track's seed fixes every choice, so a
dataset built from the same seeds is the same everywhere.
"""
import numpy as np


def _place(out: np.ndarray, sound: np.ndarray, start: int) -> None:
    end = min(len(out), start + len(sound))
    if start < end:
        out[start:end] += sound[: end - start]


def _kick(sr: int, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(int(0.3 * sr)) / sr
    freq = 45 + rng.uniform(60, 110) * np.exp(-t * 30)  # the falling "thump"
    return np.sin(2 * np.pi * np.cumsum(freq) / sr) * np.exp(-t * rng.uniform(9, 14))


def _hat(sr: int, rng: np.random.Generator) -> np.ndarray:
    noise = rng.standard_normal(int(0.08 * sr))
    bright = np.diff(noise, prepend=0.0)  # first difference: a cheap high-pass
    return bright * np.exp(-np.arange(len(bright)) / sr * rng.uniform(35, 60))


def _bass_note(sr: int, freq: float, length: float) -> np.ndarray:
    t = np.arange(int(length * sr)) / sr
    saw = 2 * ((t * freq) % 1.0) - 1
    return saw * np.exp(-t * 8)


def _stab(sr: int, freqs: np.ndarray) -> np.ndarray:
    t = np.arange(int(0.25 * sr)) / sr
    return np.sin(2 * np.pi * np.outer(t, freqs)).sum(axis=1) * np.exp(-t * 14) / len(freqs)


def render_track(seed: int, seconds: float, sample_rate: int) -> tuple[np.ndarray, float]:
    """Return (mono float32 waveform peaking at 0.9, tempo in BPM)."""
    rng = np.random.default_rng(seed)
    bpm = float(rng.uniform(120, 140))
    beat = 60.0 / bpm
    out = np.zeros(int(seconds * sample_rate), dtype=np.float64)
    beats = np.arange(0, seconds, beat)

    kick = _kick(sample_rate, rng)
    hat = _hat(sample_rate, rng) * rng.uniform(0.15, 0.35)
    for onset in beats:
        _place(out, kick, int(onset * sample_rate))
        _place(out, hat, int((onset + beat / 2) * sample_rate))

    root = 41.2 * 2 ** (rng.integers(0, 8) / 12)  # E1 and up
    pattern = rng.random(16) < 0.5  # which 16ths of a bar the bass plays
    octave = rng.choice([1.0, 2.0], size=16, p=[0.75, 0.25])
    sixteenth = beat / 4
    for i, onset in enumerate(np.arange(0, seconds, sixteenth)):
        if pattern[i % 16]:
            note = _bass_note(sample_rate, root * octave[i % 16], sixteenth * 0.9)
            _place(out, note * 0.35, int(onset * sample_rate))

    chord = root * 4 * 2 ** (np.array([0, 3, 7, 10]) / 12)  # a minor-seventh stab
    stab = _stab(sample_rate, chord) * rng.uniform(0.1, 0.25)
    stab_step = int(rng.integers(2, 6))  # every few off-beats
    for onset in beats[::stab_step]:
        _place(out, stab, int((onset + beat * 0.75) * sample_rate))

    out *= 0.9 / max(np.abs(out).max(), 1e-9)
    return out.astype(np.float32), bpm


def write_track(path, seed: int, seconds: float, sample_rate: int = 44100, channels: int = 1) -> None:
    """Render a track and encode it to `path`, the format chosen by its extension (mp3,
    m4a, aac, wav, flac, ogg): test and benchmark material that looks like a music folder."""
    import subprocess
    from data.ffmpeg import AudioSegment
    waveform, _ = render_track(seed, seconds, sample_rate)
    pcm = (np.repeat(waveform[:, None], channels, axis=1) * 32767).astype("<i2")
    subprocess.run([AudioSegment.converter, "-nostdin", "-v", "error", "-y", "-f", "s16le",
                    "-ar", str(sample_rate), "-ac", str(channels), "-i", "-", str(path)],
                   input=pcm.tobytes(), check=True)
