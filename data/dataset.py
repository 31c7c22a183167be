"""Read a built dataset: its manifest, its failures and its mel images, with plain pyarrow.

The node's shared, memory-mapped copy of the mel images is data/node_cache.py's.
"""
import json
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from data.spec import DatasetSpec, MelParams, SegmentParams

MANIFEST = "manifest.json"
SEGMENTS = "segments"
FAILURES = "failures.parquet"


def cache_dir() -> Path:
    """This node's cache of datasets copied from a store (data/remote.py)."""
    return Path(os.environ.get("PLATFORM_CACHE") or Path.home() / ".cache" / "techno-mel-gan")


def dataset_dir(root: str | os.PathLike, spec: DatasetSpec) -> Path:
    return Path(root) / "datasets" / spec.fingerprint


def read_manifest(path: str | os.PathLike) -> dict:
    return json.loads((Path(path) / MANIFEST).read_text())


class DatasetError(ValueError):
    """A dataset's recorded parameters (its manifest, or a checkpoint's copy) that do not read
    as a mel and segment spec, or rows it does not have: one sentence naming which."""


def spec_of(recorded: dict, where: str) -> DatasetSpec:
    """The mel and segment parameters a dataset was built with, from its manifest or from the
    copy a checkpoint keeps (both hold them under "spec"); DatasetError naming `where` if not."""
    try:
        spec = recorded["spec"]
        return DatasetSpec(mel=MelParams(**spec["mel"]), segment=SegmentParams(**spec["segment"]))
    except (KeyError, TypeError, ValueError) as error:
        why = str(error).splitlines()[0][:200] if str(error) else type(error).__name__
        raise DatasetError(f"{where}: no readable mel and segment parameters ({why}).") from None


def read_spec(path: str | os.PathLike) -> DatasetSpec:
    """The mel and segment parameters of the dataset built at `path` (FileNotFoundError without
    a manifest)."""
    return spec_of(read_manifest(path), f"{path}/{MANIFEST}")


def read_rows(path: str | os.PathLike, rows: list[int]) -> tuple[np.ndarray, list[str]]:
    """Mel images at these rows (numbered as `load_mels` orders them) and a name for each,
    `row000012-<track>-<segment>`; DatasetError for a row the dataset does not have."""
    total = segment_count(path)
    bad = [r for r in rows if not 0 <= r < total]
    if bad:
        raise DatasetError(f"row {bad[0]} is out of range; {path} has rows 0 to {total - 1}.")
    picked = _read_rows(path, np.asarray(rows, dtype=np.int64), ["track_id", "segment_index", "mel"])
    names = [f"row{r:06d}-{t}-{s:03d}" for r, t, s in zip(rows, picked.column("track_id").to_pylist(),
                                                             picked.column("segment_index").to_pylist())]
    return _tensor_chunks_to_numpy(picked.column("mel")), names


def read_failures(path: str | os.PathLike) -> list[dict]:
    """The inputs that gave no segments: [{input, stage, reason}]."""
    return pq.read_table(Path(path) / FAILURES).to_pylist()


def _tensor_chunks_to_numpy(column: pa.ChunkedArray) -> np.ndarray:
    return np.concatenate([chunk.to_numpy_ndarray() for chunk in column.chunks])


def subset_indices(total: int, max_segments: int | None, seed: int = 0) -> np.ndarray:
    """Row numbers of a seeded random subset, ascending; all rows when it asks for as many."""
    if max_segments is None or max_segments >= total:
        return np.arange(total)
    assert max_segments > 0, "max_segments must be positive"
    chosen = np.random.default_rng(seed).choice(total, size=max_segments, replace=False)
    return np.sort(chosen)


def selected_rows(total: int, max_segments: int | None = None, seed: int = 0, fraction: float = 1.0,
                  at_least: int = 1) -> np.ndarray:
    """The rows `load_mels` returns for these arguments, ascending."""
    if fraction < 1:
        share = max(at_least, round(fraction * total))
        max_segments = share if max_segments is None else min(max_segments, share)
    return subset_indices(total, max_segments, seed)


def read_segments(path: str | os.PathLike, columns: list[str] | None = None) -> pa.Table:
    """The segments table in a stable order: by track, then segment."""
    table = pq.read_table(Path(path) / SEGMENTS, columns=columns)
    return table.sort_by([("track_id", "ascending"), ("segment_index", "ascending")])


def load_mels(path: str | os.PathLike, max_segments: int | None = None, seed: int = 0,
              fraction: float = 1.0, at_least: int = 1) -> np.ndarray:
    """Mel images of a dataset, (segments, n_mels, frames) float16, ordered by track and segment.

    `max_segments` draws a seeded random subset (the same rows for the same dataset, number
    and seed), so one build serves the study's 260k, 60k and 30k runs; `fraction` asks for
    a share instead (0.23: 60k of 260k), never fewer than `at_least` rows. Only the drawn
    rows are held in memory (`mels_at`).
    """
    return mels_at(path, selected_rows(segment_count(path), max_segments, seed, fraction, at_least))


