"""MLflow's monitor of CPU, memory, disk, network and (with nvidia-ml-py, the `gpu` extra) GPU
use, logged to a trial's run as `system/*` through the outage buffer, with one sample
guaranteed.

MLflow's own monitor thread logs with a plain client and ends at the first store error (and
at the first failed check of the run's status), so a run lost its `system/*` for good when
the tracking server went away or its SQLite store was locked. Here samples go through a
`BufferedClient` of their own (trainables/mlflow_buffer.py; its journal beside the trial's,
in `system-metrics/`, since the trial's client is not shared across threads), so they wait
out an outage and are logged when the store answers, as the trial's own metrics are. The
thread stops only when told (`finish`), which the trainable does first thing when a trial
ends (trainables/train.py), before the end's slower work that Tune may cut short.

MLflow publishes a sample only after a full sampling interval, so a short run (a trial ASHA
stops at its first rung) could end with none: `finish()` publishes what was collected when
nothing was published yet, so every run shows its machine's load.
"""
import logging
import os
import time

from mlflow.entities import Metric
from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

from trainables.mlflow_buffer import BufferedClient

log = logging.getLogger(__name__)


class TrialSystemMetrics(SystemMetricsMonitor):
    """`system/*` of one run, written through its own outage buffer kept in `folder`."""
    published = False

    def __init__(self, run_id: str, tracking_uri: str, folder: str | os.PathLike | None = None, **kwargs):
        # before MLflow's __init__, which reads the run's last step through it when resuming
        self.client = BufferedClient(tracking_uri, folder)
        super().__init__(run_id, tracking_uri=tracking_uri, **kwargs)

    def _prefix(self) -> str:
        return self._metrics_prefix + (self.node_id + "/" if self.node_id else "")

    def _get_next_logging_step(self, run_id) -> int:
        """The step after the run's last sample (CPU use is in every one): a restored trial's
        samples go on after its earlier attempt's."""
        history = self.client.get_metric_history(run_id, self._prefix() + "cpu_utilization_percentage")
        return 1 + max((m.step for m in history), default=-1)

    def monitor(self) -> None:
        """Sample every `sampling_interval`, publish every `samples_before_logging` samples,
        until `finish`; a write the store refuses ends the thread, saying so."""
        try:
            while not self._shutdown_event.is_set():
                for _ in range(self.samples_before_logging):
                    self.collect_metrics()
                    if self._shutdown_event.wait(self.sampling_interval):
                        return  # finish publishes what was collected if nothing was
                self.publish_metrics(self.aggregate_metrics())
        except Exception as error:  # noqa: BLE001 - e.g. the run was deleted: training goes on without them
            log.warning("system metrics of run %s stopped (%s)", self._run_id, error)

    def publish_metrics(self, metrics: dict) -> None:
        now = int(time.time() * 1000)
        self.client.log_batch(self._run_id, metrics=[Metric(self._prefix() + key, float(value), now, self._logging_step)
                                                     for key, value in metrics.items()])
        self._logging_step += 1
        for monitor in self.monitors:
            monitor.clear_metrics()
        self.published = True

    def finish(self) -> None:
        """Stop sampling; a sample at least; everything kept during an outage logged."""
        if self._process is None:  # never started, or finished already
            return
        self._shutdown_event.set()
        self._process.join()
        self._process = None
        try:
            if not self.published:
                self.collect_metrics()  # a sample at the end, beside the one taken at the start
                self.publish_metrics(self.aggregate_metrics())
            self.client.drain(f"ending the system metrics of run {self._run_id}")
        except Exception as error:  # noqa: BLE001 - best effort: the run's own end matters more
            log.warning("the last system metrics of run %s were not logged (%s)", self._run_id, error)
