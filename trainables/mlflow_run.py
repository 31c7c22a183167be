"""The MLflow run of one trial, logged from the worker that trains it.

Created nested under the sweep's parent run (the `mlflow.parentRunId` tag), or reopened
by id when a trial restores from a checkpoint, so a restored trial keeps one history.
A plain MlflowClient, not the fluent API: a reused Ray actor runs many trials and must
not carry an "active run" from one to the next.
"""
import logging
import os
import time
from dataclasses import dataclass

from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunStatus

from data.spec import without_credentials
from trainables.mlflow_buffer import BufferedClient

# Keys of Tune's result (not MLflow metrics): the driver's console says when a trial's tracking
# server is unreachable from them (platform/driver/console.py)
TRACKING_KEPT = "tracking/kept_writes"
TRACKING_DOWN_S = "tracking/unreachable_s"
SYSTEM_METRICS_EVERY_S = 5  # MLflow's system/* metrics (CPU, memory, GPU where there is one)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrackingTarget:
    """Where trials log: set up by the driver, passed to every trial."""
    tracking_uri: str
    experiment_id: str
    parent_run_id: str


def _trial_dir() -> str | None:
    """The Tune trial's directory on this node (where an outage's journal goes), if in a trial."""
    import warnings
    try:
        from ray import tune
        with warnings.catch_warnings():  # outside a trial Ray warns and returns None
            warnings.simplefilter("ignore")
            return tune.get_context().get_trial_dir()
    except Exception:  # noqa: BLE001 - outside a Tune trial: a temporary folder instead
        return None


def find_trial_run(target: TrackingTarget, trial_id: str) -> str | None:
    """The run an earlier attempt of this Tune trial created, if any: a trial retried before
    its first checkpoint has no run id to restore, but must not open a second run."""
    client = BufferedClient(target.tracking_uri, _trial_dir())  # waits out an outage, saying so
    found = client.search_runs([target.experiment_id], max_results=1,
                               filter_string=f"tags.mlflow.parentRunId = '{target.parent_run_id}' "
                                             f"and tags.`tune.trial_id` = '{trial_id}'")
    return found[0].info.run_id if found else None


def finished_trial_run(target: TrackingTarget, trial_id: str, steps: int) -> dict | None:
    """The last metrics of this trial's run if it ended FINISHED with all its `steps`
    logged, else None: a sweep whose driver died in the second after the trial ended still
    has it RUNNING in Tune's state, and its resume must neither reopen the run nor train again."""
    run_id = find_trial_run(target, trial_id)
    if run_id is None:
        return None
    # The buffered client, as in find_trial_run: a resumed trial waits out an outage, saying
    # so, instead of failing; and a read logs first what an earlier attempt on this node kept
    # (possibly the run's end, without which a finished trial would train again). Called in the trial (train_gan): its journal. Where there is no trial dir (the
    # driver) the folder is a fresh temporary name, never made: a read keeps nothing.
    run = BufferedClient(target.tracking_uri, _trial_dir()).get_run(run_id)
    done = run.info.status == RunStatus.to_string(RunStatus.FINISHED) and run.data.metrics.get("step", -1) >= steps
    return dict(run.data.metrics) if done else None


def dataset_input(source: str, fingerprint: str, segments: int, context: str = "training"):
    """A built dataset as MLflow's dataset input (the runs table's Datasets column): named
    and digested by its fingerprint, its source the Parquet folder or URI, its profile the
    segment count. Metadata only: MLflow never reads the data."""
    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.data.meta_dataset import MetaDataset
    from mlflow.entities import DatasetInput, InputTag

    import json
    import warnings

    class SegmentsDataset(MetaDataset):
        @property
        def profile(self):
            return {"segments": segments}

        def to_dict(self) -> dict[str, str]:
            return {**super().to_dict(), "profile": json.dumps(self.profile)}

    uri = without_credentials(source) if "://" in source else f"file://{source}"  # no key in a record
    with warnings.catch_warnings():  # "can be interpreted in multiple ways": two local sources, the same
        warnings.simplefilter("ignore")
        where = resolve_dataset_source(uri)
    dataset = SegmentsDataset(where, name=f"mels-{fingerprint[:12]}", digest=fingerprint[:12])
    return DatasetInput(dataset._to_mlflow_entity(), tags=[InputTag("mlflow.data.context", context)])


def log_dataset(tracking_uri: str, run_id: str, source: str, fingerprint: str, segments: int) -> None:
    """Best effort: a run without its dataset input still trains; the tags name it too."""
    try:
        MlflowClient(tracking_uri=tracking_uri).log_inputs(run_id, datasets=[dataset_input(source, fingerprint,
                                                                                           segments)])
    except Exception as error:  # noqa: BLE001 - e.g. the server is away: the trial's buffer has the rest
        log.warning("the dataset input of run %s was not logged (%s)", run_id,
                    str(error).splitlines()[0] if str(error) else type(error).__name__)


