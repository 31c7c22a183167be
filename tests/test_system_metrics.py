"""A trial's run holds `system/*` metrics however short it was: one shorter than MLflow's
sampling interval (a trial ASHA stops at its first rung) gets the sample taken at its end."""
from mlflow import MlflowClient

from trainables.system_metrics import TrialSystemMetrics


def test_a_run_shorter_than_the_sampling_interval_still_gets_a_sample(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    run = client.create_run(client.create_experiment("short"))
    monitor = TrialSystemMetrics(run.info.run_id, sampling_interval=3600, tracking_uri=uri)
    monitor.start()
    monitor.finish()  # long before the first interval ends
    metrics = client.get_run(run.info.run_id).data.metrics
    assert any(key.startswith("system/cpu_utilization") for key in metrics), metrics.keys()
    assert any(key.startswith("system/system_memory_usage") for key in metrics), metrics.keys()
