"""benchmarks/sweep_efficiency.py: where a sweep's cores went, read from its MLflow store.

The arithmetic on hand-made stores (new ones with the trials' timing metrics, old ones
without, whose training seconds come from throughput), its one-sentence refusals, and a
tiny real sweep whose shares add up to 100 % and whose timing metrics hold what they promise.
"""
import json
import re
from pathlib import Path

import pytest
from mlflow import MlflowClient
from mlflow.entities import Metric

from benchmarks import sweep_efficiency as eff
from tests.helpers import run_module, seed_datasets, tiny_sweep, write_spec
from trainables import trial_clock as clock

T0 = 1_800_000_000.0  # the parent run's start, epoch seconds


def _ms(seconds: float) -> int:
    return int(round(seconds * 1000))


def _parent(client, experiment_id: str, root: Path, wall: float, cpu: float = 1, concurrent: int = 2) -> str:
    """A finished sweep of `wall` seconds from T0, with the Tune record its cores are read from."""
    run = client.create_run(experiment_id, start_time=_ms(T0),
                            tags={"sweep": "parent", "dataset.path": str(root / "runs" / "datasets" / "fp")})
    client.set_terminated(run.info.run_id, end_time=_ms(T0 + wall))
    folder = root / "runs" / "tune" / f"sweep-{run.info.run_id[:6]}"
    folder.mkdir(parents=True)
    (folder / eff.SWEEP_STATE).write_text(json.dumps({
        "tracking": {"parent_run_id": run.info.run_id},
        "spec": {"tune": {"max_concurrent": concurrent, "resources_per_trial": {"cpu": cpu, "gpu": 0}}}}))
    return run.info.run_id


def _trial(client, experiment_id: str, parent: str, start: float, end: float, metrics: list[tuple],
           params: dict | None = None, tags: dict | None = None) -> None:
    """A trial run from T0+start to T0+end; metrics: (key, value, step, at: seconds after T0)."""
    run = client.create_run(experiment_id, start_time=_ms(T0 + start),
                            tags={"mlflow.parentRunId": parent, **(tags or {})})
    run_id = run.info.run_id
    for key, value in (params or {}).items():
        client.log_param(run_id, key, value)
    client.log_batch(run_id, metrics=[Metric(k, v, _ms(T0 + at), step) for k, v, step, at in metrics])
    client.set_terminated(run_id, end_time=_ms(T0 + end))


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """One store, two experiments: `new` (trials log their timing) and `old` (they do not)."""
    root = tmp_path_factory.mktemp("efficiency")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)

    new = client.create_experiment("new")
    parent = _parent(client, new, root, wall=100)
    # a fresh worker: began at T0+3 (its start-up of 3 s ends at its first step, at T0+6)
    _trial(client, new, parent, start=5, end=60, tags={clock.TRIAL_INDEX: "0"}, metrics=[
        (clock.STARTUP_S, 3.0, 10, 6),
        (clock.TRAIN_S, 20.0, 10, 30), (clock.ARTIFACTS_S, 1.0, 10, 30), (clock.CHECKPOINT_S, 0.0, 10, 30),
        (clock.TRAIN_S, 20.0, 20, 58), (clock.EVAL_S, 5.0, 20, 58), (clock.ARTIFACTS_S, 1.0, 20, 58),
        (clock.CHECKPOINT_S, 0.5, 20, 58)])
    # the same worker again: began at T0+60, first step at T0+61, ended at T0+99
    _trial(client, new, parent, start=60.5, end=99, tags={clock.TRIAL_INDEX: "1"}, metrics=[
        (clock.STARTUP_S, 1.0, 10, 61), (clock.TRAIN_S, 30.0, 10, 95), (clock.FINAL_EVAL_S, 2.0, 10, 95)])

    old = client.create_experiment("old")
    parent_old = _parent(client, old, root, wall=70, cpu=2, concurrent=1)
    # 10 + 10 + 5 steps of 2 critic steps x 4 images: 80, 80 and 40 images at 4 img/s: 20 + 20 + 10 s
    _trial(client, old, parent_old, start=2, end=80,  # ends after the sweep's end: clipped to it
           params={"training.critic_steps": "2", "training.batch_size": "4"},
           metrics=[(eff.THROUGHPUT, 4.0, 10, 22), (eff.THROUGHPUT, 4.0, 20, 42), (eff.THROUGHPUT, 4.0, 25, 48),
                    (clock.EVAL_S, 3.0, 25, 48), (clock.ARTIFACTS_S, 2.0, 25, 48)])
    return uri, root, parent


def test_a_new_sweeps_seconds_add_up_part_by_part(store):
    uri, _, parent = store
    sweep = eff.read_sweep("new", uri, "new")
    assert sweep.parent == parent and sweep.wall == pytest.approx(100) and sweep.cores == 2
    seconds = sweep.seconds()
    assert seconds == pytest.approx({
        "training": 70.0, "evaluation": 7.0, "artifacts and checkpoints": 2.5, "trial start-up": 4.0,
        # spans: 57 s (T0+3 to T0+60) and 39 s (T0+60 to T0+99), less what is named
        "other in trials": (57 - 40 - 5 - 2.5 - 3) + (39 - 30 - 2 - 1),
        "idle slots": 200 - 57 - 39})
    assert not sweep.derived and sum(t.reused for t in sweep.trials) == 1


