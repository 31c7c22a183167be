"""The node's own copy of a dataset's mel images: one memory-mapped `.npy` file per node.

Every trial on a node maps the same file, so the node holds one copy in its page cache
however many trials read it (trainables/dataset_share.py). The file lives on the node's
own disk, never on shared storage, because a memory map of a file another node replaces
fails with SIGBUS, an NFS lock holds every trial of the cluster behind one writer, and
shared storage should hold only what every node needs: the Parquet and its manifest.

Where: `$PLATFORM_NODE_CACHE`, else `<the node's temp dir>/techno-mel-gan-<uid>`, then
`mels/<fingerprint>/mels-<dtype>.npy`, with `mels-<dtype>.json` beside it recording what it
was made from: the dataset's fingerprint, a digest of its manifest (a `prepare
--retry-failed` rewrites the manifest, so the copy of the older build is made again), the
row count, the dtype, the shape, a digest of the `.npy` header and the file's size. A copy
that does not match all of them (cut short, replaced, of another build) is written again
before it is mapped; a directory or a device in its place is one sentence naming it.

One writer per node: under an `fcntl` lock on the node's own disk (where it holds), into a
temporary name unique across machines and containers (a uuid, not a pid), renamed when
whole, removed if the write fails.
"""
import errno
import fcntl
import hashlib
import json
import os
import re
import stat
import tempfile
import uuid
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from data.dataset import MANIFEST, MEL_DTYPES, DatasetError, check_parts, part_files, quantise, read_manifest

NODE_CACHE = "PLATFORM_NODE_CACHE"
FULL_DISK = (errno.ENOSPC, errno.EDQUOT)


def node_cache_dir() -> Path:
    """This node's cache of mel arrays: $PLATFORM_NODE_CACHE, else under the node's temp dir."""
    given = os.environ.get(NODE_CACHE)
    return Path(given) if given else Path(tempfile.gettempdir()) / f"techno-mel-gan-{os.getuid()}"


def _manifest_digest(path: Path) -> str:
    return hashlib.sha256((path / MANIFEST).read_bytes()).hexdigest()


def _expected(path: Path, dtype: str) -> dict:
    """What the node's copy of the dataset at `path` must record to be used."""
    manifest = read_manifest(path)
    rows = manifest.get("counts", {}).get("segments")
    if rows is None:  # a manifest without counts: the Parquet files say it
        rows = check_parts(path)
    return {"fingerprint": str(manifest.get("fingerprint") or path.resolve().name),
            "manifest": _manifest_digest(path), "rows": int(rows), "dtype": dtype}


def _header(file: Path) -> tuple[str, tuple, str]:
    """(sha256 of the `.npy` header, the shape, the dtype) of `file`."""
    with open(file, "rb") as stream:
        version = np.lib.format.read_magic(stream)
        read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _, dtype = read(stream)
        length = stream.tell()
        stream.seek(0)
        return hashlib.sha256(stream.read(length)).hexdigest(), tuple(shape), str(dtype)


def _usable(target: Path, record: Path, expected: dict) -> bool:
    """Whether `target` is the node's copy `expected` describes, whole."""
    try:
        kept = json.loads(record.read_text())
        if any(kept.get(key) != value for key, value in expected.items()):
            return False
        digest, shape, dtype = _header(target)
        return (digest == kept["header"] and shape[0] == expected["rows"] and dtype == expected["dtype"]
                and target.stat().st_size == kept["bytes"])
    except (OSError, ValueError, KeyError, TypeError):  # missing, cut short, not JSON, not an .npy
        return False


def _check_kind(target: Path) -> None:
    """A directory, a link or a device where the array goes is none of ours: name it."""
    try:
        mode = target.lstat().st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISREG(mode):
        kind = ("a directory" if stat.S_ISDIR(mode) else "a symbolic link" if stat.S_ISLNK(mode)
                else "not a regular file")
        raise DatasetError(f"{target} is {kind}, not this node's mel array: remove it, and the next trial "
                           f"writes the array there again (or set ${NODE_CACHE} to another folder).")


