"""The set-up's choices, without installing anything: which torch for which machine, the
CPU index unreachable falling back within seconds, the lock constraining every install and
keying the stamp, and the quickstart's set-up never calling apt-get."""
import http.server
import os
import socket
import stat
import threading
import time

import pytest

from platform import bootstrap


def _never() -> bool:
    raise AssertionError("the CPU index must not be probed here")


def test_torch_plan_for_each_kind_of_machine():
    locked = "torch==2.13.0"
    assert bootstrap.torch_plan(True, "torch==2.9.1", True, locked, _never) is None  # a torch in .venv is kept
    env = bootstrap.torch_plan(False, "torch==2.9.1", True, locked, _never)
    assert (env.requirement, env.index_url) == ("torch==2.9.1", None)
    gpu = bootstrap.torch_plan(False, None, True, locked, _never)
    assert (gpu.requirement, gpu.index_url) == (locked, None) and "CUDA" in gpu.why
    cpu = bootstrap.torch_plan(False, None, False, locked, lambda: True)
    assert (cpu.requirement, cpu.index_url) == (locked, bootstrap.CPU_INDEX) and "CPU" in cpu.why
    offline = bootstrap.torch_plan(False, None, False, locked, lambda: False)
    assert (offline.requirement, offline.index_url) == (locked, None) and "could not be reached" in offline.why


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_cpu_index_probe_answers_within_seconds(tmp_path):
    started = time.monotonic()
    assert not bootstrap.cpu_index_reachable(f"http://127.0.0.1:{_closed_port()}/whl/cpu", timeout=2)
    assert time.monotonic() - started < 2 + 15  # its 2 s timeout, with room for a machine at load 10

    class Index(http.server.BaseHTTPRequestHandler):
        def do_HEAD(self):
            self.send_response(200 if self.path == "/whl/cpu/torch/" else 404)
            self.end_headers()

        def log_message(self, *args):
            pass
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Index)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        assert bootstrap.cpu_index_reachable(f"http://127.0.0.1:{server.server_port}/whl/cpu")
        assert not bootstrap.cpu_index_reachable(f"http://127.0.0.1:{server.server_port}/elsewhere")
    finally:
        server.shutdown()


def test_an_unreachable_cpu_index_falls_back_to_the_plain_requirement(monkeypatch):
    installs = []
    monkeypatch.setattr(bootstrap, "CPU_INDEX", f"http://127.0.0.1:{_closed_port()}/whl/cpu")
    monkeypatch.setattr(bootstrap, "_has_torch", lambda: False)
    monkeypatch.setattr(bootstrap, "_torch_build", lambda: "2.13.0+cpu (CPU build)")
    monkeypatch.setattr(bootstrap, "_pip", lambda *args: installs.append(args))
    monkeypatch.setattr(bootstrap.shutil, "which", lambda name: None)  # no nvidia-smi
    monkeypatch.delenv("PLATFORM_TORCH", raising=False)
    started = time.monotonic()
    bootstrap._install_torch()
    assert time.monotonic() - started < bootstrap.CPU_INDEX_TIMEOUT_S + 15  # bounded by the probe's timeout
    assert installs == [(bootstrap.locked_torch(),)]


def test_the_lock_pins_every_package_but_torchs_build(tmp_path, monkeypatch):
    text = bootstrap.lock_text([{"name": "Ray", "version": "2.60.0"}, {"name": "torch", "version": "2.13.0+cpu"},
                                {"name": "nvidia_cublas_cu12", "version": "12.8"},
                                {"name": "mlflow", "version": "3.17.2"}])
    pins = [line for line in text.splitlines() if not line.startswith("#")]
    assert pins == ["mlflow==3.17.2", "ray==2.60.0", "torch==2.13.0"]
    lock = tmp_path / "requirements.lock"
    lock.write_text(text)
    monkeypatch.setattr(bootstrap, "LOCK", lock)
    assert bootstrap.locked_torch() == "torch==2.13.0"
    args = bootstrap._constraints(tmp_path)
    assert args[0] == "-c" and open(args[1]).read().split() == ["mlflow==3.17.2", "ray==2.60.0"]
    # the repo's own lock pins what the project runs on
    repo = bootstrap.ROOT / "platform" / "requirements.lock"
    names = {line.split("==")[0] for line in repo.read_text().splitlines() if "==" in line}
    assert {"ray", "mlflow", "optuna", "torch", "pytest"} <= names


@pytest.fixture
def fake_apt(tmp_path, monkeypatch):
    """PATH holding only a fake apt-get (and no Chromium) that records each call; bootstrap
    pointed at an empty `.venv` in tmp_path, with its pip and torch steps recorded."""
    bin_dir, calls = tmp_path / "bin", tmp_path / "apt-calls"
    bin_dir.mkdir()
    apt = bin_dir / "apt-get"
    apt.write_text(f"#!/bin/sh\necho \"$@\" >> {calls}\nexit 0\n")
    apt.chmod(apt.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.setattr(os, "geteuid", lambda: 0)  # as root: the case where the old set-up ran apt-get
    venv = tmp_path / ".venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").touch()
    monkeypatch.setattr(bootstrap, "VENV", venv)
    installs = []  # pyproject's [tool.platform] no-deps call is counted in test_cluster_config
    monkeypatch.setattr(bootstrap, "_pip", lambda *args: None if args[0] == "--no-deps" else installs.append(args))
    monkeypatch.setattr(bootstrap, "_install_torch", lambda: installs.append(("torch",)))
    return calls, installs


def test_the_quickstart_set_up_never_calls_apt_get(fake_apt, tmp_path, monkeypatch):
    calls, installs = fake_apt
    assert bootstrap.main([]) == 0 and len(installs) == 2   # first run: torch, then the rest
    assert bootstrap.main([]) == 0 and len(installs) == 2   # second run: the stamp, nothing to do
    assert bootstrap.main(["--extras", "cluster"]) == 0
    assert not calls.exists()
    # asked for, the browser extra does reach apt-get (so the check above can fail)
    assert bootstrap.main(["--extras", "browser"]) == 0 and len(installs) == 4  # nothing new for pip
    assert calls.read_text().splitlines()[0] == "install -y -q chromium"


def test_the_stamp_follows_the_lock(fake_apt, tmp_path, monkeypatch):
    _, installs = fake_apt
    lock = tmp_path / "requirements.lock"
    lock.write_text("ray==2.60.0\n")
    monkeypatch.setattr(bootstrap, "LOCK", lock)
    assert bootstrap.main([]) == 0 and len(installs) == 2
    assert ("-c" in installs[1]) and any("ray[tune,data]" in r for r in installs[1])
    assert bootstrap.main([]) == 0 and len(installs) == 2
    lock.write_text("ray==2.61.0\n")                          # a refreshed lock: install again
    assert bootstrap.main([]) == 0 and len(installs) == 4


def test_the_set_up_puts_the_repo_on_the_venvs_path(fake_apt, tmp_path, monkeypatch):
    site_packages = tmp_path / ".venv" / "lib" / "python3.11" / "site-packages"
    site_packages.mkdir(parents=True)
    assert bootstrap.main([]) == 0
    written = site_packages / bootstrap.PATH_FILE
    assert written.read_text() == bootstrap.path_file_line(bootstrap.ROOT)
    assert written.read_text().startswith("import ") and written.read_text().count("\n") == 1  # one line site runs
    before = written.stat().st_mtime_ns
    assert bootstrap.main([]) == 0 and written.stat().st_mtime_ns == before  # the second run: nothing to do
