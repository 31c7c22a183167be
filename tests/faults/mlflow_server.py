"""A real `mlflow server` on a free loopback port, for the fault tests: started, stopped
and started again on the same store, port and absolute artifact folder."""
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

MLFLOW = str(Path(sys.executable).parent / "mlflow")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MlflowServer:
    def __init__(self, store: Path, *args: str, cwd: Path | None = None, env: dict | None = None):
        self.store, self.args, self.cwd = store, args, cwd or store
        self.env = dict(os.environ, **(env or {}))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.artifacts = store / "mlartifacts"
        self.log = store / "mlflow-server.log"
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 600) -> "MlflowServer":
        with self.log.open("a") as out:
            self.process = subprocess.Popen(
                [MLFLOW, "server", *self.args, "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1",
                 "--backend-store-uri", f"sqlite:///{self.store / 'mlflow.db'}",
                 "--artifacts-destination", str(self.artifacts)],
                cwd=self.cwd, env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while True:
            try:
                if urllib.request.urlopen(f"{self.url}/health", timeout=2).read() == b"OK":
                    return self
            except OSError:
                pass
            assert self.process.poll() is None and time.monotonic() < deadline, self.log.read_text()[-3000:]
            time.sleep(0.3)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=120)
        self.process = None
