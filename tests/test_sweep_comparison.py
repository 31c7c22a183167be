"""What a user sees of a sweep's trials (issue 20), on one small Optuna + ASHA sweep run as a
user runs it: readable names the same in Tune's output and folders, MLflow and results.csv;
trials ASHA stopped tagged so; one winner in the summary, results.csv, the report's page and
`platform.generate --experiment`; the Optuna study readable from its storage afterwards with
the trials' values; the dataset as MLflow's dataset input and system metrics on the runs.
And `--set` on a key the file searches replaces the search, saying so."""
import csv
import re
import tempfile
from pathlib import Path

import pytest
from mlflow import MlflowClient

from tests.helpers import CHEAP_EMBEDDING, run_module, seed_datasets, tiny_sweep, write_spec

ITERATIONS = 4
STEPS = 3
SEARCHED = {"training.lr_g": {"loguniform": [1e-4, 3e-3]}, "training.beta1": {"uniform": [0.3, 0.7]},
            "model.width": {"choice": [4, 8]}}
SWEEP = tiny_sweep(
    "compare",
    training={"batch_size": 4, "iterations": ITERATIONS, "steps_per_iteration": STEPS, "checkpoint_every": 2},
    evaluation={"samples": 16, "embedding": CHEAP_EMBEDDING, "audio_clips": 1, "griffin_lim_iters": 4,
                "artifacts_every": 1},
    search=SEARCHED,
    # 6 trials, two at a time, rungs at iterations 1 and 2: ASHA stops the worse half at each
    tune={"searcher": "optuna", "scheduler": {"name": "asha", "grace_period": 1, "reduction_factor": 2},
          "num_samples": 6, "max_concurrent": 2},
)
NAME = re.compile(r"dcgan1 #(\d+) lr_g=\S+ beta1=\S+ width=(4|8)")


