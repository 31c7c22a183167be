"""MLflow's monitor of CPU, memory, disk, network and (with nvidia-ml-py, the `gpu` extra) GPU
use, logged to a trial's run as `system/*`, with one sample guaranteed.

MLflow's monitor publishes a sample only after a full sampling interval, so a run shorter than
one interval (a trial ASHA stops at its first rung, on a quiet machine) ended with none. Here
`finish()` publishes what was collected when nothing was published yet: every run shows its
machine's load at least once.
"""
from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor


class TrialSystemMetrics(SystemMetricsMonitor):
    published = False

    def publish_metrics(self, metrics):
        super().publish_metrics(metrics)
        self.published = True

    def finish(self):
        if self._process is None:  # never started
            return
        self._shutdown_event.set()
        self._process.join()
        if not self.published:
            self.collect_metrics()  # a sample at the end, beside the one taken at the start
            self.publish_metrics(self.aggregate_metrics())
        super().finish()  # flushes the batch to the run
