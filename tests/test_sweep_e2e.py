"""A real sweep, end to end, in a subprocess as a user runs it: Ray Data builds the data,
Tune runs two Optuna trials under ASHA, MLflow records a parent run and two children."""
import json

import pytest
from mlflow import MlflowClient

from tests.helpers import CHEAP_EMBEDDING, run_module, seed_datasets, tiny_sweep, write_spec

TINY_SWEEP = tiny_sweep(
    "tiny",
    search={"training.lr_g": {"loguniform": [1e-4, 1e-3]}, "model.width": {"choice": [4, 8]}},
    tune={"searcher": "optuna", "scheduler": {"name": "asha", "grace_period": 1},
          "num_samples": 2, "max_concurrent": 2},
    evaluation={"samples": 16, "embedding": CHEAP_EMBEDDING, "final_metrics": ["mel-stats"]},
)


@pytest.mark.slow
def test_tiny_sweep_end_to_end(tmp_path, tiny_datasets):
    seed_datasets(tiny_datasets, tmp_path / "runs")
    spec = write_spec(tmp_path / "tiny.yaml", **TINY_SWEEP)
    result = run_module("platform.sweep", str(spec), cwd=tmp_path, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    db = tmp_path / "mlflow.db"
    assert f"mlflow ui --backend-store-uri sqlite:///{db}" in result.stdout
    assert "Best trial" in result.stdout
    assert " (reused): 6 segments from 3 tracks" in result.stdout, "the session's dataset, seeded, is reused"

    # Tune: every reported iteration of every trial carries fid and the losses
    result_files = list((tmp_path / "runs" / "tune").glob("tiny-*/*/result.json"))
    assert len(result_files) == 2
    for path in result_files:
        reports = [json.loads(line) for line in path.read_text().splitlines()]
        assert reports and all({"fid", "loss/D", "loss/G"} <= set(r) for r in reports)

    # MLflow: one experiment, one parent run, two nested children with params and fid history
    client = MlflowClient(tracking_uri=f"sqlite:///{db}")
    experiment = client.get_experiment_by_name("tiny")
    runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1 and len(children) == 2
    parent = parents[0]
    assert parent.info.status == "FINISHED" and "best/fid" in parent.data.metrics
    # the real-vs-real floor every fid is read against: computed once, on the parent run
    assert float(parent.data.tags["fid.real_vs_real"]) > 0 and int(parent.data.tags["fid.real_vs_real.count"]) >= 2
    for child in children:
        assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert child.info.status == "FINISHED"
        assert float(child.data.params["training.lr_g"]) > 0 and child.data.params["model.width"] in {"4", "8"}
        assert child.data.params["training.batch_size"] == "4"
        history = client.get_metric_history(child.info.run_id, "fid")
        assert len(history) >= 1 and all(m.value >= 0 for m in history)
        assert [m.step for m in history] == sorted({m.step for m in history})
        if len(history) == 2:  # ran to its end (ASHA may stop one): the final metrics are logged too
            assert client.get_metric_history(child.info.run_id, "final/mel-stats")[0].value >= 0
        assert child.data.tags["dataset.fingerprint"] == parent.data.tags["dataset.fingerprint"]

    # A second run reuses the dataset
    again = run_module("platform.sweep", str(spec), cwd=tmp_path, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "(reused):" in again.stdout
