"""The study's own search-space files run end to end, as a user runs them, at a tiny `--set`
scale on the session's 6-segment dataset (issue 26): every trial of `paper.yaml`'s six
experiments runs the length its epochs resolve to, is evaluated at the resolved cadence (at
least three points) and is not tagged stopped; in a family file with epochs, the trials
ASHA stopped are tagged with the iteration they stopped at and the others ran their length."""
import pytest
from mlflow import MlflowClient

from platform.spec import spaces, tune_space
from tests.helpers import CHEAP_EMBEDDING, ROOT, run_module, seed_datasets

SEGMENTS = 6  # TINY_DATASET's
# no sample grids or audio: the tests read lengths, the fid cadence and stop tags, not artifacts
TINY = ["dataset.synthetic.tracks=3", "dataset.synthetic.seconds=11", "dataset.synthetic.seed=7",
        "dataset.mel.sample_rate=16000", "model.width=4", "model.latent_dim=8", "training.batch_size=2",
        "training.steps_per_iteration=2", "training.checkpoint_every=1", "evaluation.samples=16",
        f"evaluation.embedding={CHEAP_EMBEDDING}", "evaluation.audio_clips=0", "evaluation.grid_images=0",
        "tune.resources_per_trial.cpu=1", "tune.resources_per_trial.gpu=0", "tune.max_concurrent=2"]
# the WGAN experiments' 5 critic steps and 20 steps an iteration leave one step on 2 segments
WGAN_TINY = [f"experiments.{name}.training.{key}=1" for name in ("wgan_gp_60k_5ep", "wgan_clip_60k_5ep")
             for key in ("critic_steps", "steps_per_iteration")]


def _sweep(tmp_path, tiny_datasets, file: str, sets: list[str]):
    """Run the file with `sets`; (its spec as run, the trial runs, the client, the output)."""
    seed_datasets(tiny_datasets, tmp_path / "runs")
    args = [a for s in sets for a in ("--set", s)]
    result = run_module("platform.sweep", str(ROOT / "search_spaces" / file), *args, cwd=tmp_path, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    spec = spaces.read(str(ROOT / "search_spaces" / file), sets).spec
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name(spec.experiment)
    runs = [r for r in client.search_runs([experiment.experiment_id]) if "mlflow.parentRunId" in r.data.tags]
    return spec, runs, client, result.stdout + result.stderr


def _iterations(client, run) -> int:
    return len(client.get_metric_history(run.info.run_id, "loss/G"))  # logged every iteration


@pytest.mark.slow
def test_paper_yaml_runs_every_experiment_its_length_judged_at_the_resolved_cadence(tmp_path, tiny_datasets):
    spec, runs, client, output = _sweep(tmp_path, tiny_datasets, "paper.yaml", TINY + WGAN_TINY)
    assert sorted(r.data.tags["experiment"] for r in runs) == sorted(spec.experiments)
    lengths = tune_space.SweepLengths.of_spec(spec, SEGMENTS)
    schedule = tune_space.evaluation_schedule(spec, lengths.longest)
    for run in runs:
        experiment = spec.experiments[run.data.tags["experiment"]]
        length = lengths.of({"training": {k: getattr(experiment.training, k)
                                          for k in experiment.training.__dataclass_fields__}})
        name = run.info.run_name
        assert _iterations(client, run) == length == int(run.data.tags["length"]), name  # epochs resolved as run
        assert "stopped" not in run.data.tags, (name, run.data.tags.get("stopped"))  # FIFO stops nothing
        evaluated = [i for i in range(1, length + 1) if schedule.due(i, i == length, spec.evaluation, length)]
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "fid")]
        every = experiment.training.steps_per_iteration
        assert len(steps) == len(evaluated) >= 3, (name, steps, evaluated)
        assert steps[:-1] == [i * every for i in evaluated[:-1]], (name, steps, evaluated)
        assert f"trial {name} finished after {length}/{length} iteration(s)" in output
    assert "stopped early" not in output


@pytest.mark.slow
def test_a_family_file_with_epochs_tags_the_trials_asha_stopped_where_it_stopped_them(tmp_path, tiny_datasets):
    # dcgan2.yaml: 6 epochs of 3 batches, 2 steps an iteration: 9 iterations; rungs 1, 2, 4, 8
    sets = TINY + ["tune.num_samples=6", "tune.scheduler.grace_period=1", "tune.scheduler.reduction_factor=2",
                   "model.dropout_g=0.5", "model.dropout_d=0.3"]
    spec, runs, client, output = _sweep(tmp_path, tiny_datasets, "dcgan2.yaml", sets)
    assert len(runs) == 6 and spec.training.epochs == 6
    length = tune_space.SweepLengths.of_spec(spec, SEGMENTS).longest
    assert length == 9
    stopped = 0
    for run in runs:
        done, tag = _iterations(client, run), run.data.tags.get("stopped")
        assert int(run.data.tags["length"]) == length
        if done < length:
            stopped += 1
            assert tag == f"asha at iteration {done} of {length}", (run.info.run_name, tag)
            assert f"trial {run.info.run_name} stopped early after {done}/{length} iteration(s) (asha)" in output
        else:
            assert done == length and tag is None, (run.info.run_name, done, tag)
    assert stopped >= 1, "ASHA stopped no trial: the test shows nothing"
