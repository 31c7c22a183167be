"""Decode audio files and cut audio into fixed-length segments with pydub."""
import subprocess
from pathlib import Path

import numpy as np

from data.ffmpeg import AudioSegment
from data.spec import SegmentParams


class DecodeError(Exception):
    """A file that gives no audio; the message is one sentence for the failures table."""


def decode(path: str | Path, sample_rate: int, max_seconds: float | None = None) -> AudioSegment:
    """Any file ffmpeg reads -> mono 16-bit AudioSegment at `sample_rate`.

    ffmpeg downmixes and resamples itself (better and faster than pydub's audioop), and we
    call it directly because pydub's `from_file` wants ffprobe, which the wheel lacks.
    `max_seconds`: a longer track is a DecodeError; ffmpeg stops just past it, so memory stays
    bounded by it, whatever the file's length.
    """
    path = Path(path)
    if path.stat().st_size == 0:
        raise DecodeError("the file is empty (0 bytes)")
    limit = ["-t", f"{max_seconds + 1:g}"] if max_seconds else []
    command = [AudioSegment.converter, "-nostdin", "-v", "error", "-i", str(path),
               "-vn", "-ac", "1", "-ar", str(sample_rate), *limit, "-f", "s16le", "-"]
    done = subprocess.run(command, capture_output=True)
    if done.returncode != 0 or not done.stdout:
        lines = [line for line in done.stderr.decode(errors="replace").splitlines() if line.strip()]
        detail = lines[-1].replace(str(path), "").strip(": ") if lines else "no audio stream"
        raise DecodeError(f"ffmpeg could not decode it ({detail})")
    pcm = done.stdout[: len(done.stdout) // 2 * 2]
    if max_seconds and len(pcm) / 2 / sample_rate > max_seconds:
        raise DecodeError(f"longer than segment.max_track_seconds ({max_seconds:g} s); raise it to include "
                          "this track (decoding holds a whole track in memory)")
    return AudioSegment(pcm, frame_rate=sample_rate, sample_width=2, channels=1)


def from_waveform(waveform: np.ndarray, sample_rate: int) -> AudioSegment:
    """Mono float waveform in [-1, 1] -> 16-bit pydub AudioSegment."""
    pcm = (np.clip(waveform, -1.0, 1.0) * 32767).astype("<i2")
    return AudioSegment(pcm.tobytes(), frame_rate=sample_rate, sample_width=2, channels=1)


def to_waveform(audio: AudioSegment) -> np.ndarray:
    samples = np.asarray(audio.get_array_of_samples(), dtype=np.float32)
    return samples / float(1 << (8 * audio.sample_width - 1))


def cut(audio: AudioSegment, seconds: float, hop: float | None = None) -> list[tuple[float, np.ndarray]]:
    """Segments of exactly `seconds` every `hop` seconds, as (start seconds, float32 samples).

    The last, shorter piece is dropped: every segment must give the same image size.
    """
    return [(start, samples) for start, samples, _ in _pieces(audio, seconds, hop or seconds)]


def _pieces(audio: AudioSegment, seconds: float, hop: float):
    length_ms = int(round(seconds * 1000))
    hop_ms = max(1, int(round(hop * 1000)))
    expected = int(round(seconds * audio.frame_rate))
    for start_ms in range(0, len(audio) - length_ms + 1, hop_ms):
        piece = audio[start_ms:start_ms + length_ms]
        # pydub slices on whole milliseconds; pad or trim the odd sample so shapes agree
        samples = to_waveform(piece)
        samples = np.pad(samples, (0, max(0, expected - len(samples))))[:expected]
        yield start_ms / 1000.0, samples, piece


def cut_track(audio: AudioSegment, params: SegmentParams) -> tuple[list[tuple[float, np.ndarray]], int]:
    """A whole track -> (segments that are not silent, number of silent ones dropped).

    Intro and outro are skipped first; start times stay relative to the track's start.
    """
    skip_start = int(round(params.skip_start_seconds * 1000))
    end = len(audio) - int(round(params.skip_end_seconds * 1000))
    body = audio[skip_start:max(skip_start, end)]
    kept, silent = [], 0
    for start, samples, piece in _pieces(body, params.seconds, params.hop):
        if piece.dBFS < params.silence_dbfs:
            silent += 1
            continue
        kept.append((start + skip_start / 1000.0, samples))
    return kept, silent
