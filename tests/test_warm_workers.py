"""Tune's actor reuse (platform.sweep sets it for every scheduler but PBT): a worker runs
trial after trial and keeps what they share (trainables/metrics/embeddings.shared), and
nothing of one trial reaches the next. One sweep, one slot, three trials in order: seed 1,
seed 2, seed 1 again. The first runs in a fresh worker, as if alone; the third runs after
the second in the same process: its losses and fids must be the first's at every step."""
import json

import pytest
from mlflow import MlflowClient

from tests.helpers import CHEAP_EMBEDDING, run_module, seed_datasets, tiny_sweep, write_spec

pytestmark = pytest.mark.slow


def test_a_reused_worker_runs_each_trial_as_if_alone(tmp_path, tiny_datasets):
    seed_datasets(tiny_datasets, tmp_path / "runs")
    spec = write_spec(tmp_path / "warm.yaml", **tiny_sweep(
        "warm",
        # dcgan2: dropout draws from torch's global generator while it trains
        model={"family": "dcgan2", "latent_dim": 8, "width": 4},
        training={"batch_size": 4, "iterations": 2, "steps_per_iteration": 3, "deterministic": True},
        evaluation={"samples": 16, "embedding": CHEAP_EMBEDDING, "every": 1, "grid_images": 0, "audio_clips": 0},
        search={"training.seed": {"grid": [1, 2, 1]}},
        tune={"searcher": "random", "scheduler": {"name": "fifo"}, "num_samples": 1, "max_concurrent": 1}))
    result = run_module("platform.sweep", str(spec), cwd=tmp_path, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    # Tune's own record of each trial: its worker's process and its config, in the order they ran
    trials = []
    for path in (tmp_path / "runs" / "tune").glob("warm-*/*/result.json"):
        first = json.loads(path.read_text().splitlines()[0])
        trials.append((first["timestamp"], first["trial_id"], first["pid"], first["config"]["training"]["seed"]))
    trials.sort()
    assert [seed for *_, seed in trials] == [1, 2, 1], trials
    assert len({pid for _, _, pid, _ in trials}) == 1, f"the worker was not reused: {trials}"

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("warm")
    runs = {r.data.tags["tune.trial_id"]: r for r in client.search_runs(
        [experiment.experiment_id], "tags.mlflow.parentRunId != ''")}
    assert len(runs) == 3 and sorted(runs) == sorted(t for _, t, _, _ in trials), "one run per trial"

    def history(trial_id: str) -> dict:
        run = runs[trial_id]
        assert run.info.status == "FINISHED" and run.data.params["training.seed"] == str(
            next(seed for _, t, _, seed in trials if t == trial_id))
        return {key: [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, key)]
                for key in ("loss/D", "loss/G", "fid", "kid")}

    alone, second, after = (history(t) for _, t, _, _ in trials)
    assert all(len(alone[key]) == 2 for key in alone), alone
    assert after == alone, "a trial run after another in the same worker trains and scores as one alone"
    assert second["loss/D"] != alone["loss/D"], "the seed changes the losses (else this test could not fail)"
