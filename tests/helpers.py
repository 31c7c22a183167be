"""Small builders the tests share: tiny spec files and subprocess runs from the repo root."""
import contextlib
import logging
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
# Tests of scheduling, tracking and faults evaluate in the cheapest embedding: the default,
# Inception, costs seconds per evaluation on a CPU and is tested on its own (test_embeddings.py)
CHEAP_EMBEDDING = "random-conv"


def write_spec(path: Path, **sections) -> Path:
    path.write_text(yaml.safe_dump(sections, sort_keys=False))
    return path


def run_module(module: str, *args: str, cwd: Path, timeout: float = 600,
               env: dict | None = None) -> subprocess.CompletedProcess:
    """`python -m module args` in `cwd`, with the repo root first on the path as a user's run has;
    `env` adds variables."""
    env = dict(os.environ, **(env or {}), PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", module, *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def kill_sweep_when(spec: Path, cwd: Path, ready: Callable[[], bool], timeout: float = 900,
                    poll: float = 0.2) -> None:
    """Start `python -m platform.sweep spec` in `cwd` and SIGKILL it, with the local Ray it
    started (its process group), as soon as `ready()` holds: a driver killed mid-sweep."""
    driver = subprocess.Popen([sys.executable, "-m", "platform.sweep", str(spec)], cwd=cwd,
                              env=dict(os.environ, PYTHONPATH=str(ROOT)), start_new_session=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + timeout
        while time.time() < deadline and driver.poll() is None and not ready():
            time.sleep(poll)
        assert driver.poll() is None, "the sweep ended before it could be killed"
    finally:
        os.killpg(driver.pid, signal.SIGKILL)
        driver.wait()


# Debian's chromium for the browser tests (python3 -m platform.bootstrap --extras browser installs it)
CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)
NO_CHROMIUM = ("no Chromium on PATH (python3 -m platform.bootstrap --extras browser installs Debian's as root "
               "with apt-get)")


def browser_test(test: Callable) -> Callable:
    """A test that drives headless Chromium: the slow tier, the `browser` marker, and skipped,
    saying why, where Chromium is missing."""
    for mark in (pytest.mark.skipif(CHROMIUM is None, reason=NO_CHROMIUM), pytest.mark.browser, pytest.mark.slow):
        test = mark(test)
    return test


def store_rows(db: Path, query: str) -> list[tuple]:
    """The rows of `query` on a running sweep's SQLite MLflow store: none before the store
    or its tables exist."""
    if not db.exists():
        return []
    with sqlite3.connect(db) as con:
        try:
            return con.execute(query).fetchall()
        except sqlite3.OperationalError:  # tables not made yet
            return []


TINY_DATASET = {
    "synthetic": {"tracks": 3, "seconds": 11.0, "seed": 7},  # 3 x 2 = 6 segments
    "mel": {"sample_rate": 16000, "n_mels": 64, "frames": 64},
}


# Fake credentials for a local S3 API; no metadata-service lookups for real ones.
S3_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
          "AWS_EC2_METADATA_DISABLED": "true"}


@contextlib.contextmanager
def s3_server(bucket: str = "datasets"):
    """A real S3 API on loopback (moto's server), with `bucket` made; yields the query that
    points a pyarrow s3:// URI at it: f"s3://{bucket}/prefix?{query}". Needs S3_ENV set."""
    from moto.server import ThreadedMotoServer
    import pyarrow.fs as pafs
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one log line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        query = f"endpoint_override={host}:{port}&scheme=http"
        fs = pafs.S3FileSystem(endpoint_override=f"{host}:{port}", scheme="http", allow_bucket_creation=True,
                               access_key=S3_ENV["AWS_ACCESS_KEY_ID"], secret_key=S3_ENV["AWS_SECRET_ACCESS_KEY"],
                               region=S3_ENV["AWS_DEFAULT_REGION"])
        fs.create_dir(bucket)
        yield query
    finally:
        server.stop()


