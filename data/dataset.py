"""Read a built dataset: its manifest, its failures and its mel images, with plain pyarrow."""
import json
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from data.spec import DatasetSpec

MANIFEST = "manifest.json"
SEGMENTS = "segments"
FAILURES = "failures.parquet"


def dataset_dir(root: str | os.PathLike, spec: DatasetSpec) -> Path:
    return Path(root) / "datasets" / spec.fingerprint


def read_manifest(path: str | os.PathLike) -> dict:
    return json.loads((Path(path) / MANIFEST).read_text())


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


def read_segments(path: str | os.PathLike, columns: list[str] | None = None) -> pa.Table:
    """The segments table in a stable order: by track, then segment."""
    table = pq.read_table(Path(path) / SEGMENTS, columns=columns)
    return table.sort_by([("track_id", "ascending"), ("segment_index", "ascending")])


def load_mels(path: str | os.PathLike, max_segments: int | None = None, seed: int = 0,
              fraction: float = 1.0, at_least: int = 1) -> np.ndarray:
    """Mel images of a dataset, (segments, n_mels, frames) float16, ordered by track and segment.

    `max_segments` draws a seeded random subset (the same rows for the same dataset, number
    and seed), so one build serves the study's 260k, 60k and 30k runs; `fraction` asks for
    a share instead (0.23: 60k of 260k), never fewer than `at_least` rows.
    """
    table = read_segments(path, columns=["track_id", "segment_index", "mel"])
    if fraction < 1:
        share = max(at_least, round(fraction * table.num_rows))
        max_segments = share if max_segments is None else min(max_segments, share)
    rows = subset_indices(table.num_rows, max_segments, seed)
    if len(rows) < table.num_rows:
        table = table.take(pa.array(rows))
    return _tensor_chunks_to_numpy(table.column("mel")).astype(np.float16, copy=False)
