"""Row 3 of the fault suite: a read-only or full storage root. Each command runs in its own
mount namespace (`unshare -m`) where the storage root is a read-only bind mount or a tiny
tmpfs, so nothing outside the test sees the mount; skipped, saying why, where that is not
allowed (no root, no CAP_SYS_ADMIN)."""
import subprocess
import sys

import pytest
from mlflow import MlflowClient

from tests.helpers import ROOT, mount_problem, seed_datasets, signal_sweep_once_it_reports, tiny_sweep, write_spec


MOUNT_PROBLEM = mount_problem()
needs_mount = pytest.mark.skipif(MOUNT_PROBLEM is not None, reason=f"needs a private mount: {MOUNT_PROBLEM}")


def _run_mounted(mount: str, module: str, *args: str, cwd, timeout: float = 900) -> subprocess.CompletedProcess:
    """`python -m module args` after `mount` (a shell command) in a private mount namespace."""
    import os
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", f'{mount} && exec "$@"', "sh",
                           sys.executable, "-m", module, *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)


def _spec(tmp_path, root):
    return write_spec(tmp_path / "space.yaml", **tiny_sweep("storage-fault", storage={"root": str(root)},
                                                           mlflow={"tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}"}))


@pytest.mark.slow
@needs_mount
def test_read_only_storage_is_one_sentence_before_ray_starts(tmp_path):
    root = tmp_path / "runs"
    root.mkdir()
    spec = _spec(tmp_path, root)
    read_only = f'mount --bind "{root}" "{root}" && mount -o remount,ro,bind "{root}"'
    for module in ("platform.sweep", "platform.prepare"):
        result = _run_mounted(read_only, module, str(spec), cwd=tmp_path, timeout=900)
        assert result.returncode == 2, (module, result.stderr[-3000:])
        assert result.stderr.splitlines() == [f"error: storage.root {root} cannot be written (Read-only file system); "
                                              "free space there, fix its permissions or mount, or point the "
                                              "setting at another folder."], (module, result.stderr[-3000:])
        assert "Ray" not in result.stdout + result.stderr
    assert not (tmp_path / "mlflow.db").exists()  # nothing was started, not even the parent run


@pytest.mark.slow
@needs_mount
def test_a_disk_that_fills_during_the_sweep_fails_one_trial_once_and_ends_the_parent_run(tmp_path):
    """512 KiB: the dataset (about 130 KiB) fits, the trials' checkpoints (hundreds of KiB each)
    do not. Retries allowed (max_failures 2), yet no trial is retried: a full disk stays full."""
    root = tmp_path / "runs"
    root.mkdir()
    spec = write_spec(tmp_path / "space.yaml", **tiny_sweep(
        "storage-fault", storage={"root": str(root)}, mlflow={"tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}"},
        tune={"searcher": "random", "scheduler": {"name": "fifo"}, "num_samples": 3, "max_concurrent": 1,
              "max_failures": 2},
        training={"batch_size": 4, "iterations": 4, "steps_per_iteration": 2}))
    result = _run_mounted(f'mount -t tmpfs -o size=512k tmpfs "{root}"', "platform.sweep", str(spec), cwd=tmp_path)
    (tmp_path / "sweep.stderr").write_text(result.stderr)  # to read when it fails
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.returncode == 1, result.stderr[-5000:]
    assert len(errors) == 1 and "the sweep stopped: " in errors[0] and "is full (No space left on device)" in errors[0]
    assert errors[0].endswith("; free space there and run the sweep again."), errors
    # a few of Ray's own lines, no wall of retried tracebacks
    assert result.stderr.count("Traceback") <= 1 and len(result.stderr.splitlines()) < 80, result.stderr[-5000:]

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("storage-fault")
    parent = client.search_runs([experiment.experiment_id], filter_string="tags.sweep = 'parent'")[0]
    assert parent.info.status == "FAILED" and "is full" in parent.data.tags["failure"], parent.data.tags
    assert parent.info.run_id in errors[0]
    trials = client.search_runs([experiment.experiment_id], filter_string=f"tags.mlflow.parentRunId = "
                                                                          f"'{parent.info.run_id}'")
    failed = [t for t in trials if t.info.status == "FAILED"]
    assert len(failed) == 1 and failed[0].data.tags["failure"].startswith("saving the checkpoint of step ")
    assert "is full" in failed[0].data.tags["failure"] and "\n" not in failed[0].data.tags["failure"]
    assert all(t.info.status != "RUNNING" for t in trials)
    assert len(trials) < 3  # the sweep stopped: the third trial never started


@pytest.mark.slow
def test_a_driver_stopped_by_sigterm_ends_its_parent_run(tmp_path, tiny_datasets):
    seed_datasets(tiny_datasets, tmp_path / "runs")
    import signal
    returncode, _, stderr, client, experiment = signal_sweep_once_it_reports(  # as a service manager would
        tmp_path, "sigterm", signal.SIGTERM, training={"batch_size": 4, "iterations": 50, "steps_per_iteration": 2})
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert returncode == 128 + signal.SIGTERM, stderr[-3000:]
    parent = client.search_runs([experiment.experiment_id], filter_string="tags.sweep = 'parent'")[0]
    assert parent.info.status == "FAILED" and parent.data.tags["failure"] == "stopped by SIGTERM"
    assert errors == [f"error: the sweep stopped: stopped by SIGTERM; parent run {parent.info.run_id} ended FAILED; "
                      "continue it with --resume."], stderr[-3000:]
