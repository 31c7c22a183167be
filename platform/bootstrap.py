"""Set up `.venv` in the repo root with everything the project needs; instant when done.

    python3 -m platform.bootstrap            # then .venv/bin/python -m ...
    python3 -m platform.bootstrap --extras cluster   # also pyproject's `cluster` extra

Standard library only: it runs under whatever Python 3.11+ the machine has.

Torch is installed first and on its own, because an unconstrained `torch` from PyPI is
a multi-GB CUDA build:
- a torch already importable in `.venv` is kept (a GPU user installs the build they
  want first, see the README);
- otherwise PLATFORM_TORCH, if set, is the requirement (e.g. "torch" or "torch==2.9.1");
- otherwise a machine with `nvidia-smi` gets plain `torch` (PyPI's CUDA build) and any
  other machine gets CPU_TORCH, a CPU wheel on this kind of machine.
Then pyproject.toml's dependencies, its `test` extra and any extras named with
`--extras` (comma-separated; `cluster` is what `ray up cluster.yaml` needs on a laptop and
on the cluster's nodes), then `[tool.platform] no-deps` with `pip install --no-deps`
(musicnn, whose metadata pins an old numpy and TensorFlow its shipped weights do not need). A stamp in `.venv` keyed by pyproject.toml and the Python version,
and naming the extras installed, makes the second run a no-op.

Last, best effort, Debian's `chromium` for the browser test (tests/test_browser.py), when
no Chromium is on PATH and this is a root shell with apt-get (CI's container): that test
opens the MLflow UI headless. Anywhere else the test is skipped and says why; a failed
install is remembered in `.venv` so later runs stay instant.
"""
import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tomllib
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"
CPU_TORCH = "torch==2.13.0"
CHROMIUM = ("chromium", "chromium-browser", "google-chrome")


def _venv_python() -> Path:
    return VENV / "bin" / "python"


def _optional() -> dict[str, list[str]]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]


def _requirements(extras: frozenset[str] = frozenset()) -> list[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = list(project["dependencies"]) + list(project["optional-dependencies"]["test"])
    for extra in sorted(extras):
        reqs += project["optional-dependencies"][extra]
    # torch is installed on its own first (see module docstring)
    return [r for r in reqs if not r.replace(" ", "").startswith("torch")]


def _no_deps() -> list[str]:
    """pyproject's [tool.platform] no-deps: wheels installed without their declared dependencies."""
    return tomllib.loads((ROOT / "pyproject.toml").read_text()).get("tool", {}).get("platform", {}).get("no-deps", [])


def _stamp(extras: frozenset[str] = frozenset()) -> Path:
    """`.bootstrap-KEY` for the base install, `.bootstrap-KEY+cluster+...` with extras."""
    key = hashlib.sha256((ROOT / "pyproject.toml").read_bytes() + sys.version.encode())
    return VENV / "+".join([f".bootstrap-{key.hexdigest()[:16]}", *sorted(extras)])


def _installed_extras() -> frozenset[str] | None:
    """The extras the current stamp names, or None when no stamp matches this pyproject.toml."""
    base = _stamp().name
    for stamp in VENV.glob(base + "*"):
        name, *extras = stamp.name.split("+")
        if name == base:
            return frozenset(extras)
    return None


def _parse_extras(argv: list[str] | None) -> frozenset[str]:
    parser = argparse.ArgumentParser(prog="python3 -m platform.bootstrap", description=__doc__.split("\n\n")[0])
    parser.add_argument("--extras", default="", metavar="NAME[,NAME]",
                        help="optional dependency groups of pyproject.toml to install too, e.g. cluster")
    extras = frozenset(e.strip() for e in parser.parse_args(argv).extras.split(",") if e.strip())
    unknown = sorted(extras - set(_optional()))
    if unknown:
        parser.error(f"--extras: no extra {', '.join(map(repr, unknown))} in pyproject.toml "
                     f"(expected one of: {', '.join(sorted(_optional()))}).")
    return extras


def _pip(*args: str) -> None:
    subprocess.run([str(_venv_python()), "-m", "pip", "install", "--quiet",
                    "--disable-pip-version-check", *args], check=True)


def _torch_requirement() -> str | None:
    has_torch = subprocess.run([str(_venv_python()), "-c", "import torch"],
                               capture_output=True).returncode == 0
    if has_torch:
        return None
    if os.environ.get("PLATFORM_TORCH"):
        return os.environ["PLATFORM_TORCH"]
    return "torch" if shutil.which("nvidia-smi") else CPU_TORCH


def _chromium() -> None:
    failed = VENV / ".chromium-install-failed"
    if any(shutil.which(name) for name in CHROMIUM) or failed.exists():
        return
    if not (shutil.which("apt-get") and hasattr(os, "geteuid") and os.geteuid() == 0):
        return
    print("Installing Debian's chromium for the browser test (apt-get, once) ...", file=sys.stderr)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    install = ["apt-get", "install", "-y", "-q", "chromium"]
    quiet = dict(env=env, stdout=subprocess.DEVNULL)
    if subprocess.run(install, **quiet).returncode != 0:  # stale package lists: update, then once more
        subprocess.run(["apt-get", "update", "-q"], **quiet)
        if subprocess.run(install, **quiet).returncode != 0:
            failed.touch()
            print("platform.bootstrap: chromium could not be installed; the browser test will be skipped.",
                  file=sys.stderr)
            return
    print("chromium installed.", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    if sys.version_info < (3, 11):
        print(f"platform.bootstrap: Python 3.11 or newer is needed, this is {sys.version.split()[0]}.",
              file=sys.stderr)
        return 2
    extras = _parse_extras(argv)
    installed = _installed_extras()
    if installed is not None and extras <= installed:
        _chromium()
        return 0
    if not _venv_python().exists():
        print(f"Creating {VENV} ...", file=sys.stderr)
        venv.EnvBuilder(with_pip=True).create(VENV)
    print("Installing dependencies into .venv (first run only, about a minute) ...", file=sys.stderr)
    torch_req = _torch_requirement()
    if torch_req:
        _pip(torch_req)
    _pip(*_requirements(extras))
    if _no_deps():
        _pip("--no-deps", *_no_deps())
    for old in VENV.glob(".bootstrap-*"):
        old.unlink()
    _stamp(extras | (installed or frozenset())).touch()
    print("Dependencies ready in .venv.", file=sys.stderr)
    _chromium()
    return 0


if __name__ == "__main__":
    sys.exit(main())
