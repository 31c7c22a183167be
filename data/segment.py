"""Cut decoded audio into fixed-length segments with pydub."""
import numpy as np

from data.ffmpeg import AudioSegment


def from_waveform(waveform: np.ndarray, sample_rate: int) -> AudioSegment:
    """Mono float waveform in [-1, 1] -> 16-bit pydub AudioSegment."""
    pcm = (np.clip(waveform, -1.0, 1.0) * 32767).astype("<i2")
    return AudioSegment(pcm.tobytes(), frame_rate=sample_rate, sample_width=2, channels=1)


def to_waveform(audio: AudioSegment) -> np.ndarray:
    samples = np.asarray(audio.get_array_of_samples(), dtype=np.float32)
    return samples / float(1 << (8 * audio.sample_width - 1))


def cut(audio: AudioSegment, seconds: float) -> list[tuple[float, np.ndarray]]:
    """Consecutive segments of exactly `seconds`, as (start seconds, float32 samples).

    The last, shorter piece is dropped: every segment must give the same image size.
    """
    length_ms = int(round(seconds * 1000))
    expected = int(round(seconds * audio.frame_rate))
    pieces = []
    for start_ms in range(0, len(audio) - length_ms + 1, length_ms):
        samples = to_waveform(audio[start_ms:start_ms + length_ms])
        # pydub slices on whole milliseconds; pad or trim the odd sample so shapes agree
        samples = np.pad(samples, (0, max(0, expected - len(samples))))[:expected]
        pieces.append((start_ms / 1000.0, samples))
    return pieces
