"""A paper.yaml-shaped sweep (the study's five kinds of trials, tiny), its driver killed in
the middle, then `--resume`: every trial is done once, and every MLflow step history runs
on without gaps or repeats."""

import pytest
from mlflow import MlflowClient

from tests.helpers import CHEAP_EMBEDDING, TINY_DATASET, kill_sweep_when, run_module, seed_datasets, store_rows, write_spec

FIVE = {
    "dcgan1_all": {"training": {"iterations": 8}},  # the long one: the kill lands in it
    "dcgan2_all": {"model": {"family": "dcgan2"}, "training": {"epochs": 2}},
    "dcgan2_part": {"model": {"family": "dcgan2"}, "training": {"epochs": 6, "data_fraction": 0.67}},
    "wgan_gp_part": {"model": {"family": "wgan_gp", "critic_norm": "layer"},
                     "training": {"critic_steps": 2, "epochs": 5, "data_fraction": 0.67}},
    "wgan_clip_part": {"model": {"family": "wgan_clip"},
                       "training": {"optimizer": "rmsprop", "critic_steps": 2, "epochs": 5, "data_fraction": 0.67}},
}
TINY_PAPER = dict(
    name="tinypaper", dataset=TINY_DATASET,
    model={"family": "dcgan1", "latent_dim": 8, "width": 8},
    training={"batch_size": 4, "steps_per_iteration": 40, "checkpoint_every": 1},  # lengths: the experiments'
    experiments=FIVE,
    evaluation={"samples": 16, "embedding": CHEAP_EMBEDDING, "kid_subset_size": 8, "coverage_k": 3},
    tune={"searcher": "random", "scheduler": {"name": "fifo"}, "num_samples": 1, "max_concurrent": 1},
)


def _fid_steps(db) -> dict[str, list[int]]:
    """run name -> the steps of its fid history, read straight from the SQLite store."""
    steps = {}
    for name, step in store_rows(db, "select r.name, m.step from metrics m join runs r on m.run_uuid = r.run_uuid "
                                     "where m.key = 'fid' order by m.step"):
        steps.setdefault(name, []).append(step)
    return steps


@pytest.mark.slow
def test_paper_shaped_sweep_killed_then_resumed(tmp_path, tiny_datasets):
    seed_datasets(tiny_datasets, tmp_path / "runs")
    spec = write_spec(tmp_path / "tinypaper.yaml", **TINY_PAPER)
    db = tmp_path / "mlflow.db"
    # kill once the long trial has two evaluations logged (and so a checkpoint)
    kill_sweep_when(spec, tmp_path, lambda: any(len(s) >= 2 for name, s in _fid_steps(db).items()
                                                if name.startswith("dcgan1_all")))
    before = _fid_steps(db)
    interrupted = [n for n, s in before.items() if n.startswith("dcgan1_all")]
    assert interrupted and len(before[interrupted[0]]) < 8, before

    result = run_module("platform.sweep", str(spec), "--resume", cwd=tmp_path, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Resuming " in result.stdout

    client = MlflowClient(tracking_uri=f"sqlite:///{db}")
    experiment = client.get_experiment_by_name("tinypaper")
    runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert "sweep.resumed" in parents[0].data.tags
    # the five kinds of trials, each once, each finished
    assert sorted(r.data.tags["experiment"] for r in children) == sorted(FIVE)
    assert {r.data.params["model.family"] for r in children} == {"dcgan1", "dcgan2", "wgan_gp", "wgan_clip"}
    for run in children:
        assert run.info.status == "FINISHED", (run.info.run_name, run.data.tags.get("failure"))
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "loss/G")]
        every = int(run.data.params["training.steps_per_iteration"])
        # no repeats, no gaps: one report per iteration, the last where the epochs end
        assert steps[:-1] == [every * i for i in range(1, len(steps))], steps
        assert 0 < steps[-1] - (steps[-2] if len(steps) > 1 else 0) <= every, steps
    long_run = next(r for r in children if r.data.tags["experiment"] == "dcgan1_all")
    long_steps = [m.step for m in client.get_metric_history(long_run.info.run_id, "loss/G")]
    assert long_steps == [40 * i for i in range(1, 9)]
    # evaluated every eighth of its 8 iterations (evaluation.every's default), before and after the kill
    assert [m.step for m in client.get_metric_history(long_run.info.run_id, "fid")] == [40 * i for i in range(1, 9)]
