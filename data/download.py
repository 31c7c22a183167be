"""URL sources through yt-dlp used as a library: expand playlists, download audio only,
into a cache addressed by video id so that a re-run does not fetch a video twice.

yt-dlp writes `<key>.<ext>.part` while downloading and renames it when complete, so a
file in the cache without that suffix is whole.

YouTube needs a JavaScript runtime and yt-dlp's EJS solver scripts since yt-dlp 2025.11
(without them: "Requested format is not available"). Both come from PyPI with the project
(the `deno` wheel, `yt-dlp[default]` for `yt-dlp-ejs`); `js_runtimes` points yt-dlp at that
Deno by path, because a venv's `bin/` is rarely on PATH (a Ray worker's least of all).

A failure's reason says why in words a user can act on: yt-dlp's own warnings and error are
sorted into CAUSES (sign-in asked, no JS runtime, geo-blocked, removed, rate limited), whose
label begins the reason in the failures table, and `summary` turns a build's failures into
one line per cause with its fix.

The user's cookies file is never written: yt-dlp saves its cookie jar back to `cookiefile`
when it closes, so each listing and download gets a private copy (`_private_cookies`),
deleted afterwards; concurrent downloads then never read a file another one is writing.
"""
import contextlib
import functools
import hashlib
import logging
import os
import re
import shutil
import tempfile
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from data.ffmpeg import ffmpeg_binary
from data.spec import AUDIO_EXTENSIONS, DownloadParams

log = logging.getLogger(__name__)


class FetchError(Exception):
    """A URL that gave no audio; `unreachable` when the network or host could not be reached."""

    def __init__(self, message: str, unreachable: bool = False):
        super().__init__(message)
        self.unreachable = unreachable


class _Logger:
    """yt-dlp prints to the terminal unless given a logger: route it to `logging` instead,
    and keep its warnings and errors, which often say why a video gave nothing."""

    def __init__(self):
        self.said: list[str] = []

    def debug(self, msg):
        log.debug(msg)

    def info(self, msg):
        log.debug(msg)

    def warning(self, msg):
        log.debug(msg)
        self.said.append(str(msg))

    def error(self, msg):
        log.debug(msg)
        self.said.append(str(msg))


@functools.lru_cache(maxsize=1)
def deno_path() -> str | None:
    """The Deno the `deno` wheel installed beside this Python (None when it is missing)."""
    try:
        import deno
        return deno.find_deno_bin()
    except (ImportError, FileNotFoundError):
        return None


def js_runtimes() -> dict:
    """yt-dlp's `js_runtimes`: the project's Deno by path, else yt-dlp's default (a deno on PATH)."""
    path = deno_path()
    return {"deno": {"path": path} if path else {}}


def runtime_report() -> dict:
    """What yt-dlp finds for YouTube through the project's options: {"js_runtime": "deno 2.9.8
    (path)" or None, "solver": "yt-dlp-ejs 0.8.0" or None} (platform.doctor, the tests)."""
    import yt_dlp
    with yt_dlp.YoutubeDL({"quiet": True, "no_warnings": True, "logger": _Logger(),
                           "js_runtimes": js_runtimes()}) as ydl:
        found = [r.info for r in ydl._js_runtimes.values() if r is not None and r.info is not None]
    try:
        from yt_dlp_ejs import version as solver
    except ImportError:
        solver = None
    runtime = next((f"{i.name} {i.version} ({i.path})" for i in found if i.supported), None)
    return {"js_runtime": runtime, "solver": f"yt-dlp-ejs {solver}" if solver else None}


def _sleeps(params: DownloadParams, url: str) -> dict:
    if url.lower().startswith("file://"):
        return {}  # a local file has no site to be polite to
    return {"sleep_interval": params.sleep_seconds, "max_sleep_interval": params.max_sleep_seconds,
            "sleep_interval_requests": params.sleep_requests_seconds}


@contextlib.contextmanager
def _private_cookies(params: DownloadParams):
    """yt-dlp's `cookiefile` option: a private copy of the user's cookies file (mode 0600, in
    the temp dir), removed on leaving; {} without cookies."""
    if not params.cookies:
        yield {}
        return
    fd, copy = tempfile.mkstemp(prefix="yt-dlp-cookies-", suffix=".txt")
    try:
        with os.fdopen(fd, "wb") as out, open(Path(params.cookies).expanduser(), "rb") as user:
            shutil.copyfileobj(user, out)
        yield {"cookiefile": copy}
    finally:
        os.unlink(copy)


