"""Build a dataset with Ray Data: tracks -> 5 s segments -> log-mel images -> Parquet.

Output, under `<root>/datasets/<fingerprint>/`:
  segments/      Parquet, one row per segment: track_id, title, source, segment_index,
                 start_seconds, and `mel`, a fixed-shape float16 tensor (n_mels, frames)
  failures.parquet  inputs that gave no segments: input, stage, reason
  manifest.json  the spec, its fingerprint, counts, the mel scaling, library versions
The directory appears under its final name only when complete (written beside it, then
renamed), so a stopped build never leaves something that looks finished.
"""
import json
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from data import mel, segment, synthetic
from data.dataset import MANIFEST, SEGMENTS, dataset_dir, read_manifest
from data.spec import DatasetSpec


@dataclass(frozen=True)
class BuiltDataset:
    path: Path
    fingerprint: str
    segments: int
    reused: bool


def _synthetic_tracks(spec: DatasetSpec) -> list[dict]:
    src = spec.synthetic
    return [{"track_id": f"synthetic-{src.seed}-{i:04d}", "seed": src.seed * 100_003 + i,
             "seconds": src.seconds} for i in range(src.tracks)]


def _track_to_segments(track: dict, spec: DatasetSpec) -> list[dict]:
    sr = spec.mel.sample_rate
    waveform, bpm = synthetic.render_track(track["seed"], track["seconds"], sr)
    audio = segment.from_waveform(waveform, sr)
    return [{"track_id": track["track_id"],
             "title": f"Synthetic techno {track['seed']} ({bpm:.1f} BPM)",
             "source": "synthetic",
             "segment_index": i,
             "start_seconds": start,
             "audio": samples}
            for i, (start, samples) in enumerate(segment.cut(audio, spec.segment.seconds))]


def _mel_batch(batch: dict, spec: DatasetSpec) -> dict:
    images = mel.to_image(np.stack(batch.pop("audio")), spec)
    batch["mel"] = images.astype(np.float16)
    return batch


def _write_failures(path: Path, failures: list[dict]) -> None:
    schema = pa.schema([("input", pa.string()), ("stage", pa.string()), ("reason", pa.string())])
    pq.write_table(pa.Table.from_pylist(failures, schema=schema), path)


def _versions() -> dict:
    import librosa
    import pydub  # noqa: F401  (version via metadata: pydub has no __version__)
    import ray
    from importlib.metadata import version
    return {"ray": ray.__version__, "librosa": librosa.__version__, "pydub": version("pydub"),
            "numpy": np.__version__, "pyarrow": pa.__version__}


def build(spec: DatasetSpec, root: str | os.PathLike) -> BuiltDataset:
    """Build the dataset for `spec` under `root`, or reuse the finished build there."""
    final = dataset_dir(root, spec)
    if (final / MANIFEST).exists():
        manifest = read_manifest(final)
        return BuiltDataset(final, spec.fingerprint, manifest["counts"]["segments"], reused=True)

    import ray.data
    from ray.data.context import DataContext
    from ray.data._internal.tensor_extensions.arrow import FixedShapeTensorFormat

    # Arrow's own fixed_shape_tensor type: any Parquet reader understands it, Ray or not.
    DataContext.get_current().arrow_fixed_shape_tensor_format = FixedShapeTensorFormat.ARROW_NATIVE

    started = time.perf_counter()
    tmp = final.with_name(f".{final.name}.building-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)

    tracks = _synthetic_tracks(spec)
    ds = ray.data.from_items(tracks, override_num_blocks=len(tracks))
    ds = ds.flat_map(_track_to_segments, fn_kwargs={"spec": spec})
    ds = ds.map_batches(_mel_batch, fn_kwargs={"spec": spec}, batch_format="numpy", batch_size=32)
    ds.write_parquet(str(tmp / SEGMENTS))

    n_segments = pq.ParquetDataset(tmp / SEGMENTS).read(columns=["segment_index"]).num_rows
    _write_failures(tmp / "failures.parquet", [])
    manifest = {
        "fingerprint": spec.fingerprint,
        "spec": asdict(spec),
        "hop_length": spec.hop_length(),
        "shape": [spec.mel.n_mels, spec.mel.frames],
        "scaling": mel.scaling(spec),
        "counts": {"tracks": len(tracks), "segments": n_segments, "failures": 0},
        "build_seconds": round(time.perf_counter() - started, 2),
        "versions": _versions(),
    }
    (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2))
    os.replace(tmp, final)
    return BuiltDataset(final, spec.fingerprint, n_segments, reused=False)
