"""URL sources through yt-dlp used as a library: expand playlists, download audio only,
into a cache addressed by video id so that a re-run does not fetch a video twice.

yt-dlp writes `<key>.<ext>.part` while downloading and renames it when complete, so a
file in the cache without that suffix is whole.
"""
import hashlib
import logging
import re
import urllib.parse
from pathlib import Path

from data.ffmpeg import ffmpeg_binary
from data.spec import DownloadParams

log = logging.getLogger(__name__)


class FetchError(Exception):
    """A URL that gave no audio; `unreachable` when the network or host could not be reached."""

    def __init__(self, message: str, unreachable: bool = False):
        super().__init__(message)
        self.unreachable = unreachable


class _Logger:
    """yt-dlp prints to the terminal unless given a logger: route it to `logging` instead."""

    def debug(self, msg):
        log.debug(msg)

    def info(self, msg):
        log.debug(msg)

    def warning(self, msg):
        log.debug(msg)

    def error(self, msg):
        log.debug(msg)


def _options(params: DownloadParams, **extra) -> dict:
    return {"quiet": True, "no_warnings": True, "noprogress": True, "logger": _Logger(),
            "socket_timeout": params.socket_timeout, "retries": params.retries,
            "extractor_retries": params.retries, "fragment_retries": params.retries,
            "enable_file_urls": params.allow_file_urls, "ffmpeg_location": ffmpeg_binary(),
            "format": "bestaudio/best", "noplaylist": True,
            **({"proxy": params.proxy} if params.proxy else {}), **extra}


def _explain(error: Exception, url: str) -> FetchError:
    """yt-dlp's error -> one sentence; network failures flagged as unreachable."""
    from yt_dlp.networking.exceptions import TransportError
    cause = (getattr(error, "exc_info", None) or (None, None))[1]
    if url.lower().startswith("file://") and cause is not None:
        return FetchError(f"the file could not be read ({getattr(cause, 'reason', None) or cause})")
    if isinstance(cause, TransportError) or isinstance(error, TransportError):
        host = urllib.parse.urlsplit(url).hostname or url
        return FetchError(f"could not reach {host} (no network, or the host is down)", unreachable=True)
    text = str(error).removeprefix("ERROR: ").split(" (caused by ")[0].strip()
    return FetchError(text or type(error).__name__)


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
        return f"url-{_hashed(url)}"
    if getattr(ie, "_RETURN_TYPE", None) == "video":
        return _key(ie.ie_key(), ie.get_temp_id(url), url)
    return None


def expand(url: str, params: DownloadParams) -> list[dict]:
    """A playlist URL -> its videos as [{url, key, title}], listing only (no download)."""
    import yt_dlp
    try:
        with yt_dlp.YoutubeDL(_options(params, extract_flat="in_playlist", noplaylist=False)) as ydl:
            info = ydl.extract_info(url, download=False)
    except Exception as error:  # yt-dlp raises DownloadError and others; all become a reason
        raise _explain(error, url) from None
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
    options = _options(params, outtmpl=str(cache_dir / f"{key}.%(ext)s"), overwrites=False)
    try:
        with yt_dlp.YoutubeDL(options) as ydl:
            info = ydl.extract_info(url, download=True)
    except Exception as error:
        raise _explain(error, url) from None
    paths = [Path(d["filepath"]) for d in info.get("requested_downloads") or [] if d.get("filepath")]
    hit = next((p for p in paths if p.exists()), None) or cached(key, cache_dir)
    if hit is None:
        raise FetchError("yt-dlp finished without writing an audio file")
    return hit, False
