"""A dataset spec's sources -> the list of tracks to process, and the inputs that failed
before any audio was touched (a missing folder, a bad line in a URL file, a playlist that
could not be listed). Runs on the driver: it only lists, it decodes nothing.

A track is a flat dict of plain values (Ray Data carries it in Arrow):
  track_id  stable across runs: it names the track's finished part, so a re-run skips it
  kind      "synthetic", "file" or "url";  locator: the file path or the URL
  title, source (what the user wrote: the file's path or the video's URL), seed, seconds
"""
import hashlib
import logging
import os
from pathlib import Path

from data import download
from data.spec import (AUDIO_EXTENSIONS, DatasetSpec, audio_files, read_url_file, unnamed_files, unreadable_files,
                       url_problem)

log = logging.getLogger(__name__)


def _track(track_id, kind, locator, title, seed=0, seconds=0.0) -> dict:
    return {"track_id": track_id, "kind": kind, "locator": locator, "title": title,
            "source": locator if kind != "synthetic" else "synthetic", "seed": seed, "seconds": seconds}


def failure(input: str, stage: str, reason: str, unreachable: bool = False) -> dict:
    return {"input": input, "stage": stage, "reason": reason, "unreachable": unreachable}


def _synthetic(spec: DatasetSpec) -> list[dict]:
    src = spec.synthetic
    return [_track(f"synthetic-{src.seed}-{i:04d}", "synthetic", f"synthetic:{src.seed}:{i}", "",
                   seed=src.seed * 100_003 + i, seconds=src.seconds) for i in range(src.tracks)]


def _folder(folder: str) -> tuple[list[dict], list[dict]]:
    root = Path(folder).expanduser()
    if not root.is_dir():
        what = "is not a directory" if root.exists() else "does not exist"
        return [], [failure(folder, "resolve", f"the folder {what}")]
    files = audio_files(root)
    ignored = [failure(shown(path), "ignored", f"not read: its name has no extension, and only "
                                               f"{', '.join(AUDIO_EXTENSIONS)} files are (rename it to include it)")
               for path in unnamed_files(root)]
    ignored += [failure(shown(path), "resolve", f"not read: it is {why}") for path, why in unreadable_files(root)]
    if not files:
        return [], [failure(folder, "resolve", "the folder holds no mp3, m4a, aac, wav, flac or ogg files")] + ignored
    tracks = []
    for path in files:
        path = path.resolve()
        if shown(path) != str(path):  # Arrow, Parquet and the logs carry UTF-8 only
            ignored.append(failure(shown(path), "resolve", "not read: its name is not valid UTF-8 (an old "
                                                           "disk's or archive's encoding); rename it to include it"))
            continue
        track_id = "file-" + hashlib.sha1(str(path).encode()).hexdigest()[:16]
        tracks.append(_track(track_id, "file", str(path), path.stem))
    return tracks, ignored


def shown(path: Path) -> str:
    """The path as text every writer accepts: a byte that is not UTF-8 (the Latin-1 "é" of a
    name from an old disk) is written as its escape, four characters: `caf\\xe9.wav`."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def _url_lines(name: str, allow_file_urls: bool) -> tuple[list[str], list[dict]]:
    try:
        text = read_url_file(name).decode(errors="replace")
    except OSError as error:
        return [], [failure(name, "resolve", f"the URL file could not be read ({error.strerror or error})")]
    except ValueError as error:
        return [], [failure(name, "resolve", f"the URL file was not read: {error}")]
    urls, failures = [], []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.split(" #", 1)[0].strip()  # "#" inside a URL is a fragment, not a comment
        if not line or line.startswith("#"):
            continue
        problem = url_problem(line, allow_file_urls)
        if problem:
            failures.append(failure(f"{name}:{number}", "resolve", problem))
        else:
            urls.append(line)
    return urls, failures


def _urls(urls: list[str], spec: DatasetSpec) -> tuple[list[dict], list[dict]]:
    tracks, failures = [], []
    for url in urls:
        key = download.video_key(url)
        if key:
            tracks.append(_track(key, "url", url, key))
            continue
        try:
            videos = download.expand(url, spec.download)
        except download.FetchError as error:
            failures.append(failure(url, "resolve", str(error), error.unreachable))
            continue
        tracks += [_track(v["key"], "url", v["url"], v["title"]) for v in videos]
    return tracks, failures


def resolve(spec: DatasetSpec) -> tuple[list[dict], list[dict]]:
    """(tracks, failures): every track once, in a stable order."""
    tracks, failures = [], []
    if spec.synthetic:
        tracks += _synthetic(spec)
    for folder in spec.folders:
        found, failed = _folder(folder)
        tracks += found
        failures += failed
    urls = list(spec.urls)
    for name in spec.url_files:
        found, failed = _url_lines(name, spec.download.allow_file_urls)
        urls += found
        failures += failed
    found, failed = _urls(urls, spec)
    tracks += found
    failures += failed
    unique = {}
    for track in tracks:
        unique.setdefault(track["track_id"], track)  # the same video in two playlists: once
    return list(unique.values()), failures
