"""Row 8 and 9 of the fault suite: the cluster's MLflow server asks for the password that
platform.mlflow_auth made (cluster.yaml's head runs the same module), and a server started
from another directory keeps artifacts in its absolute --artifacts-destination.
(tests/test_cluster_config.py checks cluster.yaml itself: no 0.0.0.0, NFS to the VPC only.)"""
import base64
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from platform import mlflow_auth
from tests.faults.mlflow_server import MlflowServer


def _read_env(path) -> dict[str, str]:
    """A KEY=VALUE file as mlflow_auth writes them (cluster.yaml's `set -a; . FILE` reads the same)."""
    return dict(line.split("=", 1) for line in Path(path).read_text().splitlines() if "=" in line)


def _status(url: str, headers: dict | None = None) -> int:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        return urllib.request.urlopen(request, timeout=120).status
    except urllib.error.HTTPError as error:
        return error.code


@pytest.mark.slow
def test_basic_auth_server_refuses_strangers_and_logs_for_the_cluster(tmp_path, monkeypatch):
    auth = tmp_path / "auth"
    assert mlflow_auth.write(auth) and not mlflow_auth.write(auth)  # a second set-up keeps the password
    assert {p.name: p.stat().st_mode & 0o777 for p in auth.iterdir()} == dict.fromkeys(mlflow_auth.FILES, 0o600)
    client_env = _read_env(auth / "client.env")
    store, elsewhere = tmp_path / "store", tmp_path / "elsewhere"
    store.mkdir(), elsewhere.mkdir()
    server = MlflowServer(store, "--app-name", "basic-auth", cwd=elsewhere,
                          env=_read_env(auth / "server.env")).start()
    try:
        search = f"{server.url}/api/2.0/mlflow/experiments/search?max_results=1"
        assert _status(f"{server.url}/health") == 200  # the preflight's probe needs no password
        assert _status(search) == 401
        wrong = base64.b64encode(b"platform:guess").decode()
        assert _status(search, {"Authorization": f"Basic {wrong}"}) == 401
        from platform.driver import cluster
        with pytest.raises(cluster.ClusterError, match="refused this driver's credentials; set MLFLOW_TRACKING_USERNAME"):
            cluster.check_login(server.url)  # the preflight, before the parent run is created

        # what a trial does, with the variables every `ray start` exports from client.env
        for key, value in client_env.items():
            monkeypatch.setenv(key, value)
        from mlflow import MlflowClient

        from trainables.mlflow_run import TrackingTarget, TrialRun
        cluster.check_login(server.url)
        client = MlflowClient(tracking_uri=server.url)
        experiment = client.create_experiment("exposure")
        parent = client.create_run(experiment).info.run_id
        run = TrialRun(TrackingTarget(server.url, experiment, parent), run_name="t")
        run.log_metrics({"fid": 1.5}, step=0)
        (tmp_path / "note.txt").write_text("x")
        run.log_artifact(tmp_path / "note.txt")
        assert [m.value for m in client.get_metric_history(run.run_id, "fid")] == [1.5]
        run.end("FINISHED")  # its system-metrics thread too, or it writes to the stopped server for good
    finally:
        server.stop()
    # row 9: the artifact is in the absolute folder next to the store, not ./mlartifacts of the cwd
    assert [p.name for p in server.artifacts.rglob("note.txt")] == ["note.txt"]
    assert not (elsewhere / "mlartifacts").exists()


def _server_commands(text: str) -> list[str]:
    import re
    return [line for line in text.splitlines() if re.search(r"bin/mlflow (server|ui)\b", line)]


def test_every_command_that_starts_a_server_gives_an_absolute_artifact_folder():
    import re

    from platform.driver import tracking
    from tests.helpers import ROOT
    documents = [ROOT / "cluster.yaml", ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    commands = [(path.name, line) for path in documents for line in _server_commands(path.read_text())]
    assert len(commands) >= 3, commands  # cluster.yaml's service, the README's and docs/tracking.md's UI
    for name, line in commands:
        folder = re.search(r"--artifacts-destination (\S+)", line)
        assert folder and folder.group(1).startswith(("/", "$PWD/")), (name, line)
    # the tests' own servers
    starters = [p for p in (ROOT / "tests").rglob("*.py") if re.search(r'(mlflow"\)|MLFLOW), "server"', p.read_text())]
    # test_two_node.py's and tests/faults/mlflow_server.py's (which test_tracking_e2e.py uses)
    assert len(starters) >= 2 and all("--artifacts-destination" in p.read_text() for p in starters), starters
    # what a sweep prints for its local store
    printed = tracking.ui_command("sqlite:////data/sweeps/mlflow.db")
    assert printed.endswith("--backend-store-uri sqlite:////data/sweeps/mlflow.db "
                            "--artifacts-destination /data/sweeps/mlruns --workers 1")
