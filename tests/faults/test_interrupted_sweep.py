"""Item 4 of issue 30: one Ctrl+C (SIGINT) stops a sweep and says so: exit status 130, the
word "interrupted", the trials it cut short KILLED in MLflow (not FINISHED), and the
platform's own `--resume` command (not Tune's `Tuner.restore(...)` hint), which then
finishes them in the same runs."""
import signal

import pytest

from tests.helpers import run_module, seed_datasets, signal_sweep_once_it_reports


@pytest.mark.slow
def test_ctrl_c_stops_the_sweep_as_interrupted_and_its_resume_command_finishes_it(tmp_path, tiny_datasets):
    seed_datasets(tiny_datasets, tmp_path / "runs")
    returncode, stdout, stderr, client, experiment = signal_sweep_once_it_reports(  # Ctrl+C once a trial reports
        tmp_path, "sigint", signal.SIGINT, training={"batch_size": 4, "iterations": 3, "steps_per_iteration": 150})
    output = stdout + stderr
    assert returncode == 128 + signal.SIGINT, output[-3000:]
    assert "Tuner.restore" not in output and "Best trial" not in stdout, output[-3000:]
    error, = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert "interrupted" in error and " --resume " in error, error
    command = error.split("continue it with ", 1)[1].rstrip(".")
    assert command.startswith(".venv/bin/python -m platform.sweep ")
    parent = client.search_runs([experiment.experiment_id], filter_string="tags.sweep = 'parent'")[0]
    assert parent.info.status == "FAILED" and "interrupted" in parent.data.tags["failure"]
    trials = {r.info.run_id: r.info.status for r in client.search_runs(
        [experiment.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'")}
    assert "KILLED" in trials.values() and "RUNNING" not in trials.values(), trials
    killed = {run_id for run_id, status in trials.items() if status == "KILLED"}

    args = command.split()[3:]  # after ".venv/bin/python -m platform.sweep": the spec, --resume PATH
    resumed = run_module("platform.sweep", *args, cwd=tmp_path, timeout=600)
    assert resumed.returncode == 0, (resumed.stdout + resumed.stderr)[-3000:]
    after = {r.info.run_id: r.info.status for r in client.search_runs(
        [experiment.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'")}
    assert killed <= set(after) and set(after.values()) == {"FINISHED"}, after  # the same runs, finished
