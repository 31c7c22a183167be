"""The Ray Data pipeline writes a Parquet dataset of fixed-shape mel tensors, once."""
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from data import mel, pipeline, segment, synthetic
from data.dataset import load_mels, read_manifest
from data.spec import DatasetSpec, MelParams, SyntheticSource
from platform.spec.typed import build
from tests.helpers import TINY_DATASET


def test_synthetic_track_is_seeded_and_at_techno_tempo():
    a, bpm_a = synthetic.render_track(3, 4.0, 16000)
    b, bpm_b = synthetic.render_track(3, 4.0, 16000)
    c, _ = synthetic.render_track(4, 4.0, 16000)
    assert np.array_equal(a, b) and bpm_a == bpm_b
    assert not np.array_equal(a, c)
    assert 120 <= bpm_a <= 140
    assert a.dtype == np.float32 and len(a) == 64000 and 0.5 < np.abs(a).max() <= 0.9 + 1e-6


def test_cut_gives_whole_segments_and_drops_the_tail():
    audio = segment.from_waveform(np.zeros(int(12.3 * 8000), dtype=np.float32), 8000)
    pieces = segment.cut(audio, 5.0)
    assert [start for start, _ in pieces] == [0.0, 5.0]
    assert all(len(samples) == 40000 for _, samples in pieces)


@pytest.mark.parametrize("n_mels,frames", [(64, 64), (128, 128)])
def test_mel_image_shape_and_range(n_mels, frames):
    spec = DatasetSpec(mel=MelParams(n_mels=n_mels, frames=frames))
    wave, _ = synthetic.render_track(1, 5.0, spec.mel.sample_rate)
    image = mel.to_image(wave[None], spec)
    assert image.shape == (1, n_mels, frames)
    assert image.min() >= -1.0 and image.max() == pytest.approx(1.0)


@pytest.mark.slow
def test_build_writes_parquet_and_reuses_it(ray_local, tmp_path):
    spec = build(DatasetSpec, TINY_DATASET, "dataset")
    built = pipeline.build(spec, tmp_path)
    assert not built.reused
    assert built.segments == 6  # 3 tracks x floor(11 s / 5 s)
    assert built.path == tmp_path / "datasets" / spec.fingerprint

    table = pq.read_table(built.path / "segments")
    assert table.num_rows == 6
    assert {"track_id", "title", "source", "segment_index", "start_seconds", "mel"} <= set(table.schema.names)
    mel_type = table.schema.field("mel").type
    assert isinstance(mel_type, pa.FixedShapeTensorType)
    assert mel_type.shape == [64, 64] and mel_type.value_type == pa.float16()
    assert sorted(table.column("start_seconds").to_pylist()) == [0.0] * 3 + [5.0] * 3

    images = load_mels(built.path)
    assert images.shape == (6, 64, 64) and images.dtype == np.float16
    assert np.isfinite(images).all() and images.min() >= -1 and images.max() <= 1

    manifest = read_manifest(built.path)
    assert manifest["fingerprint"] == spec.fingerprint
    assert manifest["counts"] == {"tracks": 3, "segments": 6, "failures": 0}
    assert manifest["scaling"]["db_min"] == -80.0
    assert pq.read_table(built.path / "failures.parquet").num_rows == 0
    json.dumps(manifest)

    stamp = (built.path / "manifest.json").stat().st_mtime_ns
    again = pipeline.build(spec, tmp_path)
    assert again.reused and again.segments == 6
    assert (built.path / "manifest.json").stat().st_mtime_ns == stamp
    # no leftovers of a build in progress
    assert [p.name for p in (tmp_path / "datasets").iterdir()] == [spec.fingerprint]


def test_fingerprint_follows_sources_and_parameters():
    base = DatasetSpec()
    assert base.fingerprint == DatasetSpec().fingerprint
    assert base.fingerprint != DatasetSpec(synthetic=SyntheticSource(seed=1)).fingerprint
    assert base.fingerprint != DatasetSpec(mel=MelParams(n_mels=128)).fingerprint


