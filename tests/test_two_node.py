"""A real two-node Ray cluster on this machine, as `ray up cluster.yaml` makes one on AWS.

Two `ray start --block` processes addressed as 127.0.0.1 (own ports, own temp dirs, token
auth as in cluster.yaml; Ray itself turns a loopback address into the machine's own IP, so
the nodes register under that), an MLflow server on 127.0.0.1 with proxied artifacts, and a shared storage
directory (one machine: both nodes see it). A tiny sweep, run as a user runs it with
`--address`, pins its trials to the second node with a custom resource; the trials' MLflow
runs carry that node's id, their checkpoints land in the shared directory. The bad inputs
(no cluster, no MLflow server, a local MLflow store, storage only one node sees) end with
one sentence and exit status 2 before any trial starts. Each node keeps its own verified
copy of the mels (data/node_cache.py), written once, in its own cache.

Storage that is not shared: the second node runs in a private mount namespace where a
tmpfs hides one directory (`unshare -m`, root only); elsewhere that case is skipped here and
covered by tests/test_cluster_config.py with a stubbed probe.

Nothing is left running: every process these nodes and the MLflow server start inherits a
marker (this module's token path) in its environment, and the finalizer kills exactly the
processes that carry it, after their process groups.
"""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.helpers import CHEAP_EMBEDDING, ROOT, S3_ENV, TINY_DATASET, s3_server, seed_datasets, tiny_sweep, write_spec

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _marked_pids(marker: str) -> list[int]:
    """Processes whose environment holds `marker`: ours, and only ours."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if marker.encode() in (entry / "environ").read_bytes():
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids


def _stop(procs: list[subprocess.Popen], marker: str) -> None:
    for proc in procs:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.time() + 30
    for proc in procs:
        try:
            proc.wait(timeout=max(0.1, deadline - time.time()))
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    for _ in range(3):
        left = _marked_pids(marker)
        if not left:
            return
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.5)


def _can_unshare() -> bool:
    return bool(shutil.which("unshare")) and subprocess.run(
        ["unshare", "-m", "--propagation", "private", "true"], capture_output=True).returncode == 0


class TwoNodes:
    """Head (1 CPU, custom resource head) and a second node (1 CPU, custom resource worker2) on 127.0.0.1."""

    def __init__(self, base: Path):
        self.base = base
        self.token = base / "ray-auth-token"
        self.token.write_text(os.urandom(32).hex())
        self.token.chmod(0o600)
        self.shared = base / "shared"          # both nodes see it
        self.node_local = base / "node_local"  # the second node sees an empty tmpfs here
        self.artifacts = base / "mlartifacts"
        for d in (self.shared, self.node_local, self.artifacts):
            d.mkdir()
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "MLFLOW_", "PLATFORM_"))}
        self.env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(self.token), RAY_USAGE_STATS_ENABLED="0",
                        PYTHONPATH=str(ROOT), **S3_ENV,
                        # dataset copies from storage.datasets: on the second node, in its own tmpfs
                        PLATFORM_CACHE=str(self.node_local / "cache"))
        self.port = _free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.mlflow_port = _free_port()
        self.tracking_uri = f"http://127.0.0.1:{self.mlflow_port}"
        self.procs: list[subprocess.Popen] = []
        self.masked = _can_unshare()

    def node_cache(self, name: str) -> Path:
        """The node's own cache of mel arrays ($PLATFORM_NODE_CACHE), one folder per node here
        (on a real cluster each node's temp dir), where the test can look at both."""
        return self.base / f"node-cache-{name}"

    def _ray_start(self, name: str, *args: str, cwd: Path, mask: Path | None = None) -> None:
        temp = self.base / name
        temp.mkdir()
        cmd = [str(BIN / "ray"), "start", "--block", "--num-cpus", "1", "--temp-dir", str(temp),
               "--disable-usage-stats",
               "--object-store-memory", str(200 * 1024 ** 2),
               "--dashboard-agent-listen-port", str(_free_port()),
               "--dashboard-agent-grpc-port", str(_free_port()),
               "--metrics-export-port", str(_free_port()),
               "--runtime-env-agent-port", str(_free_port()), *args]
        if mask is not None:
            # this node, and everything it starts, sees an empty tmpfs at `mask`
            cmd = ["unshare", "-m", "--propagation", "private", "sh", "-c",
                   f'mount -t tmpfs tmpfs "{mask}" && exec "$@"', "sh", *cmd]
        log = open(self.base / f"{name}.log", "w")
        env = {**self.env, "PLATFORM_NODE_CACHE": str(self.node_cache(name))}  # its workers inherit it
        self.procs.append(subprocess.Popen(cmd, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT,
                                           start_new_session=True))

    def start(self) -> None:
        mlflow_log = open(self.base / "mlflow.log", "w")
        self.procs.append(subprocess.Popen(
            [str(BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(self.mlflow_port), "--workers", "1",
             "--backend-store-uri", f"sqlite:///{self.base / 'mlflow.db'}",
             "--artifacts-destination", str(self.artifacts)],
            cwd=self.base, env=self.env, stdout=mlflow_log, stderr=subprocess.STDOUT, start_new_session=True))
        self._ray_start("head", "--head", "--port", str(self.port), "--include-dashboard", "false",
                        "--resources", json.dumps({"head": 1}), cwd=self.base)
        time.sleep(2)  # the GCS first, or the second node retries for a while
        other_cwd = self.base / "node2-cwd"
        other_cwd.mkdir()
        self._ray_start("node2", "--address", self.address, "--resources", json.dumps({"worker2": 1}),
                        cwd=other_cwd, mask=self.node_local if self.masked else None)
        self.nodes = self._wait_for_nodes()
        self._wait_for_mlflow()

    def _wait_for_nodes(self, timeout: float = 600) -> list[dict]:
        probe = ("import json, ray; ray.init(address=%r, logging_level='ERROR', log_to_driver=False); "
                 "print(json.dumps([{'id': n['NodeID'], 'resources': n['Resources']} "
                 "for n in ray.nodes() if n['Alive']]))" % self.address)
        deadline = time.time() + timeout
        while time.time() < deadline:
            out = subprocess.run([sys.executable, "-c", probe], env=self.env, cwd=self.base,
                                 capture_output=True, text=True, timeout=300)
            if out.returncode == 0:
                nodes = json.loads(out.stdout.strip().splitlines()[-1])
                if len(nodes) == 2:
                    return nodes
            time.sleep(1)
        raise AssertionError("the two Ray nodes did not come up: " + self.logs())

    def _wait_for_mlflow(self, timeout: float = 600) -> None:
        import urllib.request
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(f"{self.tracking_uri}/health", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.5)
        raise AssertionError("the MLflow server did not answer: " + self.logs())

    @property
    def second_node_id(self) -> str:
        return next(n["id"] for n in self.nodes if "worker2" in n["resources"])

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text()[-2000:]}" for p in sorted(self.base.glob("*.log")))

    def stop(self) -> None:
        _stop(self.procs, str(self.token))

    def sweep(self, spec: Path, address: str | None = None) -> subprocess.CompletedProcess:
        # -v: Ray's own INFO lines ("Pushing file package ...") are what the tests read
        return subprocess.run([sys.executable, "-m", "platform.sweep", str(spec), "-v",
                               "--address", address or self.address],
                              cwd=self.base, env=self.env, capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def two_nodes():
    # short path: Ray's Unix sockets live under the temp dir (108-byte limit)
    base = Path(tempfile.mkdtemp(prefix="tn-", dir="/tmp"))
    cluster = TwoNodes(base)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
        leftover = _marked_pids(str(cluster.token))
        shutil.rmtree(base, ignore_errors=True)
        assert not leftover, f"processes left running: {leftover}"


# for the tests that read where trials ran and what they read, not what their runs hold: no
# sample grids or audio (the first test's trials make them, through the server)
NO_SAMPLES = {"samples": 16, "embedding": CHEAP_EMBEDDING, "grid_images": 0, "audio_clips": 0}


def _spec(path: Path, cluster: TwoNodes, **overrides) -> Path:
    sections = tiny_sweep(
        "two_node",
        training={"batch_size": 4, "iterations": 1, "steps_per_iteration": 2},
        tune={"searcher": "random", "scheduler": {"name": "fifo"}, "num_samples": 2, "max_concurrent": 2,
              "resources_per_trial": {"cpu": 1, "custom": {"worker2": 1}}},
        mlflow={"tracking_uri": cluster.tracking_uri},
        storage={"root": str(cluster.shared)},
    )
    sections.update(overrides)
    return write_spec(path, **sections)


def test_trials_run_on_the_second_node_with_shared_storage(two_nodes):
    spec = _spec(two_nodes.base / "two_node.yaml", two_nodes)
    result = two_nodes.sweep(spec)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:] + two_nodes.logs()
    # the code went to the nodes as a runtime_env package: the repo without data, stores, .venv
    shipped = re.findall(r"Pushing file package '[^']+' \(([\d.]+)MiB\)", result.stdout + result.stderr)
    assert shipped and float(shipped[0]) < 5, (result.stdout + result.stderr)[-3000:]

    from mlflow import MlflowClient
    client = MlflowClient(tracking_uri=two_nodes.tracking_uri)
    experiment = client.get_experiment_by_name("two_node")
    runs = client.search_runs([experiment.experiment_id])
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(children) == 2
    for child in children:
        assert child.info.status == "FINISHED"
        assert child.data.tags["ray.node_id"] == two_nodes.second_node_id
        assert client.get_metric_history(child.info.run_id, "fid")
    # artifacts went through the server into its destination, not into a worker's directory
    assert any(p.is_file() for p in two_nodes.artifacts.rglob("*"))
    assert not (two_nodes.base / "node2-cwd" / "mlartifacts").exists()

    # Tune's results and checkpoints in the shared directory, one set per trial
    trials = [p for p in (two_nodes.shared / "tune").glob("two_node-*/*") if p.is_dir()]
    assert len(trials) == 2, sorted(map(str, trials))
    for trial in trials:
        assert list(trial.glob("checkpoint_*")), f"no checkpoint in {trial}"
    assert list((two_nodes.shared / "datasets").glob("*/manifest.json"))


def test_each_node_makes_its_own_copy_of_the_mels_once(two_nodes):
    """A trial on each node (a sweep pinned to each by its custom resource: two unpinned trials
    at once land on one node whenever the first ends before the second starts, as on a busy
    machine). Each node writes its own verified copy of the mels in its own cache; the same
    sweeps again read those copies (not written again); shared storage holds the Parquet and
    the manifest only."""
    copies = {"head": two_nodes.node_cache("head") / "mels", "worker2": two_nodes.node_cache("node2") / "mels"}
    node_ids = {label: next(n["id"] for n in two_nodes.nodes if label in n["resources"]) for label in copies}
    from mlflow import MlflowClient
    client = MlflowClient(tracking_uri=two_nodes.tracking_uri)
    written = {}
    for again in ("", "_again"):
        for label, copy in copies.items():
            name = f"on_{label}{again}"
            tune = {"searcher": "random", "scheduler": {"name": "fifo"}, "num_samples": 1,
                    "resources_per_trial": {"cpu": 1, "custom": {label: 1}}}
            spec = _spec(two_nodes.base / f"{name}.yaml", two_nodes, name=name, tune=tune, evaluation=NO_SAMPLES)
            result = two_nodes.sweep(spec)
            assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:] + two_nodes.logs()
            runs = client.search_runs([client.get_experiment_by_name(name).experiment_id])
            nodes = {r.data.tags["ray.node_id"] for r in runs if "mlflow.parentRunId" in r.data.tags}
            assert nodes == {node_ids[label]}, f"the trial ran on the {label} node"
            arrays = list(copy.glob("*/mels-float16.npy"))
            assert len(arrays) == 1 and not list(copy.glob("*/.*.tmp")), sorted(copy.rglob("*"))
            record = json.loads(arrays[0].with_suffix(".json").read_text())
            manifest = next((two_nodes.shared / "datasets").glob(f"{record['fingerprint']}/manifest.json"))
            assert record["rows"] == json.loads(manifest.read_text())["counts"]["segments"]
            stat = arrays[0].stat()
            written.setdefault(copy, (stat.st_ino, stat.st_mtime_ns))
            assert written[copy] == (stat.st_ino, stat.st_mtime_ns), f"{arrays[0]} was written again"
    assert not list(two_nodes.shared.rglob("*.npy")), "no mel array on shared storage"


