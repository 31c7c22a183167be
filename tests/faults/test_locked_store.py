"""A SQLite store that another process holds longer than MLflow's busy timeout (the
`PRAGMA busy_timeout` MLflow sets on every session) is an outage like an unreachable server:
a trial's writes wait in its journal, its log says the store is locked, and everything is
logged once the lock goes. No trial fails for "database is locked"."""
import logging
import subprocess
import sys
import time

import pytest
from mlflow import MlflowClient
from mlflow.entities import Metric

from trainables import mlflow_buffer
from trainables.mlflow_buffer import BufferedClient

HOLD_S = 30  # longer than MLflow's busy timeout of 20 s, so a write gives up while it is held

HOLDER = """
import sqlite3, sys, time
store = sqlite3.connect(sys.argv[1], isolation_level=None)
store.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
store.execute("ROLLBACK")
"""


@pytest.mark.slow
def test_a_store_locked_past_the_busy_timeout_is_waited_out(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("PLATFORM_MLFLOW_RETRY_S", "1")
    db = tmp_path / "mlflow.db"
    uri = f"sqlite:///{db}"
    setup = MlflowClient(tracking_uri=uri)
    run_id = setup.create_run(setup.create_experiment("locked")).info.run_id
    client = BufferedClient(uri, tmp_path / "trial")

    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(db), str(HOLD_S)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        step = 0
        with caplog.at_level(logging.WARNING, logger=mlflow_buffer.__name__):
            while holder.poll() is None or step < 3:  # a trial goes on logging while the store is held
                client.log_batch(run_id, metrics=[Metric("loss/D", float(step), int(time.time() * 1000), step)])
                step += 1
                time.sleep(0.2)
            client.drain("ending the run")
    finally:
        holder.kill()
        holder.wait()
    assert any("locked by another process" in r.getMessage() for r in caplog.records), caplog.text
    assert sorted(m.step for m in setup.get_metric_history(run_id, "loss/D")) == list(range(step))
    assert not (tmp_path / "trial" / "mlflow-buffer").exists()  # all of it logged
