"""Issue 30, item 2: a build is complete or it is not stored. A disk that fills mid-build
(an OSError ENOSPC injected into the Parquet writes, as a full tmpfs raises it) stops
`platform.prepare` with one sentence naming where, keeps the finished tracks for the next
run, records nothing under the dataset's fingerprint and lists no input as skipped for it."""
import errno
import os
import subprocess
import sys

import pyarrow.parquet as pq
import pytest

from data import dataset, pipeline, tracks
from platform.driver import cluster
from tests.helpers import ROOT, mount_problem, write_spec

DATASET = {"synthetic": {"tracks": 5, "seconds": 11.0, "seed": 4}, "mel": {"sample_rate": 16000}}


def _in_process(pending, spec, parts, cache_dir, here_only=False):
    """Ray Data's work, track by track in this process, so the injected fault reaches it."""
    return [tracks.process(tracks.fetch(t, spec, cache_dir), spec, parts) for t in pending], ""


@pytest.fixture
def disk(monkeypatch):
    """`disk["room"]`: how many more track parts fit before writes fail with ENOSPC."""
    state = {"room": 2}
    real = pq.write_table

    def write(table, where, *args, **kwargs):
        if f"{os.sep}segments{os.sep}" in str(where):
            if state["room"] <= 0:
                open(where, "wb").write(b"PAR1 half a part")  # what a full disk leaves behind
                raise OSError(errno.ENOSPC, f"No space left on device: '{where}'")
            state["room"] -= 1
        return real(table, where, *args, **kwargs)
    monkeypatch.setattr(pq, "write_table", write)
    monkeypatch.setattr(pipeline, "_run", _in_process)
    monkeypatch.setattr(cluster, "connect", lambda address, root=None: [])  # no Ray: the tracks run here
    return state


def test_a_full_disk_stops_the_build_and_keeps_what_was_done(tmp_path, disk, capsys):
    from platform import prepare
    spec = write_spec(tmp_path / "space.yaml", name="full", dataset=DATASET)
    root = tmp_path / "runs"
    code = prepare.main([str(spec), "--root", str(root)])
    out, err = capsys.readouterr()
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 1 and len(errors) == 1, out + err
    work = next((root / "datasets").glob(".*.building"))
    assert errors[0].startswith(f"error: disk full at {work / 'segments'}: the build stopped with 3 track(s) "
                                f"not written; the 2 finished track(s) are kept in {work}")
    assert "Skipped" not in out and "built" not in out
    final = [p for p in (root / "datasets").iterdir() if not p.name.startswith(".")]
    assert final == [], "nothing recorded under the dataset's fingerprint"
    assert len(list((work / "segments").glob("*.parquet"))) == 2
    assert not list((work / "segments").glob(".*.tmp")), "no half-written part left"

    disk["room"] = 100  # space again: the next run goes on from the two finished tracks
    assert prepare.main([str(spec), "--root", str(root)]) == 0
    out = capsys.readouterr().out
    assert "resumed a stopped build: 2 tracks were done already, 3 processed now" in out
    built = next(p for p in (root / "datasets").iterdir() if not p.name.startswith("."))
    assert dataset.read_manifest(built)["counts"] == {"tracks": 5, "segments": 10, "failures": 0}
    assert dataset.read_failures(built) == []


def test_a_full_disk_at_the_manifest_is_the_same_sentence(tmp_path, disk, monkeypatch):
    disk["room"] = 100
    real = pipeline._write_failures

    def full(path, failures):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(pipeline, "_write_failures", full)
    from data.spec import DatasetSpec, MelParams, SyntheticSource
    spec = DatasetSpec(synthetic=SyntheticSource(tracks=2, seconds=11.0, seed=4), mel=MelParams(sample_rate=16000))
    with pytest.raises(pipeline.BuildError, match=r"^disk full at .*\.building: the build stopped; the 2 finished"):
        pipeline.build(spec, tmp_path)
    assert not (tmp_path / "datasets" / spec.fingerprint).exists()
    monkeypatch.setattr(pipeline, "_write_failures", real)
    assert pipeline.build(spec, tmp_path).segments == 4


MOUNT_PROBLEM = mount_problem()


@pytest.mark.slow
@pytest.mark.skipif(MOUNT_PROBLEM is not None, reason=f"needs a private mount: {MOUNT_PROBLEM}")
def test_a_real_tmpfs_that_fills_stops_the_build_and_the_next_run_finishes_it(tmp_path):
    """The storage root a 1 MiB tmpfs (in a private mount namespace): the dataset, 12 tracks of
    about 100 KiB of Parquet each, does not fit. `prepare` stops saying so; the tmpfs grown to
    16 MiB (the same mount, so what was done is still there), `prepare` goes on from it."""
    root = tmp_path / "runs"
    root.mkdir()
    spec = write_spec(tmp_path / "space.yaml", name="fills", storage={"root": str(root)},
                      dataset={"synthetic": {"tracks": 12, "seconds": 60.0, "seed": 4}, "mel": {"sample_rate": 16000}})
    prepare = f'"{sys.executable}" -m platform.prepare "{spec}"'
    script = (f'mount -t tmpfs -o size=1m tmpfs "{root}" && {{ {prepare}; echo "exit $?"; echo "=== grown"; '
              f'mount -o remount,size=16m "{root}" && {prepare}; echo "exit $?"; }}')
    result = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script], cwd=tmp_path,
                            env=dict(os.environ, PYTHONPATH=str(ROOT)), capture_output=True, text=True, timeout=600)
    full, grown = result.stdout.split("=== grown")
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert "exit 1" in full and len(errors) == 1, result.stdout[-3000:] + result.stderr[-5000:]
    assert errors[0].startswith(f"error: disk full at {root}/datasets/.") and "the next run goes on" in errors[0]
    assert "Skipped" not in full and "No space left" not in full, full
    assert "exit 0" in grown and "resumed a stopped build:" in grown, grown + result.stderr[-3000:]
    assert "Dataset " in grown and "(built): 144 segments from 12 tracks" in grown, grown