def _options(params: DownloadParams, url: str, **extra) -> dict:
    """yt-dlp's options; `extra` carries the `cookiefile` of `_private_cookies` (never the user's)."""
    return {"quiet": True, "no_warnings": True, "noprogress": True, "logger": _Logger(),
            "socket_timeout": params.socket_timeout, "retries": params.retries,
            "extractor_retries": params.retries, "fragment_retries": params.retries,
            "enable_file_urls": params.allow_file_urls, "ffmpeg_location": ffmpeg_binary(),
            "format": "bestaudio/best", "noplaylist": True, "js_runtimes": js_runtimes(),
            **_sleeps(params, url),
            **({"proxy": params.proxy} if params.proxy else {}), **extra}


@dataclass(frozen=True)
class Cause:
    """A kind of failure: what yt-dlp says (lower-case fragments), the label that begins the
    reason in the failures table, and the fix printed once per build."""
    name: str
    says: tuple[str, ...]
    label: str
    fix: str


# First match wins: a rate limit's message also says "try again later", a sign-in one "cookies".
CAUSES = (
    Cause("rate_limited", ("http error 429", "too many requests", "rate-limited", "rate limited",
                           "rate-limit"),
          "rate limited by the site",
          "raise dataset.download.sleep_seconds and max_sleep_seconds, lower per_host_concurrency, "
          "and build again later (finished tracks are kept)"),
    Cause("sign_in", ("sign in to confirm", "not a bot", "login required", "--cookies", "cookies for the authentication",
                      "requires authentication", "members-only"),
          "YouTube asked to sign in",
          "set dataset.download.cookies to a cookies.txt exported from a browser signed in to YouTube"),
    Cause("geo_blocked", ("available in your country", "geo restrict", "geo-restrict", "georestrict",
                          "not available from your location"),
          "blocked in this country",
          "set dataset.download.proxy to a proxy in a country where the video is available, or leave it out"),
    Cause("no_js_runtime", ("no supported javascript runtime", "js runtime", "javascript runtime",
                            "challenge solving failed", "n challenge", "signature solving failed", "yt-dlp-ejs"),
          "yt-dlp could not solve YouTube's JavaScript challenge",
          "run python3 -m platform.bootstrap (it installs Deno and yt-dlp-ejs), then .venv/bin/python -m platform.doctor"),
    Cause("unavailable", ("private video", "video unavailable", "this video is unavailable", "has been removed",
                          "video is private", "account associated with this video has been terminated",
                          "http error 404", "http error 410"),
          "private, removed or not found",
          "remove the video from the playlist or URL file, or leave it: the build goes on without it"),
)


def cause_of(text: str) -> Cause | None:
    low = text.lower()
    return next((c for c in CAUSES if any(s in low for s in c.says)), None)


def summary(failures: list[dict]) -> list[str]:
    """One line per cause among a build's failures: "YouTube asked to sign in for 37 videos:
    set dataset.download.cookies ..."."""
    counts = {}
    for f in failures:
        for c in CAUSES:
            if str(f.get("reason", "")).startswith(c.label + ":"):
                counts[c] = counts.get(c, 0) + 1
    return [f"{c.label} for {n} video{'s' if n != 1 else ''}: {c.fix}." for c, n in counts.items()]


def _explain(error: Exception, url: str, said: list[str] = ()) -> FetchError:
    """yt-dlp's error -> one sentence; network failures flagged as unreachable. `said`: the
    warnings and errors yt-dlp logged on the way, which often hold the real reason ("No
    supported JavaScript runtime" before "Requested format is not available")."""
    from yt_dlp.networking.exceptions import TransportError
    cause = (getattr(error, "exc_info", None) or (None, None))[1]
    if url.lower().startswith("file://") and cause is not None:
        return FetchError(f"the file could not be read ({getattr(cause, 'reason', None) or cause})")
    if isinstance(cause, TransportError) or isinstance(error, TransportError):
        host = urllib.parse.urlsplit(url).hostname or url
        return FetchError(f"could not reach {host} (no network, or the host is down)", unreachable=True)
    text = str(error).removeprefix("ERROR: ").split(" (caused by ")[0].strip() or type(error).__name__
    known = cause_of(text) or next((c for c in map(cause_of, said) if c), None)
    if known is None:
        return FetchError(text)
    hints = [m.removeprefix("WARNING: ").strip() for m in said if cause_of(m) is known and text not in m]
    return FetchError(f"{known.label}: {text}" + (f" (yt-dlp: {hints[0][:300]})" if hints else ""))


