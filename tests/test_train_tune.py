"""The trainable under Ray Tune, on a tiny Ray Data dataset, in one sweep of three trials:
  straight  trains 4 iterations undisturbed: the reference;
  crashed   the same config, but its worker dies once right after iteration 3, one past its
            checkpoint at 2: Tune restores it, and it must continue in the same MLflow run
            with the same losses at every step as `straight`;
  diverges  an absurd learning rate: NaN within two steps; it must end at once, not retried
            (max_failures is 1), FAILED in MLflow with its one-line reason, while the others finish.
(tests/faults/test_degenerate_trials.py runs the same through the command, with a collapse.)
"""
import dataclasses
import os
from pathlib import Path

import pytest
from mlflow import MlflowClient

from tests.helpers import CHEAP_EMBEDDING, TINY_DATASET, seed_datasets
from trainables.config import EvaluationConfig, ModelConfig, TrainingConfig

pytestmark = pytest.mark.slow


def variant_trainable(config, context, marker):
    """train_gan, with the trial's `variant` applied: see the module's docstring."""
    import trainables.train as train_module
    config = dict(config)
    variant = config.pop("variant")
    if variant == "diverges":
        config["training"] = {**config["training"], "lr_d": 1e30}
    if variant != "crashed":
        return train_module.train_gan(config, context)

    original = train_module._report

    def report_then_die(trainer, metrics, checkpoint):
        original(trainer, metrics, checkpoint)
        if trainer.iteration == 3 and not os.path.exists(marker):
            Path(marker).touch()
            raise RuntimeError("injected worker failure")

    train_module._report = report_then_die
    try:
        train_module.train_gan(config, context)
    finally:
        train_module._report = original


@pytest.fixture(scope="module")
def sweep(ray_local, tmp_path_factory, tiny_datasets):
    from ray import tune

    from data import pipeline
    from data.spec import DatasetSpec
    from platform.driver import tracking
    from platform.spec.typed import build
    from trainables.train import TrialContext

    root = seed_datasets(tiny_datasets, tmp_path_factory.mktemp("tune"))  # the build below reuses it
    built = pipeline.build(build(DatasetSpec, TINY_DATASET, "dataset"), root)
    spec_file = root / "spec.yaml"
    spec_file.write_text("name: train-tune\n")
    target = tracking.start_sweep(f"sqlite:///{root / 'mlflow.db'}", "train-tune", run_name="sweep",
                                  tags={}, params={}, spec_file=str(spec_file))
    context = TrialContext(str(built.path), built.fingerprint, target)

    training = TrainingConfig(batch_size=4, iterations=4, steps_per_iteration=2, checkpoint_every=2,
                              deterministic=True, seed=3)
    space = {"model": dataclasses.asdict(ModelConfig(latent_dim=8, width=4)),
             "training": dataclasses.asdict(training),
             "evaluation": dataclasses.asdict(EvaluationConfig(samples=16, embedding=CHEAP_EMBEDDING)),
             "variant": tune.grid_search(["straight", "crashed", "diverges"])}
    marker = root / "died"
    tuner = tune.Tuner(
        tune.with_parameters(variant_trainable, context=context, marker=str(marker)),
        param_space=space,
        tune_config=tune.TuneConfig(metric="fid", mode="min"),
        run_config=tune.RunConfig(name="variants", storage_path=str(root / "tune"),
                                  failure_config=tune.FailureConfig(max_failures=1)))
    results = {r.config["variant"]: r for r in tuner.fit()}
    assert marker.exists()  # the injected failure did happen

    client = MlflowClient(target.tracking_uri)
    runs = client.search_runs([target.experiment_id],
                              filter_string=f"tags.mlflow.parentRunId = '{target.parent_run_id}'")
    return results, runs, client


def _run_of(runs, result):
    (run,) = [r for r in runs if r.data.tags["tune.trial_id"] == result.metrics["trial_id"]]
    return run


def test_one_mlflow_run_per_trial_whatever_the_retries(sweep):
    _, runs, _ = sweep
    assert len(runs) == 3 and len({r.data.tags["tune.trial_id"] for r in runs}) == 3


def test_a_diverging_trial_ends_once_with_its_reason_and_the_others_finish(sweep):
    results, runs, client = sweep
    diverged = results["diverges"]
    # not a Tune error, so not retried under max_failures: one attempt, a last result saying so
    assert diverged.error is None and diverged.metrics["diverged"] == 1 and diverged.metrics["fid"] == float("inf")
    assert not (Path(diverged.path) / "error.txt").exists()
    for variant in ("straight", "crashed"):
        assert results[variant].error is None and results[variant].metrics["training_iteration"] == 4
    failed = _run_of(runs, diverged)
    assert failed.info.status == "FAILED" and "failure.recovered" not in failed.data.tags
    (reason,) = failed.data.tags["failure"].splitlines()
    assert reason.startswith("TrainingDiverged: losses are not finite") and "\x1b" not in reason
    traceback = Path(client.download_artifacts(failed.info.run_id, "failure.txt", str(Path(diverged.path))))
    assert "Traceback" in traceback.read_text() and "run_iteration" in traceback.read_text()


def test_healthy_trials_are_tagged_ok(sweep):
    results, runs, _ = sweep
    for healthy in ("straight", "crashed"):
        assert _run_of(runs, results[healthy]).data.tags["health"] == "ok"
        assert results[healthy].metrics["health/d_collapsed"] == 0


def test_a_restored_trial_continues_exactly_in_the_same_mlflow_run(sweep):
    results, runs, client = sweep
    reference, resumed = _run_of(runs, results["straight"]), _run_of(runs, results["crashed"])
    assert results["crashed"].metrics["step"] == 8
    assert resumed.info.status == "FINISHED" and "failure" not in resumed.data.tags
    assert "injected worker failure" in resumed.data.tags["failure.recovered"]
    for key in ("loss/D", "loss/G", "fid"):
        expected = {m.step: m.value for m in client.get_metric_history(reference.info.run_id, key)}
        history = client.get_metric_history(resumed.info.run_id, key)
        assert sorted(expected) == [2, 4, 6, 8]
        # iteration 3 (step 6) ran twice, before the failure and after the restore; the
        # reopened run logs it once, and step 8, after the rerun, matches exactly
        assert [m.step for m in history] == [2, 4, 6, 8]
        assert all(m.value == expected[m.step] for m in history), key