def test_one_reader_gives_a_datasets_spec_and_rows_and_names_what_is_wrong(tmp_path):
    from dataclasses import asdict

    from data import dataset, sources, tracks
    from data.dataset import DatasetError, read_rows, read_spec, spec_of
    spec = DatasetSpec(synthetic=SyntheticSource(tracks=2, seconds=11.0, seed=3))
    path = tmp_path / "ds"
    (path / dataset.SEGMENTS).mkdir(parents=True)
    for track in sources.resolve(spec)[0]:
        tracks.process(track, spec, path / dataset.SEGMENTS)
    (path / dataset.MANIFEST).write_text(json.dumps({"spec": {"mel": asdict(spec.mel), "segment": asdict(spec.segment)}}))

    assert read_spec(path).mel == spec.mel and read_spec(path).segment == spec.segment
    images, names = read_rows(path, [0, 3])
    assert images.shape == (2, spec.mel.n_mels, spec.mel.frames)
    assert np.array_equal(images, load_mels(path)[[0, 3]])
    assert names[1].startswith("row000003-") and names[1].endswith("-001")  # track 2's second segment
    with pytest.raises(DatasetError, match="row 4 is out of range; .* has rows 0 to 3"):
        read_rows(path, [4])
    with pytest.raises(DatasetError, match="the checkpoint: no readable mel and segment parameters"):
        spec_of({"spec": {"mel": {"n_mels": "many"}, "segment": {}}}, "the checkpoint")
    with pytest.raises(DatasetError, match="manifest.json: no readable"):
        (path / dataset.MANIFEST).write_text("{}")
        read_spec(path)


def _parts(path, tracks: dict[str, int], shape=(4, 4), seed=0) -> np.ndarray:
    """A dataset of these tracks (name -> segments), written in a shuffled file layout (two
    tracks share a file, rows out of order); returns the images in read_segments' order."""
    from data import dataset
    rng = np.random.default_rng(seed)
    rows = [(t, s) for t in tracks for s in range(tracks[t])]
    images = {row: rng.random(shape, dtype=np.float32).astype(np.float16) for row in rows}
    folder = path / dataset.SEGMENTS
    folder.mkdir(parents=True)
    order = rng.permutation(len(rows))
    for n, chunk in enumerate(np.array_split(order, 3)):
        picked = [rows[i] for i in chunk]
        pq.write_table(pa.table({"track_id": [t for t, _ in picked], "segment_index": [s for _, s in picked],
                                 "mel": pa.FixedShapeTensorArray.from_numpy_ndarray(
                                     np.stack([images[r] for r in picked]))}), folder / f"part-{n}.parquet")
    (path / dataset.MANIFEST).write_text(json.dumps({"shape": list(shape)}))
    return np.stack([images[r] for r in sorted(rows)])


def test_rows_are_read_in_the_one_order_whatever_the_file_layout(tmp_path):
    from data import dataset
    expected = _parts(tmp_path, {"a": 5, "b": 3, "c": 4})
    assert np.array_equal(dataset.load_mels(tmp_path), expected)
    assert np.array_equal(dataset.mels_at(tmp_path, [7, 0, 7, 11]), expected[[7, 0, 7, 11]])
    assert np.array_equal(dataset.load_mels(tmp_path, max_segments=5, seed=2),
                          expected[dataset.subset_indices(12, 5, 2)])
    assert dataset.segment_count(tmp_path) == 12 and dataset.mels_at(tmp_path, []).shape == (0, 4, 4)


def test_the_driver_reads_only_the_reference_and_held_out_rows(tmp_path, monkeypatch):
    # the reference statistics and real-vs-real of a large dataset must not load every row:
    # at the study's 260k segments that is more than the head node's memory
    from data import dataset
    from tests.helpers import CHEAP_EMBEDDING
    from trainables.metrics import embeddings, reference
    _parts(tmp_path, {f"t{i:02d}": 10 for i in range(30)}, shape=(64, 64))
    read = []
    real_mels_at = dataset.mels_at
    monkeypatch.setattr(dataset, "mels_at", lambda path, rows: read.append(len(rows)) or real_mels_at(path, rows))
    monkeypatch.setattr(reference, "mels_at", dataset.mels_at)
    result = reference.real_vs_real(tmp_path, "fp", embeddings.build(CHEAP_EMBEDDING), 16)
    assert result["count"] == 16 and np.isfinite(result["fid"])
    assert sum(read) == 32, f"read {read} rows of 300 for a reference of 16 and 16 held out"
