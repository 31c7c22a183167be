"""Datasets on an object store (`storage.datasets`: s3://, gs://, any URI pyarrow.fs opens).

The driver builds a dataset on local disk as always (resume, locks and temporary names
need files), then `publish`es the finished directory to `<storage.datasets>/<fingerprint>/`
with `manifest.json` written last: where the manifest is, the rest is complete. A trial
calls `local_path`, which makes a node-local copy once (`local_copy`: under a file lock, so
trials starting together on one node download once; into a temporary directory renamed
when whole) in `$PLATFORM_CACHE/datasets/<fingerprint>/` (default
`~/.cache/techno-mel-gan`). Everything after that (Parquet, the FID statistics cache and its
`fcntl` locks, artifacts) works on local files, as on a shared disk.

The copy is keyed by the manifest: a node whose copy has the published manifest reuses it;
a dataset published again under the same fingerprint (`prepare --retry-failed`) is copied
again. FID statistics files are the one part that grows after publication; both directions
add the ones missing (`fid_stats/`), so a sweep with new evaluation settings still finds
its reference statistics computed once, by the driver.
"""
import fcntl
import json
import os
import posixpath
import shutil
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pyarrow.fs as pafs

from data.dataset import MANIFEST, cache_dir, read_manifest
from data.spec import without_credentials

FID_STATS = "fid_stats"
COPY_THREADS = 8


class StoreError(Exception):
    """An object store the datasets cannot go to or come from; the message says why."""


def is_uri(path: str) -> bool:
    return "://" in str(path)


def join(uri: str, *parts: str) -> str:
    """`uri` with `parts` appended to its path; a query (`?endpoint_override=...`) stays last."""
    split = urlsplit(uri)
    return urlunsplit(split._replace(path=posixpath.join(split.path.rstrip("/") or "/", *parts)))


def first_line(error: Exception) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


def open_uri(uri: str) -> tuple[pafs.FileSystem, str]:
    try:
        fs, path = pafs.FileSystem.from_uri(uri)
    except (ValueError, OSError) as error:  # pyarrow's ArrowInvalid is a ValueError
        raise StoreError(f"{display(uri)!r} is not a URI pyarrow can open ({first_line(error)})") from None
    return fs, path.rstrip("/")


def display(uri: str) -> str:
    """`uri` for messages and tags: its credentials left out (data.spec.without_credentials)."""
    return without_credentials(uri)


def published(uri: str) -> bool:
    """Whether a whole dataset is published at `uri` (its manifest is there)."""
    fs, path = open_uri(uri)
    return fs.get_file_info(f"{path}/{MANIFEST}").type != pafs.FileType.NotFound


def _remote_manifest(fs: pafs.FileSystem, path: str) -> dict | None:
    manifest = f"{path}/{MANIFEST}"
    if fs.get_file_info(manifest).type == pafs.FileType.NotFound:
        return None
    with fs.open_input_stream(manifest) as stream:
        return json.loads(stream.read())


def _hidden(relative: str) -> bool:
    """Locks and temporary files (`.name`) are a machine's own, never copied."""
    return any(part.startswith(".") for part in relative.split("/"))


def _local_files(directory: Path) -> list[str]:
    return sorted(p.relative_to(directory).as_posix() for p in directory.rglob("*")
                  if p.is_file() and not _hidden(p.relative_to(directory).as_posix()))


def _remote_files(fs: pafs.FileSystem, path: str) -> list[str]:
    infos = fs.get_file_info(pafs.FileSelector(path, recursive=True, allow_not_found=True))
    return sorted(rel for info in infos if info.type == pafs.FileType.File
                  and not _hidden(rel := info.path[len(path) + 1:]))


def _copy(files: list[str], source: str, source_fs: pafs.FileSystem,
          destination: str, destination_fs: pafs.FileSystem) -> None:
    for parent in sorted({posixpath.dirname(f) for f in files}):
        destination_fs.create_dir(posixpath.join(destination, parent), recursive=True)

    def one(relative: str) -> None:
        pafs.copy_files(f"{source}/{relative}", f"{destination}/{relative}",
                        source_filesystem=source_fs, destination_filesystem=destination_fs)
    with ThreadPoolExecutor(COPY_THREADS) as pool:  # object stores answer each request slowly
        list(pool.map(one, files))


