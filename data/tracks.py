"""One track, start to finish: fetch, decode, segment, mel, and its Parquet part.

The Ray Data pipeline and the benchmark's plain loop both call these functions, so they
compare the same work. Each returns a small summary row (counts, timings, or the stage
and reason it failed); an exception never escapes for a bad input, so the build goes on.
"""
import errno
import os
import time
import uuid
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from data import download, mel, segment, synthetic
from data.spec import DatasetSpec

STAGES = ("fetch", "decode", "segment", "mel", "write")
# A fault of the machine, not of the input: the build stops on it instead of skipping the input
ENVIRONMENT = "environment"
_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EROFS)
_FULL_TEXT = ("no space left on device", "disk quota exceeded", "read-only file system")


def disk_full(error: BaseException | str) -> bool:
    """Whether `error` (or a reason's text: yt-dlp and pyarrow pass on the system's message) is
    a full, over-quota or read-only disk."""
    if isinstance(error, OSError) and error.errno in _FULL:
        return True
    return any(text in str(error).lower() for text in _FULL_TEXT)


def part_path(parts_dir: Path, track_id: str) -> Path:
    return parts_dir / f"{track_id}.parquet"


def segment_schema(spec: DatasetSpec) -> pa.Schema:
    tensor = pa.fixed_shape_tensor(pa.float16(), [spec.mel.n_mels, spec.mel.frames])
    return pa.schema([("track_id", pa.string()), ("title", pa.string()), ("source", pa.string()),
                      ("segment_index", pa.int32()), ("start_seconds", pa.float64()), ("mel", tensor)])


def _summary(track: dict, **fields) -> dict:
    row = {"track_id": track["track_id"], "input": track["locator"], "audio_path": "",
           "segments": 0, "silent": 0, "cached": False, "stage": "", "reason": "", "unreachable": False}
    row.update({f"seconds_{stage}": 0.0 for stage in STAGES})
    row.update(fields)
    return row


def fetch(track: dict, spec: DatasetSpec, cache_dir: Path) -> dict:
    """A URL track -> its audio in the download cache; other tracks pass through."""
    if track["kind"] != "url":
        return {**track, "audio_path": track["locator"] if track["kind"] == "file" else "",
                "fetch_failure": "", "unreachable": False, "seconds_fetch": 0.0}
    started = time.perf_counter()
    try:
        path, _ = download.download(track["locator"], track["track_id"], cache_dir, spec.download)
        return {**track, "audio_path": str(path), "fetch_failure": "", "unreachable": False,
                "seconds_fetch": time.perf_counter() - started}
    except download.FetchError as error:
        reason = f"disk full at {cache_dir}" if disk_full(error) else str(error)  # the machine's, not the URL's
        return {**track, "audio_path": "", "fetch_failure": reason, "unreachable": error.unreachable,
                "seconds_fetch": time.perf_counter() - started}


def process(track: dict, spec: DatasetSpec, parts_dir: Path) -> dict:
    """A fetched track -> `<parts_dir>/<track_id>.parquet` (written whole or not at all)."""
    began, started = time.time(), time.perf_counter()  # wall clock: when, across processes
    try:
        row = _process(track, spec, parts_dir)
    except Exception as error:  # one odd track must not stop a build of thousands
        if disk_full(error):  # ... but a full disk stops it: the build says so (data.pipeline)
            row = _summary(track, stage=ENVIRONMENT, reason=f"disk full at {parts_dir}")
        else:
            row = _summary(track, stage="process", reason=f"unexpected {type(error).__name__}: {error}")
    return {**row, "began": began, "ended": began + time.perf_counter() - started}


def _process(track: dict, spec: DatasetSpec, parts_dir: Path) -> dict:
    times = {"seconds_fetch": track.get("seconds_fetch", 0.0)}
    if track.get("fetch_failure", "").startswith("disk full at "):  # the download cache's disk
        return _summary(track, stage=ENVIRONMENT, reason=track["fetch_failure"], **times)
    if track.get("fetch_failure"):
        return _summary(track, stage="fetch", reason=track["fetch_failure"],
                        unreachable=bool(track.get("unreachable")), **times)
    sr = spec.mel.sample_rate
    clock = time.perf_counter()

    def lap(stage):
        nonlocal clock
        now = time.perf_counter()
        times[f"seconds_{stage}"] = now - clock
        clock = now

    title = track["title"]
    try:
        if track["kind"] == "synthetic":
            waveform, bpm = synthetic.render_track(track["seed"], track["seconds"], sr)
            audio = segment.from_waveform(waveform, sr)
            title = f"Synthetic techno {track['seed']} ({bpm:.1f} BPM)"
        else:
            audio = segment.decode(track.get("audio_path") or track["locator"], sr,
                                   max_seconds=spec.segment.max_track_seconds)
    except (segment.DecodeError, OSError) as error:
        if disk_full(error):
            raise
        return _summary(track, stage="decode", reason=str(error), **times)
    lap("decode")

    pieces, silent = segment.cut_track(audio, spec.segment)
    lap("segment")
    if not pieces:
        length = len(audio) / 1000.0
        usable = length - spec.segment.skip_start_seconds - spec.segment.skip_end_seconds
        if usable < spec.segment.seconds:
            skipped = f", {usable:.1f} s after skipping intro and outro" if usable < length else ""
            reason = f"shorter than one segment ({length:.1f} s of audio{skipped}, {spec.segment.seconds:g} s needed)"
        else:
            reason = f"all {silent} segments are silent (below {spec.segment.silence_dbfs:g} dBFS)"
        return _summary(track, stage="segment", reason=reason, silent=silent, **times)

    images = mel.to_image(np.stack([samples for _, samples in pieces]), spec).astype(np.float16)
    lap("mel")

    n = len(pieces)
    table = pa.table({
        "track_id": pa.array([track["track_id"]] * n, pa.string()),
        "title": pa.array([title] * n, pa.string()),
        "source": pa.array([track["source"]] * n, pa.string()),
        "segment_index": pa.array(np.arange(n, dtype=np.int32)),
        "start_seconds": pa.array([start for start, _ in pieces], pa.float64()),
        "mel": pa.FixedShapeTensorArray.from_numpy_ndarray(np.ascontiguousarray(images)),
    }, schema=segment_schema(spec))
    final = part_path(parts_dir, track["track_id"])
    tmp = final.with_name(f".{final.name}.{uuid.uuid4().hex}.tmp")  # unique across nodes and containers
    try:
        pq.write_table(table, tmp)
        os.replace(tmp, final)  # a stopped build leaves either the whole part or none
    finally:
        tmp.unlink(missing_ok=True)  # a write that failed (a full disk) leaves no half file
    lap("write")
    return _summary(track, audio_path=track.get("audio_path", ""), segments=n, silent=silent, **times)
