"""MLflow on the driver: the experiment, the sweep's parent run, and its closing.

Each trial logs its own nested child run from its worker (trainables/mlflow_run.py);
this module creates what they nest under and tidies up after Tune returns.
"""
import time
from pathlib import Path

from mlflow import MlflowClient
from mlflow.entities import RunStatus

from trainables.mlflow_run import TrackingTarget


def resolve_uri(uri: str) -> str:
    """Make a relative SQLite or file store absolute: trials run in their own directories."""
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        return "sqlite:///" + str(Path(uri[len("sqlite:///"):]).resolve())
    if "://" not in uri:
        return str(Path(uri).resolve())
    return uri


def ui_command(uri: str) -> str:
    return f".venv/bin/mlflow ui --backend-store-uri {uri}"


def start_sweep(tracking_uri: str, experiment: str, run_name: str, tags: dict,
                params: dict, spec_file: str) -> TrackingTarget:
    client = MlflowClient(tracking_uri=tracking_uri)
    found = client.get_experiment_by_name(experiment)
    experiment_id = found.experiment_id if found else client.create_experiment(experiment)
    run = client.create_run(experiment_id, run_name=run_name, tags={"sweep": "parent", **tags})
    for key, value in sorted(params.items()):
        client.log_param(run.info.run_id, key, value)
    client.log_artifact(run.info.run_id, spec_file)
    return TrackingTarget(tracking_uri, experiment_id, run.info.run_id)


def child_runs(target: TrackingTarget) -> list:
    client = MlflowClient(tracking_uri=target.tracking_uri)
    return client.search_runs([target.experiment_id],
                              filter_string=f"tags.mlflow.parentRunId = '{target.parent_run_id}'")


def finish_sweep(target: TrackingTarget, trial_errors: dict[str, str], best: dict | None) -> None:
    """Close the parent run; end child runs Tune stopped before their code could.

    `trial_errors` maps Tune trial ids to their error, for trials that failed.
    """
    client = MlflowClient(tracking_uri=target.tracking_uri)
    for run in child_runs(target):
        trial_id = run.data.tags.get("tune.trial_id")
        if trial_id in trial_errors:
            client.set_tag(run.info.run_id, "failure", trial_errors[trial_id][:5000])
            if run.info.status != "FAILED":
                client.set_terminated(run.info.run_id, "FAILED")
        elif run.info.status == RunStatus.to_string(RunStatus.RUNNING):
            client.set_terminated(run.info.run_id, "FINISHED")
    if best:
        client.log_metric(target.parent_run_id, "best/fid", best["fid"], timestamp=int(time.time() * 1000))
        client.set_tag(target.parent_run_id, "best.trial_id", best["trial_id"])
        if best.get("run_id"):
            client.set_tag(target.parent_run_id, "best.run_id", best["run_id"])
    client.set_terminated(target.parent_run_id, "FINISHED" if best else "FAILED")
