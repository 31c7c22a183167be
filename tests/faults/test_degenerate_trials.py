"""A sweep with a trial that diverges (NaN) and one that collapses (learning rates of 10):
the diverged one is tried once although `max_failures` would allow retries, its `failure`
tag is one clean line with the traceback in failure.txt; the collapsed one is tagged
`health: d_collapsed` and stopped by `training.stop_on_collapse`."""
import pytest
from mlflow import MlflowClient

from tests.helpers import run_module, seed_datasets, tiny_sweep, write_spec

DEGENERATE = tiny_sweep(
    "degenerate",
    training={"batch_size": 4, "iterations": 8, "steps_per_iteration": 5, "lr_g": 10.0, "stop_on_collapse": True},
    search={"training.lr_d": {"grid": [1e30, 10.0]}},
    tune={"searcher": "random", "scheduler": {"name": "fifo"}, "num_samples": 1, "max_concurrent": 2,
          "max_failures": 2})


@pytest.mark.slow
def test_divergence_is_not_retried_and_collapse_is_tagged(tmp_path, tiny_datasets):
    seed_datasets(tiny_datasets, tmp_path / "runs")
    spec = write_spec(tmp_path / "degenerate.yaml", **DEGENERATE)
    result = run_module("platform.sweep", str(spec), cwd=tmp_path, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Trials: 2 (1 failed, 1 of them diverged)" in result.stdout, result.stdout[-2000:]

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("degenerate")
    runs = {r.data.params["training.lr_d"]: r for r in client.search_runs([experiment.experiment_id])
            if "mlflow.parentRunId" in r.data.tags}
    diverged, collapsed = runs[str(1e30)], runs["10.0"]

    assert diverged.info.status == "FAILED" and "failure.recovered" not in diverged.data.tags
    (reason,) = diverged.data.tags["failure"].splitlines()
    assert reason.startswith("TrainingDiverged: losses are not finite") and "\x1b" not in reason, reason
    local = client.download_artifacts(diverged.info.run_id, "failure.txt", str(tmp_path))
    assert "Traceback (most recent call last)" in open(local).read()
    # one attempt: Tune recorded no error for it, so max_failures never came into play
    assert not list((tmp_path / "runs" / "tune").rglob("error.txt"))

    assert collapsed.info.status == "FINISHED" and collapsed.data.tags["health"] == "d_collapsed"
    assert collapsed.data.tags["stopped"].startswith("health d_collapsed at step ")
    assert collapsed.data.metrics["health/d_collapsed"] == 1 and collapsed.data.metrics["step"] < 40
