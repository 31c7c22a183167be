"""The driver SIGKILLed in the second after a trial finished (its MLflow run FINISHED,
Tune's saved state still saying RUNNING), then `--resume`: the finished run is not reopened
(it ends once), no step is logged twice, and Tune prints no checkpoint error."""
import json

import pytest
from mlflow import MlflowClient

from tests.helpers import kill_sweep_when, run_module, seed_datasets, store_rows, tiny_sweep, write_spec

RACE = tiny_sweep("race", training={"batch_size": 4, "iterations": 3, "steps_per_iteration": 20,
                                    "checkpoint_every": 1},
                  tune={"searcher": "random", "scheduler": {"name": "fifo"}, "num_samples": 2, "max_concurrent": 1})


def _finished_children(db) -> dict[str, int]:
    """run id -> end time of every trial run that has ended FINISHED, from the SQLite store."""
    return dict(store_rows(db, "select r.run_uuid, r.end_time from runs r join tags t on t.run_uuid = r.run_uuid "
                               "where t.key = 'mlflow.parentRunId' and r.status = 'FINISHED'"))


@pytest.mark.slow
def test_a_driver_killed_just_after_a_trial_finished_resumes_without_redoing_it(tmp_path, tiny_datasets):
    seed_datasets(tiny_datasets, tmp_path / "runs")
    spec = write_spec(tmp_path / "race.yaml", **RACE)
    db = tmp_path / "mlflow.db"
    # Tune saves its state every 10 s at most: killed right after a trial ends, that state
    # still has the trial RUNNING while its MLflow run is FINISHED
    kill_sweep_when(spec, tmp_path, lambda: bool(_finished_children(db)), poll=0.05)
    (finished, ended_at), = _finished_children(db).items()

    result = run_module("platform.sweep", str(spec), "--resume", cwd=tmp_path, timeout=600)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert "Error handling checkpoint" not in output and "FileNotFoundError" not in output, output[-4000:]

    client = MlflowClient(tracking_uri=f"sqlite:///{db}")
    run = client.get_run(finished)
    assert run.info.status == "FINISHED" and run.info.end_time == ended_at  # not reopened, ended once
    assert "sweep.resumed" not in run.data.tags and "failure" not in run.data.tags
    children = [r for r in client.search_runs([run.info.experiment_id]) if "mlflow.parentRunId" in r.data.tags]
    assert len(children) == 2 and all(r.info.status == "FINISHED" for r in children)
    for child in children:
        for key in ("fid", "loss/D"):
            steps = [m.step for m in client.get_metric_history(child.info.run_id, key)]
            assert steps == [20, 40, 60], (child.info.run_name, key, steps)  # every step once
    # Tune's own record: every iteration once and none past the last (the finished trial is
    # not run again, nor reported once more as an iteration 4 of 3)
    for path in (tmp_path / "runs" / "tune").glob("race-*/*/result.json"):
        iterations = [json.loads(line)["training_iteration"] for line in path.read_text().splitlines() if line.strip()]
        assert iterations == sorted(set(iterations)) and iterations[-1] <= 3, (path.parent.name, iterations)
