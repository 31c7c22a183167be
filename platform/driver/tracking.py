"""MLflow on the driver: the experiment, the sweep's parent run, and its closing.

Each trial logs its own nested child run from its worker (trainables/mlflow_run.py);
this module creates what they nest under and tidies up after Tune returns.
"""
import csv
import logging
import math
import os
import re
import sys
import tempfile
import time
from functools import cache
from pathlib import Path

from mlflow import MlflowClient
from mlflow.entities import RunStatus

from trainables import verdict
from trainables.mlflow_run import TrackingTarget, log_dataset

RESULTS_CSV = "results.csv"
# a trial run's tags the driver sets when it ends (platform/driver/trial_ends.py): the
# trial's length in iterations, and where the scheduler or the time budget stopped it
LENGTH_TAG = "length"
STOPPED_TAG = "stopped"
# MLflow 3's UI opens an experiment on the view its kind names, GenAI's when it has none:
# these experiments are model training ("Model training" in the UI's switch)
EXPERIMENT_KIND = "mlflow.experimentKind"
TRAINING_VIEW = {EXPERIMENT_KIND: "custom_model_development"}


def resolve_uri(uri: str) -> str:
    """Make a relative SQLite or file store absolute: trials run in their own directories."""
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        return "sqlite:///" + str(Path(uri[len("sqlite:///"):]).resolve())
    if "://" not in uri:
        return str(Path(uri).resolve())
    return uri


def default_uri() -> str:
    """As a sweep without `mlflow.tracking_uri`: $MLFLOW_TRACKING_URI, else ./mlflow.db."""
    from platform.spec.spaces import MlflowSpec
    return resolve_uri(MlflowSpec().resolved_uri())


@cache
def client_for(uri: str) -> MlflowClient:
    """One client per store for the driver's life (a client holds its store's connections)."""
    return MlflowClient(tracking_uri=uri)


class RunLookupError(LookupError):
    """A run, experiment or artifact a command was asked for is not in the store; one sentence."""


def open_store(uri: str) -> MlflowClient:
    """A client on an existing store: a mistyped SQLite path is an error, not a new empty store."""
    if uri.startswith("sqlite:///") and not Path(uri[len("sqlite:///"):]).is_file():
        raise RunLookupError(f"there is no MLflow store at {uri} (run a sweep first, or pass --tracking-uri).")
    if uri.startswith("sqlite:///"):
        try:
            with open(uri[len("sqlite:///"):], "rb") as db:
                header = db.read(16)
        except OSError as error:
            raise RunLookupError(f"the MLflow store {uri} cannot be read ({error.strerror}).") from None
        if header and header != b"SQLite format 3\0":  # /etc/passwd, say: MLflow would end in a traceback
            raise RunLookupError(f"{uri} is not an MLflow store: the file is not an SQLite database.")
    return client_for(uri)


def get_run(client: MlflowClient, run_id: str):
    from mlflow.exceptions import MlflowException
    try:
        return client.get_run(run_id)
    except MlflowException:
        raise RunLookupError(f"there is no run {run_id!r} in {client.tracking_uri}.") from None


def get_experiment(client: MlflowClient, name: str):
    found = client.get_experiment_by_name(name)
    if found is None:
        names = ", ".join(sorted(e.name for e in client.search_experiments())) or "none"
        raise RunLookupError(f"there is no experiment {name!r} in {client.tracking_uri} (it has: {names}).")
    return found


def trial_runs(client: MlflowClient, experiment_id: str, parent_run_id: str | None = None) -> list:
    """The experiment's trial runs (those nested under a sweep), or one sweep's."""
    runs = client.search_runs([experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent_run_id}'"
                              if parent_run_id else "", max_results=50000)
    return [r for r in runs if "mlflow.parentRunId" in r.data.tags]


