"""Issue 30, item 3: caches are checked before use. The node's mel array (data/node_cache.py)
cut short, truncated, of an older build, a directory or a link to /dev/zero in its place, a
write that fails; and a damaged Parquet file, named at the driver before trials start."""
import errno
import json
import os
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from data import dataset, node_cache, pipeline, sources, tracks
from data.spec import DatasetSpec, SyntheticSource

SPEC = DatasetSpec(synthetic=SyntheticSource(tracks=4, seconds=11.0, seed=3))  # 4 x 2 = 8 segments


def _built(root: Path, spec: DatasetSpec = SPEC, only: int | None = None) -> Path:
    """A finished build of `spec` under `root` as data.pipeline lays it out, written by the
    per-track step itself (no Ray); `only`: the first tracks alone (a build that skipped some)."""
    path = root / "datasets" / spec.fingerprint
    (path / dataset.SEGMENTS).mkdir(parents=True, exist_ok=True)
    for track in sources.resolve(spec)[0][:only]:
        assert tracks.process(track, spec, path / dataset.SEGMENTS)["segments"] > 0
    parts = dataset.part_files(path)
    rows = sum(pq.read_metadata(p).num_rows for p in parts)
    (path / dataset.MANIFEST).write_text(json.dumps({
        "fingerprint": spec.fingerprint, "shape": [64, 64],
        "counts": {"tracks": len(parts), "segments": rows, "failures": 0}}))
    (path / dataset.FAILURES).write_bytes(b"")
    return path


@pytest.fixture
def node(tmp_path, monkeypatch):
    """This node's cache in tmp; returns the folder of SPEC's arrays."""
    monkeypatch.setenv(node_cache.NODE_CACHE, str(tmp_path / "node"))
    return tmp_path / "node" / "mels" / SPEC.fingerprint


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob("*.tmp"))


def test_a_copy_cut_short_or_truncated_is_written_again(tmp_path, node):
    path = _built(tmp_path)
    whole = np.array(node_cache.mel_array(path))  # a copy: the damage below is done in place, under any map
    assert whole.shape == (8, 64, 64) and np.array_equal(whole, dataset.load_mels(path))
    target = node / "mels-float16.npy"

    np.save(target, whole[:4])  # a valid .npy of 4 of its 8 rows
    assert node_cache.mel_array(path).shape == (8, 64, 64)
    with open(target, "r+b") as stream:  # cut mid-row: numpy alone says "mmap length is greater"
        stream.truncate(target.stat().st_size // 2)
    assert np.array_equal(np.array(node_cache.mel_array(path)), whole)
    assert _leftovers(node) == []


def test_a_new_build_of_the_same_fingerprint_is_copied_again(tmp_path, node):
    path = _built(tmp_path, only=3)
    assert node_cache.mel_array(path).shape == (6, 64, 64)
    _built(tmp_path)  # prepare --retry-failed: the missing track added, the manifest rewritten
    assert node_cache.mel_array(path).shape == (8, 64, 64)
    assert np.array_equal(np.asarray(node_cache.mel_array(path, "float16")), dataset.load_mels(path))


@pytest.mark.parametrize("planted", ["directory", "link to /dev/zero"])
def test_something_else_in_its_place_is_one_sentence(tmp_path, node, planted):
    path = _built(tmp_path)
    node.mkdir(parents=True)
    target = node / "mels-float16.npy"
    if planted == "directory":
        target.mkdir()
    else:
        target.symlink_to("/dev/zero")
    with pytest.raises(dataset.DatasetError) as raised:
        node_cache.mel_array(path)
    message = str(raised.value)
    assert str(target) in message and "remove it" in message and "\n" not in message
    assert _leftovers(node) == []


def test_a_write_that_fails_leaves_no_temporary_file(tmp_path, node, monkeypatch):
    path = _built(tmp_path)

    def full(fd, offset, length):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(node_cache.os, "posix_fallocate", full)
    with pytest.raises(dataset.DatasetError, match=f"^disk full at {node}: .*") as raised:
        node_cache.mel_array(path)
    assert "\n" not in str(raised.value)
    assert _leftovers(node) == [] and not (node / "mels-float16.npy").exists()
    monkeypatch.undo()
    monkeypatch.setenv(node_cache.NODE_CACHE, str(tmp_path / "node"))
    assert node_cache.mel_array(path).shape == (8, 64, 64)  # once there is space


def test_a_damaged_parquet_file_is_named_at_the_driver(tmp_path, node):
    path = _built(tmp_path)
    damaged = dataset.part_files(path)[1]
    damaged.write_bytes(b"not parquet at all " * 50)
    with pytest.raises(pipeline.BuildError) as raised:  # the reuse the driver does before any trial
        pipeline.build(SPEC, tmp_path)
    message = str(raised.value)
    assert message.startswith(f"{damaged} is not a readable Parquet file") and "\n" not in message
    with pytest.raises(dataset.DatasetError, match="is not a readable Parquet file"):  # and a trial, were it run
        node_cache.mel_array(path)