def publish(local_dir: str | os.PathLike, uri: str) -> int:
    """Upload the finished dataset at `local_dir` to `uri` (manifest last), unless `uri`
    holds this very build already; then only FID statistics it lacks. Files uploaded."""
    local_dir = Path(local_dir)
    fs, path = open_uri(uri)
    local = pafs.LocalFileSystem()
    files = _local_files(local_dir)
    if _remote_manifest(fs, path) == read_manifest(local_dir):
        have = set(_remote_files(fs, f"{path}/{FID_STATS}"))
        todo = [f for f in files if f.startswith(f"{FID_STATS}/") and f.removeprefix(f"{FID_STATS}/") not in have]
        _copy(todo, str(local_dir), local, path, fs)
        return len(todo)
    # another build of this fingerprint (or a partial upload): from the top, manifest first out
    if fs.get_file_info(path).type != pafs.FileType.NotFound:
        fs.delete_dir_contents(path, missing_dir_ok=True)
    todo = [f for f in files if f != MANIFEST]
    _copy(todo, str(local_dir), local, path, fs)
    _copy([MANIFEST], str(local_dir), local, path, fs)
    return len(todo) + 1


def _download(fs: pafs.FileSystem, path: str, files: list[str], into: Path) -> None:
    # an object store's keys are names anyone with write access chose: none may land
    # outside this node's copy ("a/../../x", "/x", NUL)
    for relative in files:
        parts = relative.split("/")
        if "\x00" in relative or "\\" in relative or any(part in ("", ".", "..") for part in parts):
            raise StoreError(f"the store has an object {relative!r} under {path}, a name that would be written "
                             f"outside {into}: nothing was copied from it (remove that object)")
    _copy(files, path, fs, str(into), pafs.LocalFileSystem())


def fetch(uri: str, dest: str | os.PathLike, lock: str | os.PathLike) -> bool:
    """Make `dest` a copy of the dataset published at `uri`, holding the file lock `lock`.
    True if it was downloaded, False if `dest` had it already (missing FID statistics are
    added either way)."""
    dest, lock = Path(dest), Path(lock)
    fs, path = open_uri(uri)
    lock.parent.mkdir(parents=True, exist_ok=True)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # trials starting together on this node: one downloads
        remote = _remote_manifest(fs, path)
        if remote is None:
            raise StoreError(f"no dataset is published at {display(uri)} (it has no {MANIFEST})")
        if (dest / MANIFEST).exists() and read_manifest(dest) == remote:
            have = set(_local_files(dest / FID_STATS)) if (dest / FID_STATS).exists() else set()
            missing = [f"{FID_STATS}/{f}" for f in _remote_files(fs, f"{path}/{FID_STATS}") if f not in have]
            if missing:
                _download(fs, path, missing, dest)
            return False
        tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex}.download")  # not a pid: containers share pids
        shutil.rmtree(tmp, ignore_errors=True)
        files = _remote_files(fs, path)
        _download(fs, path, [f for f in files if f != MANIFEST], tmp)
        _download(fs, path, [MANIFEST], tmp)
        if dest.exists():  # an older build of this fingerprint
            old = dest.with_name(f".{dest.name}.{uuid.uuid4().hex}.replaced")
            os.replace(dest, old)
            os.replace(tmp, dest)
            shutil.rmtree(old)
        else:
            os.replace(tmp, dest)
        return True


def local_copy(uri: str) -> Path:
    """This node's copy of the dataset published at `uri` (`<storage.datasets>/<fingerprint>`)."""
    _, path = open_uri(uri)
    name = posixpath.basename(path)
    dest = cache_dir() / "datasets" / name
    fetch(uri, dest, cache_dir() / "locks" / f"{name}.lock")
    return dest


def local_path(dataset: str) -> str:
    """Where a trial reads its dataset: the path itself, or a node-local copy of a URI."""
    return str(local_copy(dataset)) if is_uri(dataset) else dataset