def run_score(client: MlflowClient, run, with_step: bool = True) -> verdict.Score | None:
    """A trial run's score (trainables/verdict.py) from its fid history; `with_step` False:
    from the `best/fid` the trial logged (its running score), without a query per run,
    where it logged one."""
    if not with_step and "best/fid" in run.data.metrics:
        fid = run.data.metrics["best/fid"]
        return verdict.Score(fid) if verdict.plausible(fid) else None
    return verdict.score((m.step, m.value) for m in client.get_metric_history(run.info.run_id, "fid"))


def ranked_runs(client: MlflowClient, runs: list, with_step: bool = True) -> list[tuple]:
    """(run, its score) for every trial run, best first (the verdict's order)."""
    scored = [(run, run_score(client, run, with_step)) for run in runs]
    return verdict.rank(scored, lambda pair: pair[1], lambda pair: pair[0].info.run_name or "")


def sweep_winner(client: MlflowClient, experiment_name: str, parent_id: str | None = None) -> tuple:
    """(parent run, winning trial run) of the experiment's latest sweep or of the sweep
    `parent_id`: a score is compared within one sweep and one embedding only."""
    parent, runs = sweep_runs(client, experiment_name, parent_id)
    scored = [(run, run_score(client, run)) for run in runs]
    try:
        best = verdict.winner(scored, lambda pair: pair[1], lambda pair: pair[0].info.run_name or "",
                              lambda pair: pair[0].data.params.get("evaluation.embedding", ""))
    except verdict.Incomparable as error:
        raise RunLookupError(f"sweep {parent.info.run_name} ({parent.info.run_id}) has no single winner: {error}; "
                             "give a trial's RUN_ID.") from None
    if best is None:
        raise RunLookupError(f"sweep {parent.info.run_name} ({parent.info.run_id}) of experiment "
                             f"{experiment_name!r} has no trial run with an fid.")
    return parent, best[0]


def sweep_runs(client: MlflowClient, experiment_name: str, parent_id: str | None = None) -> tuple:
    """(parent run, its trial runs) of the experiment's latest sweep, or of the sweep
    `parent_id`, which must be in that experiment; RunLookupError for a sweep without trials."""
    experiment = get_experiment(client, experiment_name)
    if parent_id:
        parent = get_run(client, parent_id)
        if parent.info.experiment_id != experiment.experiment_id:
            raise RunLookupError(f"run {parent_id} is not in experiment {experiment_name!r}.")
    else:
        parent = latest_parent_run(client, experiment_name)
    runs = trial_runs(client, experiment.experiment_id, parent.info.run_id)
    if not runs:
        raise RunLookupError(f"sweep run {parent.info.run_id} ({parent.info.run_name}) has no trial runs.")
    return parent, runs


def latest_parent_run(client: MlflowClient, experiment_name: str):
    experiment = get_experiment(client, experiment_name)
    found = client.search_runs([experiment.experiment_id], filter_string="tags.sweep = 'parent'",
                               order_by=["attributes.start_time DESC"], max_results=1)
    if not found:
        raise RunLookupError(f"experiment {experiment_name!r} has no sweep run.")
    return found[0]


def _has_checkpoint(client: MlflowClient, run, which: str) -> bool:
    from trainables.artifacts import CHECKPOINTS
    from trainables.checkpoint import CHECKPOINT_FILE
    folder = CHECKPOINTS[which]
    return any(a.path == f"{folder}/{CHECKPOINT_FILE}" and not a.is_dir
               for a in client.list_artifacts(run.info.run_id, folder))