def system_metrics(tracking_uri: str, run_id: str, resumed: bool):
    """`system/*` metrics logged to the run until `finish()`, through an outage buffer of their
    own (trainables/system_metrics.py); None if they cannot start."""
    try:
        from trainables.system_metrics import TrialSystemMetrics
        # MLflow's own variable for the period, as docs/tracking.md says (the tests sample each second)
        every = float(os.environ.get("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", SYSTEM_METRICS_EVERY_S))
        trial_dir = _trial_dir()
        monitor = TrialSystemMetrics(run_id, tracking_uri, os.path.join(trial_dir, "system-metrics") if trial_dir
                                     else None, sampling_interval=every, resume_logging=resumed)
        monitor.start()
        return monitor
    except Exception as error:  # noqa: BLE001 - e.g. psutil missing: train without them, saying so
        log.warning("no system metrics for run %s (%s)", run_id, error)
        return None


def metric_history(client: MlflowClient, run_id: str, keys) -> dict[str, list[tuple[int, float]]]:
    history = {}
    for key in keys:
        points = sorted(client.get_metric_history(run_id, key), key=lambda m: (m.step, m.timestamp))
        if points:
            history[key] = sorted({m.step: m.value for m in points}.items())
    return history


EVERY_ITERATION = "loss/G"  # a metric in every iteration's report, which marks the steps logged


class TrialRun:
    def __init__(self, target: TrackingTarget, run_name: str, run_id: str | None = None,
                 tags: dict | None = None):
        # keeps training through a tracking-server outage (trainables/mlflow_buffer.py)
        self.client = BufferedClient(target.tracking_uri, _trial_dir())
        reopened = run_id is not None
        if run_id is None:
            run = self.client.create_run(target.experiment_id, run_name=run_name,
                                         tags={"mlflow.parentRunId": target.parent_run_id, **(tags or {})})
            run_id = run.info.run_id
        else:
            # a restored trial: the run goes on (a failure the attempt that died recorded
            # becomes failure.recovered once this one finishes: see end)
            self.client.update_run(run_id, status=RunStatus.to_string(RunStatus.RUNNING))
            run = self.client.get_run(run_id)
        self.run_id = run_id
        self.run_name = run.info.run_name or run_name
        self.tracking_uri = target.tracking_uri
        self.monitor = system_metrics(target.tracking_uri, run_id, resumed=reopened)
        # A trial that restarts from its last checkpoint repeats the steps after it; their
        # metrics are in the run already (the same values: resume is exact), so skip them.
        # loss/G: logged at every iteration (fid only at evaluated ones)
        self.logged_until = max((m.step for m in self.client.get_metric_history(run_id, EVERY_ITERATION)), default=-1)
        self.logged_until = max([self.logged_until, *self.client.buffered_steps(run_id, EVERY_ITERATION)])  # kept

    def log_params(self, params: dict) -> None:
        items = [Param(key, str(value)) for key, value in sorted(params.items())]
        for start in range(0, len(items), 100):  # MLflow's batch limit is 100 params
            self.client.log_batch(self.run_id, params=items[start:start + 100])

    def log_dataset(self, source: str, fingerprint: str, segments: int) -> None:
        log_dataset(self.tracking_uri, self.run_id, source, fingerprint, segments)

    def tags(self) -> dict:
        return self.client.get_run(self.run_id).data.tags

    def tracking_state(self) -> dict:
        """For Tune's result, which reaches the driver whatever happens to the tracking server
        (and whatever the console shows of the trial's log): writes kept, seconds unreachable."""
        down = self.client.down_since
        return {TRACKING_KEPT: len(self.client.pending),
                TRACKING_DOWN_S: 0.0 if down is None else time.monotonic() - down}

    def log_metrics(self, metrics: dict, step: int, timestamp: float | None = None) -> None:
        """`timestamp`: the epoch second the values belong to; now if None."""
        if step <= self.logged_until:
            return
        now = int((time.time() if timestamp is None else timestamp) * 1000)
        self.client.log_batch(self.run_id, metrics=[Metric(k, float(v), now, step) for k, v in metrics.items()])

    def set_tags(self, tags: dict) -> None:
        for key, value in tags.items():
            self.client.set_tag(self.run_id, key, str(value))

    def metric_history(self, keys) -> dict[str, list[tuple[int, float]]]:
        """{key: [(step, value)]} by step; a step logged twice (iterations redone after a
        restore) keeps its last value. Keys never logged are left out."""
        return metric_history(self.client, self.run_id, keys)

    def log_artifact(self, local_path, artifact_path: str | None = None) -> None:
        self.client.log_artifact(self.run_id, str(local_path), artifact_path)

    def log_dict(self, data: dict, artifact_file: str) -> None:
        self.client.log_dict(self.run_id, data, artifact_file)

    def log_figure(self, figure, artifact_file: str) -> None:
        self.client.log_figure(self.run_id, figure, artifact_file)

    def stop_system_metrics(self) -> None:
        """The run's last system/* sample, published now (a sample at least: trainables/system_metrics.py)."""
        if self.monitor is not None:
            self.monitor.finish()
            self.monitor = None

    def end(self, status: str) -> None:
        self.stop_system_metrics()
        if status == "FINISHED":  # a failure an earlier attempt recorded, now recovered from
            failure = self.tags().get("failure")
            if failure is not None:
                self.client.set_tag(self.run_id, "failure.recovered", failure)
                self.client.delete_tag(self.run_id, "failure")
        self.client.set_terminated(self.run_id, status=status)
        self.client.drain(f"ending run {self.run_id}")  # what an outage kept goes in before the trial ends
