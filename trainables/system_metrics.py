"""MLflow's monitor of CPU, memory, disk, network and (with nvidia-ml-py, the `gpu` extra) GPU
use, logged to a trial's run as `system/*`, with one sample guaranteed.

MLflow's monitor publishes a sample only after a full sampling interval, and its thread ends
quietly at the first store error; so a short run (a trial ASHA stops at its first rung) could
end with none. Here `finish()` publishes what was collected when nothing was published yet,
and the trainable finishes the monitor first thing when the trial ends (trainables/train.py),
before the end's slower work that Tune may cut short: every run shows its machine's load.
"""
import logging

from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

log = logging.getLogger(__name__)


class TrialSystemMetrics(SystemMetricsMonitor):
    published = False

    def publish_metrics(self, metrics):
        super().publish_metrics(metrics)
        self.published = True

    def finish(self):
        if self._process is None:  # never started, or finished already
            return
        self._shutdown_event.set()
        self._process.join()
        if not self.published:
            try:
                self.collect_metrics()  # a sample at the end, beside the one taken at the start
                self.publish_metrics(self.aggregate_metrics())
            except Exception as error:  # noqa: BLE001 - best effort, as MLflow's own loop is
                log.warning("no system metrics for run %s (%s)", self._run_id, error)
        super().finish()  # flushes the batch to the run