def trial_checkpoint(client: MlflowClient, run, which: str):
    """The run's checkpoint artifact (trainables.checkpoint.Checkpoint); CheckpointError
    names the file if it is not one this platform wrote."""
    from trainables.artifacts import CHECKPOINTS
    from trainables.checkpoint import CHECKPOINT_FILE, Checkpoint
    from mlflow.exceptions import MlflowException
    folder = CHECKPOINTS[which]
    shown = f"run {run.info.run_id}'s artifact {folder}/{CHECKPOINT_FILE}"
    with tempfile.TemporaryDirectory(prefix="gan-generate-") as tmp:
        try:
            if not _has_checkpoint(client, run, which):
                raise RunLookupError(f"run {run.info.run_id} ({run.info.run_name}) has no {which} checkpoint "
                                     f"({folder}/{CHECKPOINT_FILE}) among its artifacts.")
            path = client.download_artifacts(run.info.run_id, f"{folder}/{CHECKPOINT_FILE}", tmp)
        except (OSError, MlflowException) as error:  # a dangling symlink, or one MLflow refuses to follow
            why = (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
            raise RunLookupError(f"{shown} cannot be read ({why.rstrip('.')}).") from None
        return Checkpoint.load(path, shown_as=shown)


def end_checkpoint(client: MlflowClient, run) -> tuple:
    """(the trial's state at its end, which checkpoint that is): its `last`, logged when it
    trained to its end; for a trial stopped before (ASHA, its health) or failed, its `best`,
    the one it has (trainables/artifacts.py logs no other)."""
    from mlflow.exceptions import MlflowException
    try:
        has_last = _has_checkpoint(client, run, "last")
    except (OSError, MlflowException):
        has_last = True  # trial_checkpoint says what is wrong
    which = "last" if has_last else "best"
    return trial_checkpoint(client, run, which), which


def ui_command(uri: str) -> str:
    """The command that opens the UI on a local store; a server (http) is its own UI. One
    worker: uvicorn's supervisor kills a worker that does not answer within 5 s of starting,
    which four workers importing MLflow at once on a busy small machine do not (README)."""
    if uri.startswith(("http://", "https://")):
        return f"open {uri} in a browser"
    # the runs' artifacts are in ./mlruns beside the store (absolute paths in each run): the
    # server's own uploads, from its UI, go there too instead of a new ./mlartifacts
    folder = Path(uri[len("sqlite:///"):]).parent if uri.startswith("sqlite:///") else Path(uri)
    mlflow = Path(sys.executable).parent / "mlflow"  # this Python's, wherever the command is typed
    shown = os.path.relpath(mlflow) if mlflow.is_relative_to(Path.cwd()) else str(mlflow)
    return (f"{shown if mlflow.exists() else 'mlflow'} ui --backend-store-uri {uri} "
            f"--artifacts-destination {folder.resolve() / 'mlruns'} --workers 1")


def ui_url(experiment_id: str, tracking_uri: str | None = None, sweep_run_id: str | None = None) -> str:
    """The experiment's runs in the training view of the MLflow server `tracking_uri`, or of
    `mlflow ui` on this machine; given the sweep's parent run, its trials alone (not nested
    under a collapsed parent row), best score first. MLflow 3.17's UI reads these from the
    address (`workflowType` picks the view, which older 3.x UIs took from the experiment's
    kind tag); the columns it shows it does not (README, "Compare trials in MLflow")."""
    server = tracking_uri if tracking_uri and tracking_uri.startswith(("http://", "https://")) else None
    base = server.rstrip("/") if server else "http://127.0.0.1:5000"
    url = f"{base}/#/experiments/{experiment_id}/runs?workflowType=machine_learning"
    if sweep_run_id:
        from urllib.parse import quote
        trials = f"tags.mlflow.parentRunId = '{sweep_run_id}'"
        url += f"&searchFilter={quote(trials, safe='')}&orderByKey={quote('metrics.`best/fid`', safe='')}&orderByAsc=true"
    return url


def start_sweep(tracking_uri: str, experiment: str, run_name: str, tags: dict,
                params: dict, spec_file: str, dataset: tuple[str, str, int] | None = None) -> TrackingTarget:
    """`dataset`: (source, fingerprint, segments), logged as the parent run's dataset input."""
    client = client_for(tracking_uri)
    found = client.get_experiment_by_name(experiment)
    experiment_id = found.experiment_id if found else client.create_experiment(experiment, tags=TRAINING_VIEW)
    if found and EXPERIMENT_KIND not in found.tags:  # made by an older version of this platform
        client.set_experiment_tag(experiment_id, EXPERIMENT_KIND, TRAINING_VIEW[EXPERIMENT_KIND])
    run = client.create_run(experiment_id, run_name=run_name, tags={"sweep": "parent", **tags})
    for key, value in sorted(params.items()):
        client.log_param(run.info.run_id, key, value)
    client.log_artifact(run.info.run_id, spec_file)
    if dataset:
        log_dataset(tracking_uri, run.info.run_id, *dataset)
    target = TrackingTarget(tracking_uri, experiment_id, run.info.run_id)
    _OPEN_SWEEPS.append(target)
    return target


def reopen_sweep(target: TrackingTarget) -> TrackingTarget:
    """A resumed sweep goes on in its parent run."""
    client = client_for(target.tracking_uri)
    client.get_run(target.parent_run_id)  # fails clearly if the store lost it
    client.update_run(target.parent_run_id, status=RunStatus.to_string(RunStatus.RUNNING))
    client.set_tag(target.parent_run_id, "sweep.resumed", time.strftime("%Y-%m-%d %H:%M:%S"))
    _OPEN_SWEEPS.append(target)
    return target


# The parent runs this driver opened: whatever it dies of, they end (fail_open_sweeps).
_OPEN_SWEEPS: list[TrackingTarget] = []


def fail_sweep(target: TrackingTarget, reason: str) -> None:
    """End a parent run FAILED with the reason (one line) as its `failure` tag."""
    client = client_for(target.tracking_uri)
    client.set_tag(target.parent_run_id, "failure", reason[:5000])
    client.set_terminated(target.parent_run_id, "FAILED")


def fail_open_sweeps(reason: str) -> list[str]:
    """End FAILED every parent run this driver opened that is still RUNNING; their ids.
    Best effort: the store may be what failed."""
    ended = []
    for target in _OPEN_SWEEPS:
        try:
            status = client_for(target.tracking_uri).get_run(target.parent_run_id).info.status
            if status == RunStatus.to_string(RunStatus.RUNNING):
                fail_sweep(target, reason)
                ended.append(target.parent_run_id)
        except Exception as error:  # noqa: BLE001 - the driver is dying already; say why, go on
            logging.getLogger(__name__).warning("could not end the parent run %s (%s)", target.parent_run_id,
                                                str(error).splitlines()[0] if str(error) else type(error).__name__)
    return ended


def finish_sweep(target: TrackingTarget, trial_errors: dict[str, str]) -> dict | None:
    """Close the parent run; end child runs Tune stopped before their code could; draw the
    loss curves a stopped trial had no time to draw; log the results table. Returns the
    winner's row of that table (None: no trial scored, or no single winner, said on stderr).

    `trial_errors` maps Tune trial ids to their error, for trials that failed.
    """
    from trainables.artifacts import FAILURE_ARTIFACT
    client = client_for(target.tracking_uri)
    runs = trial_runs(client, target.experiment_id, target.parent_run_id)
    for run in runs:
        trial_id = run.data.tags.get("tune.trial_id")
        if trial_id in trial_errors:
            if "failure" not in run.data.tags:  # the trial's own one-line reason is better than Ray's
                client.set_tag(run.info.run_id, "failure", failure_reason(trial_errors[trial_id])[:5000])
            if not any(a.path == FAILURE_ARTIFACT for a in client.list_artifacts(run.info.run_id)):
                client.log_text(run.info.run_id, _ANSI.sub("", trial_errors[trial_id]), FAILURE_ARTIFACT)
            if run.info.status != "FAILED":
                client.set_terminated(run.info.run_id, "FAILED")
        elif run.info.status == RunStatus.to_string(RunStatus.RUNNING):
            client.set_terminated(run.info.run_id, "FINISHED")
    # listed again: the table shows each run's status as just ended above, not as it was
    runs = trial_runs(client, target.experiment_id, target.parent_run_id)
    draw_missing_loss_curves(client, runs)
    rows = log_results_table(client, target.parent_run_id, runs)
    try:
        best = verdict.winner(rows, _row_score, lambda row: row["run_name"],
                              lambda row: row.get("evaluation.embedding", ""))
    except verdict.Incomparable as error:
        print(f"No single winner: {error}.", file=sys.stderr)
        best = None
    if best:
        client.log_metric(target.parent_run_id, "best/fid", best["best_fid"], timestamp=int(time.time() * 1000))
        client.set_tag(target.parent_run_id, "best.trial_id", best["trial_id"])
        client.set_tag(target.parent_run_id, "best.run_id", best["run_id"])
    client.set_terminated(target.parent_run_id, "FINISHED" if best else "FAILED")
    return best


def _row_score(row: dict) -> verdict.Score | None:
    return verdict.Score(row["best_fid"], row["best_fid_step"]) if row["best_fid"] != "" else None


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def failure_reason(error_text: str) -> str:
    """Ray's text of a trial's error (colour codes, the task's traceback, caret lines under
    the failing code) -> its last line, `ExceptionType: message`."""
    lines = [line.strip() for line in _ANSI.sub("", error_text).splitlines()]
    lines = [line for line in lines if line and set(line) - set("^~ ")]
    return lines[-1] if lines else "the trial failed without a message"


def results_table(client: MlflowClient, runs: list) -> list[dict]:
    """One row per trial run, best first by its score (trainables/verdict.py): ids, name,
    status, who stopped it early, best fid and its step, final fid and its step, the
    trial's length in iterations, then every hyperparameter as a column."""
    rows = []
    for run in runs:
        fids = sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id, "fid"))
        best = verdict.score(fids)
        rows.append({"trial_id": run.data.tags.get("tune.trial_id", ""), "run_id": run.info.run_id,
                     "run_name": run.info.run_name, "status": run.info.status,
                     "stopped": run.data.tags.get("stopped", ""),
                     "best_fid": best.fid if best else "", "best_fid_step": best.step if best else "",
                     "final_fid": fids[-1][1] if fids else "", "final_fid_step": fids[-1][0] if fids else "",
                     "step": run.data.metrics.get("step", ""), "length": run.data.tags.get(LENGTH_TAG, ""),
                     **dict(sorted(run.data.params.items()))})
    return verdict.rank(rows, _row_score, lambda row: row["run_name"] or "")