@pytest.fixture(scope="module")
def sweep(tmp_path_factory, tiny_datasets):
    cwd = tmp_path_factory.mktemp("compare")
    seed_datasets(tiny_datasets, cwd / "runs")
    spec = write_spec(cwd / "compare.yaml", **SWEEP)
    # a sample of CPU and memory every second: these trials last seconds
    result = run_module("platform.sweep", str(spec), cwd=cwd, timeout=900,
                        env={"MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL": "1"})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    client = MlflowClient(tracking_uri=f"sqlite:///{cwd / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("compare")
    runs = client.search_runs([experiment.experiment_id])
    parent = next(r for r in runs if "mlflow.parentRunId" not in r.data.tags)
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(children) == 6
    return cwd, client, parent, children, result.stdout + result.stderr


def _results(client, parent) -> list[dict]:
    path = client.download_artifacts(parent.info.run_id, "results.csv", tempfile.mkdtemp())
    return list(csv.DictReader(open(path)))


@pytest.mark.slow
def test_trials_have_the_same_readable_name_in_tune_mlflow_and_results(sweep):
    from platform.spec.tune_space import trial_dirname
    cwd, client, parent, children, output = sweep
    names = [child.info.run_name for child in children]
    assert len(set(names)) == 6 and all(NAME.fullmatch(name) for name in names), names
    assert sorted(int(NAME.fullmatch(name).group(1)) for name in names) == list(range(6))  # numbered in order
    for child in children:  # the name says the searched values the run's params hold
        params, name = child.data.params, child.info.run_name
        assert f"width={params['model.width']}" in name
        assert f"beta1={float(params['training.beta1']):.2g}" in name
    folders = {p.name for p in (cwd / "runs" / "tune").glob("compare-*/*") if p.is_dir()}
    assert {trial_dirname(name) for name in names} <= folders, folders
    assert all(f"trial {name} " in output for name in names)  # the console's line per trial
    assert {row["run_name"] for row in _results(client, parent)} == set(names)
    assert "Bracket:" not in output  # ASHA's own line, with negated fids


@pytest.mark.slow
def test_trials_asha_stopped_say_so_in_mlflow_and_results(sweep):
    _, client, parent, children, _ = sweep
    stopped = 0
    for child in children:
        steps = [m.step for m in client.get_metric_history(child.info.run_id, "fid")]
        done = len(steps)
        tag = child.data.tags.get("stopped")
        if done < ITERATIONS:
            stopped += 1
            assert tag == f"asha at iteration {done} of {ITERATIONS}", (child.info.run_name, tag)
            assert child.data.tags["stopped.step"] == str(max(steps))
        else:
            assert tag is None, (child.info.run_name, tag)
    assert stopped >= 1
    found = client.search_runs([parent.info.experiment_id], filter_string="tags.stopped LIKE 'asha%'")
    assert len(found) == stopped  # searchable in the runs table
    rows = _results(client, parent)
    assert sum(row["stopped"].startswith("asha at iteration") for row in rows) == stopped


@pytest.mark.slow
def test_one_winner_in_the_summary_results_report_and_generate(sweep, tmp_path):
    cwd, client, parent, children, output = sweep
    scores = {c.info.run_name: min(m.value for m in client.get_metric_history(c.info.run_id, "fid")) for c in children}
    winner = min(scores, key=scores.get)
    best_run = next(c for c in children if c.info.run_name == winner)
    assert f"Best trial {winner}: best fid {scores[winner]:.4g}" in output
    rows = _results(client, parent)
    assert rows[0]["run_name"] == winner and float(rows[0]["best_fid"]) == pytest.approx(scores[winner])
    assert parent.data.tags["best.run_id"] == best_run.info.run_id
    generated = run_module("platform.generate", "--experiment", "compare", "-n", "1", "--out", str(tmp_path / "gen"),
                           cwd=cwd, timeout=900)
    assert generated.returncode == 0, generated.stderr[-2000:]
    assert f"run {best_run.info.run_id} ({winner}," in generated.stdout
    from platform import report
    out = tmp_path / "report"
    assert report.main(["compare", "--out", str(out), "--tracking-uri", f"sqlite:///{cwd / 'mlflow.db'}",
                        "--root", str(cwd / "runs"), "--no-log"]) == 0  # where the sweep recorded its study
    page = (out / report.PAGE).read_text()
    assert f"Winner: <b>{winner}</b>" in page and all(name in page for name in scores)
    assert (out / f"{report.IMPORTANCE}.png").is_file()  # Optuna's importance on the stored study


@pytest.mark.slow
def test_the_optuna_study_is_kept_with_the_trials_values(sweep):
    import optuna
    _, client, parent, children, _ = sweep
    storage, name = parent.data.tags["optuna.storage"], parent.data.tags["optuna.study"]
    assert storage.endswith(".journal") and Path(storage).is_file()  # a journal file: safe on NFS
    from optuna.storages.journal import JournalFileBackend
    study = optuna.load_study(study_name=name, storage=optuna.storages.JournalStorage(JournalFileBackend(storage)))
    trials = study.get_trials(deepcopy=False)
    assert len(trials) == 6 and all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    from_mlflow = sorted(sorted(round(m.value, 6) for m in client.get_metric_history(c.info.run_id, "fid"))
                         for c in children)
    # Ray reports every result but a trial's last as an intermediate value, the last as its value
    from_optuna = sorted(sorted(round(v, 6) for v in [*t.intermediate_values.values(), t.value]) for t in trials)
    assert from_optuna == from_mlflow
    importance = optuna.importance.get_param_importances(study)
    assert set(importance) == {"training/lr_g", "training/beta1", "model/width"}


@pytest.mark.slow
def test_runs_carry_the_dataset_input_and_system_metrics(sweep):
    _, client, parent, children, _ = sweep
    fingerprint = parent.data.tags["dataset.fingerprint"]
    for run in [parent, *children]:
        inputs = client.get_run(run.info.run_id).inputs.dataset_inputs
        assert len(inputs) == 1 and inputs[0].dataset.digest == fingerprint[:12], run.info.run_name
        assert '"segments": 6' in inputs[0].dataset.profile
    # the promise: a trial that ran to its end carries its system metrics (one that Tune stops
    # may be cut off before its last write)
    ended = [child for child in children if child.info.status == "FINISHED" and not child.data.tags.get("stopped")]
    assert ended, [(c.info.run_name, c.info.status) for c in children]
    for child in ended:
        assert any(key.startswith("system/cpu_utilization") for key in child.data.metrics), child.data.metrics.keys()
        assert any(key.startswith("system/system_memory") for key in child.data.metrics)


def test_set_on_a_searched_key_replaces_the_search_and_says_so(tmp_path):
    from platform.spec import spaces
    from platform import sweep as sweeping
    spec_file = write_spec(tmp_path / "s.yaml", **SWEEP)
    spec = spaces.load(spec_file, ["training.lr_g=0.002"])
    assert "training.lr_g" not in spec.search and spec.training.lr_g == 0.002
    assert set(spec.search) == {"training.beta1", "model.width"}
    import contextlib
    import io
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert sweeping.main([str(spec_file), "--set", "training.lr_g=0.002", "--dry-run"]) == 0
    assert "# --set training.lr_g=0.002 replaces the file's search training.lr_g: {loguniform: [0.0001, 0.003]}" \
        in out.getvalue()
    assert "training.lr_g: {" not in out.getvalue().split("# Tune param space")[1]