def _assert_refused(result: subprocess.CompletedProcess, *phrases: str) -> None:
    assert result.returncode == 2, result.stdout[-2000:] + result.stderr[-3000:]
    error = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(error) == 1, result.stderr[-3000:]
    for phrase in phrases:
        assert phrase in error[0], error[0]
    assert "Trial" not in result.stdout


def test_no_cluster_at_the_address(tmp_path):
    spec = write_spec(tmp_path / "s.yaml", name="nowhere", dataset=TINY_DATASET)
    closed = _free_port()
    start = time.time()
    result = subprocess.run([sys.executable, "-m", "platform.sweep", str(spec), "--address", f"127.0.0.1:{closed}"],
                            cwd=tmp_path, env=dict(os.environ, PYTHONPATH=str(ROOT)),
                            capture_output=True, text=True, timeout=900)
    _assert_refused(result, f"no Ray cluster could be reached at '127.0.0.1:{closed}'")
    assert time.time() - start < 30  # the fast check, not ray.init's minutes of retries


def test_mlflow_server_unreachable(two_nodes):
    closed = f"http://127.0.0.1:{_free_port()}"
    spec = _spec(two_nodes.base / "no_mlflow.yaml", two_nodes, name="no_mlflow", mlflow={"tracking_uri": closed})
    _assert_refused(two_nodes.sweep(spec), f"the MLflow server {closed} is not reachable from the driver")
    assert not list((two_nodes.shared / "tune").glob("no_mlflow-*"))


