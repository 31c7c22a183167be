"""Audio inputs an unlucky user has: a file whose name is not UTF-8 (Latin-1, from an old
disk), a FIFO and a self-looping symbolic link named like audio, a track far longer than
any music. Each is one failure row with its reason; the build goes on with the rest."""
import os

import pyarrow.parquet as pq
import pytest

from data import pipeline, segment, sources, synthetic, tracks
from data.spec import DatasetSpec, MelParams, SegmentParams

MEL = {"sample_rate": 16000, "n_mels": 64, "frames": 64}


def _folder(tmp_path, latin1: bool = True):
    folder = tmp_path / "music"
    folder.mkdir()
    synthetic.write_track(folder / "good.wav", seed=3, seconds=11.0, sample_rate=16000)
    if latin1:  # the same audio under a Latin-1 name: the byte 0xe9 is no UTF-8
        os.link(folder / "good.wav", os.path.join(os.fsencode(folder), b"caf\xe9.wav"))
    return folder


def test_a_name_that_is_not_utf8_is_one_failure_row(tmp_path):
    folder = _folder(tmp_path)
    found, failed = sources.resolve(DatasetSpec(folders=[str(folder)], mel=MelParams(**MEL)))
    assert [t["title"] for t in found] == ["good"]
    (row,) = failed
    assert row["input"] == f"{folder}/caf\\xe9.wav" and "not valid UTF-8" in row["reason"], row
    pipeline._write_failures(tmp_path / "failures.parquet", failed)  # Parquet takes the row as it is
    assert pq.read_table(tmp_path / "failures.parquet").column("input").to_pylist() == [row["input"]]


def test_a_fifo_and_a_looping_link_named_like_audio_are_failure_rows(tmp_path):
    folder = _folder(tmp_path, latin1=False)
    os.mkfifo(folder / "x.wav")
    os.symlink("loop.wav", folder / "loop.wav")  # itself: ELOOP on every open
    _, failed = sources.resolve(DatasetSpec(folders=[str(folder)], mel=MelParams(**MEL)))
    reasons = {os.path.basename(f["input"]): f["reason"] for f in failed}
    assert "a FIFO" in reasons["x.wav"], reasons
    assert "symbolic link that loops" in reasons["loop.wav"], reasons


def test_a_track_longer_than_the_bound_is_refused_with_the_reason(tmp_path):
    path = tmp_path / "long.flac"
    synthetic.write_track(path, seed=1, seconds=30.0, sample_rate=16000)
    with pytest.raises(segment.DecodeError, match=r"longer than segment.max_track_seconds \(12 s\)"):
        segment.decode(path, 16000, max_seconds=12)
    spec = DatasetSpec(folders=[str(tmp_path)], mel=MelParams(**MEL), segment=SegmentParams(max_track_seconds=12))
    (track,), _ = sources.resolve(spec)
    parts = tmp_path / "parts"
    parts.mkdir()
    row = tracks.process(tracks.fetch(track, spec, tmp_path), spec, parts)
    assert row["stage"] == "decode" and "max_track_seconds" in row["reason"], row
    assert len(segment.decode(path, 16000, max_seconds=60)) > 29_000  # under the bound: read whole (ms)


def test_the_default_bound_keeps_fingerprints():
    # datasets built before the bound existed keep their address: the default is left out
    a = DatasetSpec(segment=SegmentParams(max_track_seconds=SegmentParams.max_track_seconds))
    b = DatasetSpec(segment=SegmentParams(max_track_seconds=600))
    assert a.fingerprint == DatasetSpec().fingerprint != b.fingerprint


@pytest.mark.slow
def test_the_build_goes_on_past_a_bad_name_and_leaves_no_work_folder(tmp_path, ray_local):
    folder = _folder(tmp_path)
    spec = DatasetSpec(folders=[str(folder)], mel=MelParams(**MEL))
    built = pipeline.build(spec, tmp_path / "root")
    assert built.tracks == 1 and built.segments == 2 and built.failures == 1, built
    assert [p.name for p in (tmp_path / "root" / "datasets").iterdir()] == [built.fingerprint]


@pytest.mark.slow
def test_a_build_under_a_low_ulimit_v_says_memory_is_too_low(tmp_path):
    import resource
    import subprocess
    import sys

    from tests.helpers import ROOT, TINY_DATASET, write_spec
    spec = write_spec(tmp_path / "low.yaml", name="low", dataset=TINY_DATASET, storage={"root": str(tmp_path / "r")})
    limit = 6 << 30  # python, torch and Ray's client fit; Ray's raylet and object store do not

    def low():
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    driver = subprocess.Popen([sys.executable, "-m", "platform.prepare", str(spec)], cwd=tmp_path,
                              env={**os.environ, "PYTHONPATH": str(ROOT)}, preexec_fn=low, start_new_session=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = driver.communicate(timeout=900)  # before: Ray hung here until killed
    finally:
        if driver.poll() is None:
            import signal
            os.killpg(driver.pid, signal.SIGKILL)  # with the Ray it started
            driver.wait()
    assert driver.returncode == 2, err[-3000:]
    (line,) = err.strip().splitlines()
    assert "memory is too low for Ray" in line and "ulimit -v" in line and "6.0 GiB" in line, line