def mel_array(path: str | os.PathLike, dtype: str = "float16") -> np.ndarray:
    """All the dataset's mel images, (segments, n_mels, frames) in read_segments' order, as a
    read-only memory map of this node's copy, written on first use or when it does not match
    the dataset (one track at a time, so a dataset larger than memory can be written).
    uint8: `quantise`d; float16: as in the Parquet. DatasetError, one sentence, when it
    cannot be."""
    assert dtype in MEL_DTYPES, f"dtype must be one of {MEL_DTYPES}"
    path = Path(path)
    expected = _expected(path, dtype)
    folder = node_cache_dir() / "mels" / re.sub(r"[^A-Za-z0-9_-]", "_", expected["fingerprint"])[:64]
    target, record = folder / f"mels-{dtype}.npy", folder / f"mels-{dtype}.json"
    _check_kind(target)
    if not _usable(target, record, expected):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            with open(folder / f".mels-{dtype}.lock", "w") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)  # trials starting together on this node: one writes
                _check_kind(target)
                if not _usable(target, record, expected):
                    _write(path, folder, target, record, expected)
        except OSError as error:
            if error.errno in FULL_DISK:
                raise DatasetError(f"disk full at {folder}: this node's mel array of {path} could not be written; "
                                   f"free space there or set ${NODE_CACHE} to a larger disk.") from None
            raise DatasetError(f"this node's mel array of {path} could not be written at {folder} "
                               f"({error.strerror or error}).") from None
    return np.load(target, mmap_mode="r")


def _read_part(part: Path) -> np.ndarray:
    try:
        table = pq.read_table(part, columns=["segment_index", "mel"]).sort_by("segment_index")
    except (OSError, ValueError) as error:  # a footer that reads, pages that do not
        why = str(error).strip().splitlines()[0][:160] if str(error).strip() else type(error).__name__
        raise DatasetError(f"{part} is not a readable Parquet file ({why}): the dataset is damaged; remove its "
                           "folder and run platform.prepare again.") from None
    return np.concatenate([chunk.to_numpy_ndarray() for chunk in table.column("mel").chunks])


def _write(path: Path, folder: Path, target: Path, record: Path, expected: dict) -> None:
    files = part_files(path)
    rows = check_parts(path)  # a damaged part named, before anything is written
    shape = pq.read_schema(files[0]).field("mel").type.shape if files else read_manifest(path)["shape"]
    unique = uuid.uuid4().hex  # not a pid: two containers on one disk can share pids
    tmp, tmp_record = folder / f".{target.name}.{unique}.tmp", folder / f".{record.name}.{unique}.tmp"
    try:
        # written, not mapped: a full disk is then an OSError here, where a mapped page would be SIGBUS
        with open(tmp, "wb") as stream:
            dtype = np.dtype(expected["dtype"])
            np.lib.format.write_array_header_1_0(stream, {"descr": np.lib.format.dtype_to_descr(dtype),
                                                          "fortran_order": False, "shape": (rows, *shape)})
            os.posix_fallocate(stream.fileno(), 0, stream.tell() + rows * int(np.prod(shape)) * dtype.itemsize)
            for f in files:
                mels = _read_part(f)
                stream.write(np.ascontiguousarray(quantise(mels) if dtype == np.uint8 else mels.astype(np.float16)).tobytes())
        digest, _, _ = _header(tmp)
        tmp_record.write_text(json.dumps({**expected, "shape": [rows, *shape], "header": digest,
                                          "bytes": tmp.stat().st_size}))
        os.replace(tmp, target)  # whole or absent: a trial never maps half a file
        os.replace(tmp_record, record)  # last: until it is there, the copy reads as unfinished
    finally:
        for leftover in (tmp, tmp_record):
            leftover.unlink(missing_ok=True)
