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


def test_samples_taken_during_an_outage_are_logged_once_the_store_answers(tmp_path, monkeypatch):
    """Every store call fails as an unreachable server does for a while; the monitor goes on
    sampling, and at its end the run holds every sample, steps 0..n without a gap."""
    import threading
    import time

    import requests
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    run_id = client.create_run(client.create_experiment("outage")).info.run_id
    down, refused = threading.Event(), []

    def away(method):
        def call(self, *args, **kwargs):
            if down.is_set():
                refused.append(method)
                raise requests.exceptions.ConnectionError("Connection refused")
            return getattr(SqlAlchemyStore, f"_real_{method}")(self, *args, **kwargs)
        return call

    for method in ("log_batch", "get_run"):
        monkeypatch.setattr(SqlAlchemyStore, f"_real_{method}", getattr(SqlAlchemyStore, method), raising=False)
        monkeypatch.setattr(SqlAlchemyStore, method, away(method))
    monkeypatch.setenv("PLATFORM_MLFLOW_RETRY_S", "0.1")

    monitor = TrialSystemMetrics(run_id, sampling_interval=0.1, tracking_uri=uri, folder=tmp_path / "trial")
    down.set()
    monitor.start()
    deadline = time.monotonic() + 300
    while refused.count("log_batch") < 3:  # three samples published into the outage
        assert time.monotonic() < deadline, f"the monitor stopped sampling in the outage: {refused}"
        time.sleep(0.05)
    down.clear()
    monitor.finish()
    steps = sorted(m.step for m in client.get_metric_history(run_id, "system/cpu_utilization_percentage"))
    assert len(steps) >= 3 and steps == list(range(len(steps))), steps
    assert not (tmp_path / "trial" / "mlflow-buffer").exists()  # nothing left waiting