def test_an_old_sweeps_training_comes_from_throughput_and_its_spans_from_its_runs(store):
    uri, _, _ = store
    sweep = eff.read_sweep("old", uri, "old")
    assert sweep.cores == 2 and sweep.wall == pytest.approx(70) and sweep.derived
    seconds = sweep.seconds()
    # a trial of 2 CPUs holds both cores: its seconds count twice
    assert seconds["training"] == pytest.approx(2 * 50.0)
    assert seconds["trial start-up"] == 0  # not separable: in "other" (and, before the run, "idle")
    # the run's span, T0+2 to the sweep's end at T0+70
    assert seconds["other in trials"] == pytest.approx(2 * (68 - 50 - 3 - 2))
    assert seconds["idle slots"] == pytest.approx(140 - 2 * 68)
    assert sum(seconds.values()) == pytest.approx(140)


def test_the_table_puts_sweeps_side_by_side_and_says_which_were_read_as_old(store, capsys):
    uri, _, _ = store
    assert eff.main(["--tracking-uri", uri, "--label", "before", "--experiment", "old",
                     "--label", "after", "--experiment", "new"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"share of cores x wall\s+before\s+after\n", out)
    assert re.search(r"\ntraining\s+71\.4 %\s+35\.0 %\n", out)  # 2 x 50 / 140, 70 / 200
    assert re.search(r"\ntrial start-up\s+n/a\s+2\.0 %\n", out)
    assert re.search(r"\ntotal\s+100\.0 %\s+100\.0 %\n", out)
    assert re.search(r"\nevaluation / trial time \(<= 10%\)\s+4\.4 %\s+7\.3 %\n", out)  # 3/68, 7/96
    assert re.search(r"\ntrials in a reused worker\s+n/a\s+1 of 2\n", out)
    assert "before: read as an old store" in out and "after: read as an old store" not in out


def test_cores_given_replace_the_spec_and_a_begin_before_the_sweep_is_clipped(store):
    uri, _, _ = store
    sweep = eff.read_sweep("new", uri, "new", cores="4", tune_dir="/nowhere")
    assert sweep.cores == 4 and sweep.seconds()["idle slots"] == pytest.approx(400 - 57 - 39)


@pytest.mark.parametrize("argv, says", [
    (["--experiment", "nope"], "no experiment 'nope'"),
    (["--experiment", "new", "--parent", "a" * 32], f"there is no run '{'a' * 32}'"),
    (["--experiment", "new", "--cores", "two"], "--cores 'two' is neither a positive number nor 'auto'"),
    (["--experiment", "new", "--experiment", "old", "--label", "a", "--label", "b", "--label", "c"],
     "--experiment is given 2 times for 3 sweeps"),
    (["--experiment", "new", "--tune-dir", "/nowhere"], "no Tune experiment of parent run"),
])
def test_bad_input_is_one_sentence_and_exit_2(store, capsys, argv, says):
    uri, _, _ = store
    assert eff.main(["--tracking-uri", uri, *argv]) == 2
    err = capsys.readouterr().err
    assert says in err and err.count("\n") == 1


@pytest.mark.slow
def test_a_tiny_sweeps_shares_add_up_and_its_timing_holds(tmp_path, tiny_datasets):
    """Two trials one after the other (one slot): the second reuses the first's worker."""
    seed_datasets(tiny_datasets, tmp_path / "runs")
    spec = write_spec(tmp_path / "tiny.yaml", **tiny_sweep(
        "tiny-eff", tune={"searcher": "random", "scheduler": {"name": "fifo"}, "num_samples": 2,
                          "max_concurrent": 1}))
    result = run_module("platform.sweep", str(spec), cwd=tmp_path, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"

    done = run_module("benchmarks.sweep_efficiency", "--tracking-uri", uri, "--experiment", "tiny-eff",
                      cwd=tmp_path, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    shares = {name.strip(): float(value) for name, value in
              re.findall(r"^([a-z][a-z -]+?)\s+(-?[0-9.]+) %$", done.stdout, re.M)}
    parts = [shares[part] for part in eff.PARTS]
    assert all(share >= 0 for share in parts), done.stdout  # no part overruns its trial, no slot overbooked
    assert sum(parts) == pytest.approx(100, abs=0.35) and shares["total"] == 100.0, done.stdout
    assert shares["training"] > 0 and shares["trial start-up"] > 0 and "old store" not in done.stdout

    client = MlflowClient(tracking_uri=uri)
    runs = client.search_runs([client.get_experiment_by_name("tiny-eff").experiment_id],
                              "tags.`mlflow.parentRunId` != ''")
    assert sorted(int(r.data.tags[clock.TRIAL_INDEX]) for r in runs) == [0, 1]
    for run in runs:
        run_id = run.info.run_id
        startup = client.get_metric_history(run_id, clock.STARTUP_S)
        assert len(startup) == 1 and startup[0].value > 0
        # the trial began before its run opened, and its first step came after
        assert startup[0].timestamp / 1000 - startup[0].value <= run.info.start_time / 1000 + 0.001
        assert run.info.start_time <= startup[0].timestamp + 1
        # training time holds the throughput's own seconds: steps x batch / img/s (critic_steps 1)
        trained = {m.step: m.value for m in client.get_metric_history(run_id, clock.TRAIN_S)}
        steps = {m.step: m.value for m in client.get_metric_history(run_id, eff.THROUGHPUT)}
        assert sorted(trained) == sorted(steps) == [3, 6]
        assert all(trained[step] >= 3 * 4 / steps[step] for step in steps)
        assert [m.step for m in client.get_metric_history(run_id, clock.CHECKPOINT_S)] == [3, 6]


def test_a_trial_begins_with_its_process_the_first_time_and_at_its_call_after():
    import importlib
    import time

    import psutil
    fresh = importlib.reload(clock)  # a process that has run no trial yet
    try:
        index, began = fresh.trial_began()
        assert index == 0 and began == psutil.Process().create_time() < time.time() - 0.5
        before = time.time()
        index, began = fresh.trial_began()
        assert index == 1 and before <= began <= time.time()
    finally:
        importlib.reload(clock)