def seed_datasets(built: Path, storage_root: Path) -> Path:
    """Copy the session's built datasets (conftest's `tiny_datasets`) under `storage_root`, where
    a sweep of TINY_DATASET finds its fingerprint and reuses it; returns `storage_root`."""
    shutil.copytree(built, Path(storage_root) / "datasets", dirs_exist_ok=True)
    return Path(storage_root)


def tiny_sweep(name: str, **sections) -> dict:
    """A search-space file small enough for a test: two random-search trials of a width-4
    DCGAN on TINY_DATASET, run to their end, drawing no sample grids and voicing no audio (a
    test of grids and audio gives its own `evaluation`; checkpoints are logged as ever).
    `sections` replace whole sections."""
    return {"name": name, "dataset": TINY_DATASET,
            "model": {"family": "dcgan1", "latent_dim": 8, "width": 4},
            "training": {"batch_size": 4, "iterations": 2, "steps_per_iteration": 3},
            # the vocoder's warm-up and each new best's grid and clips are most of a tiny trial
            "evaluation": {"samples": 16, "embedding": CHEAP_EMBEDDING, "grid_images": 0, "audio_clips": 0},
            "search": {"training.lr_g": {"loguniform": [1e-4, 1e-3]}},
            "tune": {"searcher": "random", "scheduler": {"name": "fifo"}, "num_samples": 2, "max_concurrent": 2},
            **sections}


def mount_problem() -> str | None:
    """Why a private tmpfs cannot be mounted here (None when it can): the full-disk tests need one."""
    if not shutil.which("unshare"):
        return "no unshare(1) on PATH"
    probe = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c",
                            "mount -t tmpfs -o size=1m tmpfs /mnt"], capture_output=True, text=True)
    return None if probe.returncode == 0 else f"mounting is not allowed here ({probe.stderr.strip()[:200]})"


@contextlib.contextmanager
def local_site(root: Path, handler: type):
    """A folder served on loopback by `handler` (a SimpleHTTPRequestHandler), in a thread: its
    address, e.g. http://127.0.0.1:PORT."""
    import functools
    import http.server
    import threading
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=30)


def signal_sweep_once_it_reports(tmp_path: Path, name: str, sig: int, training: dict,
                                 timeout: float = 900) -> tuple:
    """Start a tiny sweep `name` of these training settings in `tmp_path` (its own store and
    storage root there), send its driver `sig` once a trial has an fid, and wait for it to
    end: (its exit status, stdout, stderr, an MlflowClient on its store, its experiment)."""
    from mlflow import MlflowClient
    db = f"sqlite:///{tmp_path / 'mlflow.db'}"
    spec = write_spec(tmp_path / "space.yaml", **tiny_sweep(
        name, storage={"root": str(tmp_path / "runs")}, mlflow={"tracking_uri": db}, training=training))
    driver = subprocess.Popen([sys.executable, "-m", "platform.sweep", str(spec)], cwd=tmp_path,
                              env=dict(os.environ, PYTHONPATH=str(ROOT)), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    client, deadline = MlflowClient(tracking_uri=db), time.monotonic() + timeout
    try:
        while True:
            found = (tmp_path / "mlflow.db").exists() and client.get_experiment_by_name(name)
            runs = client.search_runs([found.experiment_id]) if found else []
            if any("fid" in r.data.metrics for r in runs):
                break
            if driver.poll() is not None or time.monotonic() > deadline:
                driver.kill()
                raise AssertionError(f"no trial reported before the sweep ended or {timeout} s passed: "
                                     + driver.communicate()[1][-3000:])
            time.sleep(0.5)
        driver.send_signal(sig)
        stdout, stderr = driver.communicate(timeout=900)
    finally:
        if driver.poll() is None:
            driver.kill()
    return driver.returncode, stdout, stderr, client, found


@contextlib.contextmanager
def recording_site(tmp_path: Path, handler_base: type):
    """An empty folder `site/` served by a subclass of `handler_base` whose `seen` list its
    log_message fills: (the folder, its address, seen)."""
    root = tmp_path / "site"
    root.mkdir()
    seen = []
    with local_site(root, type("Handler", (handler_base,), {"seen": seen})) as address:
        yield root, address, seen
