"""Population-based training of the learning rates: a trial that takes another's weights
keeps its own MLflow run, which records the change and goes on."""
import pytest
from mlflow import MlflowClient

from tests.helpers import TINY_DATASET, run_module, write_spec

TINY_PBT = dict(
    name="tinypbt", dataset=TINY_DATASET,
    model={"family": "dcgan1", "latent_dim": 8, "width": 4},
    training={"batch_size": 4, "iterations": 4, "steps_per_iteration": 5, "checkpoint_every": 1},
    evaluation={"samples": 16, "kid_subset_size": 8, "coverage_k": 3},
    search={"training.lr_g": {"loguniform": [1e-5, 1e-2]}, "training.lr_d": {"loguniform": [1e-5, 1e-2]}},
    tune={"searcher": "random", "num_samples": 2, "max_concurrent": 2,
          "scheduler": {"name": "pbt", "perturbation_interval": 1, "quantile_fraction": 0.5,
                        "resample_probability": 0.5, "synch": True}},
)


@pytest.mark.slow
def test_pbt_exploits_are_recorded_in_the_trials_own_run(tmp_path):
    spec = write_spec(tmp_path / "pbt.yaml", **TINY_PBT)
    result = run_module("platform.sweep", str(spec), cwd=tmp_path, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("tinypbt")
    children = [r for r in client.search_runs([experiment.experiment_id]) if "mlflow.parentRunId" in r.data.tags]
    assert len(children) == 2 and all(r.info.status == "FINISHED" for r in children)
    exploited = [r for r in children if "pbt.exploits" in r.data.tags]
    assert exploited, "no trial was perturbed in 4 iterations at interval 1"
    for run in exploited:
        assert run.data.tags["pbt.exploit.1"].startswith("at step ")
        rates = [m.value for m in client.get_metric_history(run.info.run_id, "lr/G")]
        assert len(set(rates)) > 1, rates  # the run follows the new rate
    for run in children:
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "fid")]
        assert steps == sorted(set(steps)), steps  # one history, no repeated steps