def _extractor(url: str):
    from yt_dlp.extractor import gen_extractor_classes
    return next(ie for ie in gen_extractor_classes() if ie.suitable(url))  # Generic takes any URL


def _hashed(url: str) -> str:
    return hashlib.sha1(url.encode()).hexdigest()[:16]


# A remote site's video id becomes a file name in the cache (and a track id, a part's
# name): kept only when plainly harmless, else hashed. "../../x", "/etc/x", "a%(title)s"
# (a yt-dlp output template) and NUL never reach a path.
_SAFE_ID = re.compile(r"[A-Za-z0-9_-]{1,80}")
SAFE_KEY = re.compile(r"[a-z0-9]{1,40}-[A-Za-z0-9_-]{1,80}")


def _key(extractor, video_id, url: str) -> str:
    """`<extractor>-<id>`: a cache key from what a remote site calls the video."""
    extractor = re.sub(r"[^a-z0-9]", "", str(extractor or "url").lower())[:40] or "url"
    video_id = str(video_id or "")
    return f"{extractor}-{video_id if _SAFE_ID.fullmatch(video_id) else _hashed(video_id or url)}"


def video_key(url: str) -> str | None:
    """The cache key of a single-video URL, known without the network; None for a playlist."""
    ie = _extractor(url)
    if ie.ie_key() == "Generic":
        # a link to an audio or video file is one track; any other page (an RSS feed, an
        # HTML page of players) may be a playlist, which only yt-dlp's listing can tell
        path = urllib.parse.urlsplit(url).path.lower()
        return f"url-{_hashed(url)}" if path.endswith(AUDIO_EXTENSIONS) else None
    if getattr(ie, "_RETURN_TYPE", None) == "video":
        return _key(ie.ie_key(), ie.get_temp_id(url), url)
    return None


def expand(url: str, params: DownloadParams) -> list[dict]:
    """A playlist URL -> its videos as [{url, key, title}], listing only (no download)."""
    import yt_dlp
    logger = _Logger()
    try:
        with _private_cookies(params) as cookies:
            options = _options(params, url, extract_flat="in_playlist", noplaylist=False, logger=logger, **cookies)
            with yt_dlp.YoutubeDL(options) as ydl:
                info = ydl.extract_info(url, download=False)
    except Exception as error:  # yt-dlp raises DownloadError and others; all become a reason
        raise _explain(error, url, logger.said) from None
    if info.get("_type") not in ("playlist", "multi_video"):
        key = _key(info.get("extractor_key"), info.get("id"), url)
        return [{"url": info.get("webpage_url") or url, "key": key, "title": info.get("title") or key}]
    videos = []
    for entry in info.get("entries") or []:
        if not entry or not entry.get("url"):
            continue
        key = _key(entry.get("ie_key"), entry.get("id"), entry["url"])
        videos.append({"url": entry["url"], "key": key, "title": entry.get("title") or key})
    if not videos:
        raise FetchError("the playlist has no videos, or none that can be listed")
    return videos


def cached(key: str, cache_dir: Path) -> Path | None:
    for path in sorted(cache_dir.glob(f"{key}.*")):
        if path.suffix not in (".part", ".ytdl", ".temp") and path.stat().st_size > 0:
            return path
    return None


def download(url: str, key: str, cache_dir: Path, params: DownloadParams) -> tuple[Path, bool]:
    """Audio of `url` in the cache as `<key>.<ext>`: (path, True if it was already there)."""
    # keys come from _key or video_key; anything else would be a path or a template to yt-dlp
    if not (SAFE_KEY.fullmatch(key) or re.fullmatch(r"url-[0-9a-f]{16}", key)):
        raise FetchError(f"refused to download into the cache under the name {key!r} (not a plain video id)")
    hit = cached(key, cache_dir)
    if hit:
        return hit, True
    import yt_dlp
    cache_dir.mkdir(parents=True, exist_ok=True)
    logger = _Logger()
    try:
        with _private_cookies(params) as cookies:
            options = _options(params, url, outtmpl=str(cache_dir / f"{key}.%(ext)s"), overwrites=False,
                               logger=logger, **cookies)
            with yt_dlp.YoutubeDL(options) as ydl:
                info = ydl.extract_info(url, download=True)
    except Exception as error:
        raise _explain(error, url, logger.said) from None
    paths = [Path(d["filepath"]) for d in info.get("requested_downloads") or [] if d.get("filepath")]
    hit = next((p for p in paths if p.exists()), None) or cached(key, cache_dir)
    if hit is None:
        raise FetchError("yt-dlp finished without writing an audio file")
    return hit, False