def segment_count(path: str | os.PathLike) -> int:
    """How many segments the dataset holds, from its Parquet footers (no image is read)."""
    return sum(pq.read_metadata(f).num_rows for f in part_files(path))


def mels_at(path: str | os.PathLike, rows: np.ndarray) -> np.ndarray:
    """The mel images at these rows (numbered as `load_mels` orders them), float16.

    Only those rows are held in memory, so a driver that needs a few thousand reference
    images of a dataset of hundreds of thousands never holds the rest."""
    table = _read_rows(path, np.asarray(rows, dtype=np.int64), ["mel"])
    if table.num_rows == 0:
        return np.zeros((0, *read_manifest(path)["shape"]), dtype=np.float16)
    return _tensor_chunks_to_numpy(table.column("mel")).astype(np.float16, copy=False)


def _index(files: list[Path]) -> pa.Table:
    """Every row's track, segment, file number and row within that file, in read_segments' order."""
    def one(n: int, f: Path) -> pa.Table:
        keys = pq.read_table(f, columns=["track_id", "segment_index"])
        return keys.append_column("file", pa.array(np.full(keys.num_rows, n, dtype=np.int32))) \
                   .append_column("at", pa.array(np.arange(keys.num_rows, dtype=np.int64)))
    return pa.concat_tables([one(n, f) for n, f in enumerate(files)]) \
             .sort_by([("track_id", "ascending"), ("segment_index", "ascending")])


def _read_rows(path: str | os.PathLike, rows: np.ndarray, columns: list[str]) -> pa.Table:
    """These rows (numbered in read_segments' order; any order, repeats allowed) of these
    columns, read one file at a time and keeping only that file's chosen rows."""
    files = part_files(path)
    if not files or len(rows) == 0:
        return pa.table({})
    chosen = _index(files).take(pa.array(rows))
    file_of, at = chosen.column("file").to_numpy(), chosen.column("at").to_numpy()
    pieces, positions = [], []
    for n in np.unique(file_of):
        where = np.flatnonzero(file_of == n)
        pieces.append(pq.read_table(files[n], columns=columns).take(pa.array(at[where])))
        positions.append(where)
    # back into the order the rows were asked in
    return pa.concat_tables(pieces).take(pa.array(np.argsort(np.concatenate(positions), kind="stable")))


# uint8 mels: the image's [-1, 1] in 255 equal steps. In dB a step is (db_max - db_min) / 255
# of the manifest's scaling: 80 dB / 255 = 0.31 dB for the study's mel (top_db 80), so a
# value is off by at most half that, 0.16 dB (`uint8_step_db`).
UINT8_LEVELS = 255
MEL_DTYPES = ("float16", "uint8")


def quantise(images: np.ndarray) -> np.ndarray:
    """Images in [-1, 1] -> uint8, to the nearest of 256 levels."""
    return np.rint((np.clip(images.astype(np.float32), -1, 1) + 1) * (UINT8_LEVELS / 2)).astype(np.uint8)


def dequantise(levels: np.ndarray) -> np.ndarray:
    return levels.astype(np.float32) * (2 / UINT8_LEVELS) - 1


def uint8_step_db(path: str | os.PathLike) -> float:
    """One uint8 level of this dataset's mels, in dB."""
    scaling = read_manifest(path)["scaling"]
    return (scaling["db_max"] - scaling["db_min"]) / UINT8_LEVELS


def part_files(path: str | os.PathLike) -> list[Path]:
    """The dataset's Parquet parts, one per track, named by its track id: sorting the names
    sorts by track, as read_segments does."""
    return sorted((Path(path) / SEGMENTS).glob("*.parquet"), key=lambda p: p.stem)


def check_parts(path: str | os.PathLike) -> int:
    """The rows of the dataset at `path`, every Parquet part's footer read; DatasetError, one
    sentence naming the file, for a part that is no Parquet (replaced, cut short) or rows
    that differ from the manifest's count. Cheap (footers only): the driver runs it before
    trials start, so no trial dies on a damaged file."""
    rows = 0
    for part in part_files(path):
        try:
            rows += pq.read_metadata(part).num_rows
        except (OSError, ValueError) as error:  # pyarrow's ArrowInvalid is a ValueError
            why = str(error).strip().splitlines()[0][:160] if str(error).strip() else type(error).__name__
            raise DatasetError(f"{part} is not a readable Parquet file ({why}): the dataset at {path} is damaged; "
                               "remove that folder and run the command again to build it anew.") from None
    expected = read_manifest(path).get("counts", {}).get("segments")
    if expected is not None and rows != expected:
        raise DatasetError(f"the dataset at {path} has {rows} rows in its Parquet files but its manifest says "
                           f"{expected}: it is damaged; remove that folder and run the command again to build it anew.")
    return rows
