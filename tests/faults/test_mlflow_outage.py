"""Row 7 of the fault suite: the tracking server goes away for longer than the trials' MLflow
client retries (trainables/mlflow_buffer.py shortens them to seconds) while a sweep trains,
and comes back on the same port and store. The trials say so, keep training, and every step
of every run is logged exactly once in the end."""
import os
import subprocess
import sys
import time

import pytest
from mlflow import MlflowClient

from tests.faults.mlflow_server import MlflowServer
from tests.helpers import CHEAP_EMBEDDING, ROOT, seed_datasets, tiny_sweep, write_spec

ITERATIONS = 6
OUTAGE_S = 8  # the trials' client gives up after about 2 s; a kept write is retried every RETRY_S
RETRY_S = "2"


def _steps(client, experiment_id, key: str = "loss/D") -> dict[str, list[int]]:
    """The steps each trial run has `key` at (loss/D: every iteration; fid: the evaluated ones)."""
    runs = client.search_runs([experiment_id])
    return {r.info.run_id: [m.step for m in client.get_metric_history(r.info.run_id, key)] for r in runs
            if "mlflow.parentRunId" in r.data.tags}


@pytest.mark.slow
def test_an_outage_longer_than_the_clients_retries_loses_no_metric(tmp_path, tiny_datasets):
    seed_datasets(tiny_datasets, tmp_path / "runs")
    store = tmp_path / "server"
    store.mkdir()
    server = MlflowServer(store).start()
    spec = write_spec(tmp_path / "space.yaml", **tiny_sweep(
        "outage", storage={"root": str(tmp_path / "runs")}, mlflow={"tracking_uri": server.url},
        training={"batch_size": 4, "iterations": ITERATIONS, "steps_per_iteration": 2},
        evaluation={"samples": 16, "embedding": CHEAP_EMBEDDING, "every": 2}))
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_HTTP_")} | {"PLATFORM_MLFLOW_RETRY_S": RETRY_S}
    out = (tmp_path / "sweep.out").open("w")
    sweep = subprocess.Popen([sys.executable, "-m", "platform.sweep", str(spec)], cwd=tmp_path,
                             env=dict(env, PYTHONPATH=str(ROOT)), stdout=out, stderr=subprocess.STDOUT)
    try:
        client = MlflowClient(tracking_uri=server.url)
        deadline = time.monotonic() + 900
        while True:  # both trials have logged a step: stop the server under them
            experiment = client.get_experiment_by_name("outage")
            steps = _steps(client, experiment.experiment_id) if experiment else {}
            if len(steps) == 2 and all(steps.values()):
                break
            assert sweep.poll() is None and time.monotonic() < deadline, (tmp_path / "sweep.out").read_text()[-5000:]
            time.sleep(0.5)
        server.stop()
        stopped = time.monotonic()
        time.sleep(OUTAGE_S)
        server.start()
        down_for = time.monotonic() - stopped
        assert sweep.wait(timeout=1200) == 0, (tmp_path / "sweep.out").read_text()[-5000:]
    finally:
        if sweep.poll() is None:
            sweep.kill()
        server.stop()
    output = (tmp_path / "sweep.out").read_text()
    # the trials said so, on the driver's console (Ray forwards their logs), and went on
    assert f"the MLflow tracking server {server.url} is unreachable" in output, output[-5000:]
    assert f"the MLflow tracking server {server.url} answers again after" in output, output[-5000:]

    client = MlflowClient(tracking_uri=f"sqlite:///{store / 'mlflow.db'}")  # the server's store, read directly
    experiment = client.get_experiment_by_name("outage")
    steps = _steps(client, experiment.experiment_id)
    fids = _steps(client, experiment.experiment_id, "fid")
    assert len(steps) == 2, steps
    for run_id, logged in steps.items():
        assert sorted(logged) == [2 * (i + 1) for i in range(ITERATIONS)], (run_id, logged)  # each step once
        # evaluated every 2 of its 6 iterations (evaluation.every) and at its end, each once
        assert sorted(fids[run_id]) == [4, 8, 12], (run_id, fids[run_id])
    assert {r.info.status for r in client.search_runs([experiment.experiment_id])} == {"FINISHED"}
    print(f"\nserver down {down_for:.0f} s; steps per run: {[len(s) for s in steps.values()]}")
