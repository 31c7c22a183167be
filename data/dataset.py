"""Read a built dataset: its manifest and its mel images, with plain pyarrow."""
import json
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from data.spec import DatasetSpec

MANIFEST = "manifest.json"
SEGMENTS = "segments"


def dataset_dir(root: str | os.PathLike, spec: DatasetSpec) -> Path:
    return Path(root) / "datasets" / spec.fingerprint


def read_manifest(path: str | os.PathLike) -> dict:
    return json.loads((Path(path) / MANIFEST).read_text())


def _tensor_chunks_to_numpy(column: pa.ChunkedArray) -> np.ndarray:
    return np.concatenate([chunk.to_numpy_ndarray() for chunk in column.chunks])


def load_mels(path: str | os.PathLike) -> np.ndarray:
    """All mel images of a dataset, (segments, n_mels, frames) float16, in file order."""
    table = pq.read_table(Path(path) / SEGMENTS, columns=["track_id", "segment_index", "mel"])
    # Ray writes blocks in whatever order tasks finish: sort for a stable row order.
    table = table.sort_by([("track_id", "ascending"), ("segment_index", "ascending")])
    return _tensor_chunks_to_numpy(table.column("mel")).astype(np.float16, copy=False)
