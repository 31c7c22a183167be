"""Point pydub at an ffmpeg: the system's if there is one, else the imageio-ffmpeg wheel's.

The wheel ships ffmpeg but not ffprobe, so callers decoding files must tell pydub the
format (`AudioSegment.from_file(path, format=...)`).
"""
import shutil
import warnings

with warnings.catch_warnings():
    # pydub warns at import when no `ffmpeg` is on PATH; we set its converter just below
    warnings.filterwarnings("ignore", message="Couldn't find ffmpeg", category=RuntimeWarning)
    from pydub import AudioSegment


def ffmpeg_binary() -> str:
    system = shutil.which("ffmpeg")
    if system:
        return system
    import imageio_ffmpeg
    return imageio_ffmpeg.get_ffmpeg_exe()


AudioSegment.converter = ffmpeg_binary()
