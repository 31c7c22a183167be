"""Population-based training of the learning rates: a trial that takes another's weights
keeps its own MLflow run, which records the change and goes on."""
import re

import pytest
from mlflow import MlflowClient

from tests.helpers import CHEAP_EMBEDDING, TINY_DATASET, run_module, seed_datasets, write_spec

TINY_PBT = dict(
    name="tinypbt", dataset=TINY_DATASET,
    model={"family": "dcgan1", "latent_dim": 8, "width": 4},
    training={"batch_size": 4, "iterations": 4, "steps_per_iteration": 5, "checkpoint_every": 1},
    # no sample grids or audio: each exploit restarts a trial, and the test reads rates and tags, not artifacts
    evaluation={"samples": 16, "embedding": CHEAP_EMBEDDING, "kid_subset_size": 8, "coverage_k": 3,
                "grid_images": 0, "audio_clips": 0},
    search={"training.lr_g": {"loguniform": [1e-5, 1e-2]}, "training.lr_d": {"loguniform": [1e-5, 1e-2]}},
    tune={"searcher": "random", "num_samples": 2, "max_concurrent": 2,
          "scheduler": {"name": "pbt", "perturbation_interval": 1, "quantile_fraction": 0.5,
                        "resample_probability": 0.5, "synch": True}},
)


@pytest.mark.slow
def test_pbt_exploits_are_recorded_in_the_trials_own_run(tmp_path, tiny_datasets):
    seed_datasets(tiny_datasets, tmp_path / "runs")
    spec = write_spec(tmp_path / "pbt.yaml", **TINY_PBT)
    result = run_module("platform.sweep", str(spec), cwd=tmp_path, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("tinypbt")
    children = [r for r in client.search_runs([experiment.experiment_id]) if "mlflow.parentRunId" in r.data.tags]
    assert len(children) == 2 and all(r.info.status == "FINISHED" for r in children)
    exploited = [r for r in children if "pbt.exploits" in r.data.tags]
    assert exploited, "no trial was perturbed in 4 iterations at interval 1"
    by_trial = {r.data.tags["tune.trial_id"]: r for r in children}

    def rates(run, key):  # step -> the rate a run logged with its evaluation there
        return {m.step: m.value for m in client.get_metric_history(run.info.run_id, key)}

    def exploits(run):  # each of its pbt.exploit.N tags, parsed: (tag, match)
        tags = [run.data.tags[f"pbt.exploit.{n}"] for n in range(1, int(run.data.tags["pbt.exploits"]) + 1)]
        return [(tag, re.fullmatch(r"at step (\d+): weights of trial (\w+); "
                                   r"lr_g (\S+) -> (\S+), lr_d (\S+) -> (\S+)", tag)) for tag in tags]

    followed, mid_run = 0, 0
    for run in exploited:
        lr_g = rates(run, "lr/G")
        parsed = exploits(run)
        assert all(found for _, found in parsed), [tag for tag, found in parsed if not found]
        # Tune exploits only when the donor's checkpoint is in, which on a loaded machine may be
        # at the last iteration alone: such a trial trains no more, so only an exploit before
        # its last step promises training on the new rate
        if any(int(found[1]) < max(lr_g) for _, found in parsed):
            mid_run += 1
            assert len(set(lr_g.values())) > 1, lr_g  # the run follows the new rate
        for tag, found in parsed:
            step, donor = int(found[1]), by_trial[found[2]]
            lr_g_before, lr_g_after, lr_d_before, lr_d_after = map(float, found.groups()[2:])
            # PBT perturbs both searched rates (x0.8, x1.2 or resampled): the tag shows the change
            assert lr_g_before != lr_g_after and lr_d_before != lr_d_after, tag
            # before: the donor's rates at the checkpoint taken; after: what this trial then trains with
            next_step = step + TINY_PBT["training"]["steps_per_iteration"]
            for key, before, after in (("lr/G", lr_g_before, lr_g_after), ("lr/D", lr_d_before, lr_d_after)):
                assert before == pytest.approx(rates(donor, key)[step], rel=5e-3), (tag, key)
                if next_step in rates(run, key):  # an exploit of a finished checkpoint trains no more
                    assert after == pytest.approx(rates(run, key)[next_step], rel=5e-3), (tag, key)
                    followed += 1
    assert followed or not mid_run, "no exploited trial trained on after its exploit"
    for run in children:
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "fid")]
        assert steps == sorted(set(steps)), steps  # one history, no repeated steps