def log_results_table(client: MlflowClient, parent_run_id: str, runs: list) -> list[dict]:
    """The sweep's trial runs as `results.csv` on its parent run."""
    rows = results_table(client, runs)
    columns = list(dict.fromkeys(key for row in rows for key in row))
    with tempfile.TemporaryDirectory(prefix="sweep-results-") as tmp:
        path = Path(tmp) / RESULTS_CSV
        with path.open("w", newline="") as out:
            writer = csv.DictWriter(out, fieldnames=columns, restval="")
            writer.writeheader()
            writer.writerows(rows)
        client.log_artifact(parent_run_id, str(path))
    return rows


def draw_missing_loss_curves(client: MlflowClient, runs: list) -> None:
    """A trial's loss curves are drawn by its worker at its end, but the end of a sweep can
    kill a trial the scheduler has just stopped before it draws them: draw those here."""
    from trainables.artifacts import LOSS_CURVES
    from trainables.figures import LOSS_KEYS, loss_figure
    from trainables.mlflow_run import metric_history
    for run in runs:
        if any(a.path == LOSS_CURVES for a in client.list_artifacts(run.info.run_id)):
            continue
        history = metric_history(client, run.info.run_id, ("fid",) + LOSS_KEYS)
        if history:
            title = f"{run.info.run_name} ({run.data.params.get('model.family', '?')})"
            client.log_figure(run.info.run_id, loss_figure(history, title), LOSS_CURVES)