def test_local_mlflow_store_on_a_cluster(two_nodes):
    spec = _spec(two_nodes.base / "local_store.yaml", two_nodes, name="local_store",
                 mlflow={"tracking_uri": f"sqlite:///{two_nodes.base / 'local.db'}"})
    _assert_refused(two_nodes.sweep(spec), "is a store on this machine that trials on other nodes cannot write to")
    assert not (two_nodes.base / "local.db").exists()


def test_datasets_from_an_object_store_need_no_shared_root(two_nodes, monkeypatch, tiny_datasets):
    """storage.root only the driver sees, the dataset published to S3 (moto on loopback) and
    copied by the second node's trials; Tune's storage still shared. The driver reuses the
    session's build (test_trials_run_on_the_second_node_with_shared_storage builds one on the cluster)."""
    for key, value in S3_ENV.items():
        monkeypatch.setenv(key, value)
    seed_datasets(tiny_datasets, two_nodes.node_local)
    with s3_server("two-node") as query:
        store = f"s3://two-node/datasets?{query}"
        spec = _spec(two_nodes.base / "s3.yaml", two_nodes, name="s3_data", evaluation=NO_SAMPLES,
                     storage={"root": str(two_nodes.node_local), "tune": str(two_nodes.shared / "tune"),
                              "datasets": store})
        result = two_nodes.sweep(spec)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:] + two_nodes.logs()
        assert "published at s3://two-node/datasets/" in result.stdout
        import pyarrow.fs as pafs
        fs, path = pafs.FileSystem.from_uri(store)
        names = [i.path for i in fs.get_file_info(pafs.FileSelector(path, recursive=True))]
        assert any(n.endswith("/manifest.json") for n in names) and any("/fid_stats/" in n for n in names)

    from mlflow import MlflowClient
    client = MlflowClient(tracking_uri=two_nodes.tracking_uri)
    runs = client.search_runs([client.get_experiment_by_name("s3_data").experiment_id])
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(children) == 2
    for child in children:
        assert child.info.status == "FINISHED" and child.data.tags["ray.node_id"] == two_nodes.second_node_id
        assert client.get_metric_history(child.info.run_id, "fid")


def test_storage_not_shared(two_nodes):
    if not two_nodes.masked:
        pytest.skip("needs `unshare -m` (root) to hide a directory from one node; "
                    "tests/test_cluster_config.py covers the check with a stubbed probe")
    spec = _spec(two_nodes.base / "unshared.yaml", two_nodes, name="unshared",
                 storage={"root": str(two_nodes.node_local)})
    _assert_refused(two_nodes.sweep(spec), f"storage.root {two_nodes.node_local} is not shared with node")
    assert not list(two_nodes.node_local.glob(".shared-check-*"))  # the marker is cleaned up
    assert not (two_nodes.node_local / "tune").exists()
