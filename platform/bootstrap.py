"""Set up `.venv` in the repo root with the tested versions of everything; instant when done.

    python3 -m platform.bootstrap                    # then .venv/bin/python -m ...
    python3 -m platform.bootstrap --extras cluster   # also pyproject's `cluster` extra
    python3 -m platform.bootstrap --extras browser   # also Debian's chromium (CI, as root)
    python3 -m platform.bootstrap --refresh-lock     # write LOCK from the current .venv

Standard library only: it runs under whatever Python 3.11+ the machine has. It changes
nothing outside `.venv` unless asked to (`--extras browser`).

The tested versions: `platform/requirements.lock` holds the exact version of every package
the suite passed with, and every install here is constrained by it (`pip -c`). After
changing a dependency (or to move to newer releases), install into `.venv`, run the suite,
then `python3 -m platform.bootstrap --refresh-lock` and commit the lock.

Torch is installed first and on its own, because its build differs by machine (an
unconstrained `torch` from PyPI is a multi-GB CUDA build); `torch_plan` decides:
- a torch already importable in `.venv` is kept (a GPU user installs the build they
  want first, see the README);
- otherwise PLATFORM_TORCH, if set, is the requirement (e.g. "torch" or "torch==2.9.1");
- otherwise the lock's torch version: on a machine with `nvidia-smi` PyPI's default (CUDA)
  build; on any other machine the CPU build from PyTorch's CPU index, tried with a short
  timeout and no retries, and where that index cannot be reached (no internet, a mirror
  only) the plain requirement from pip's configured index. It says which build it got.
Then pyproject.toml's dependencies, its `test` extra and any extras named with `--extras`
(comma-separated; `cluster` is what `ray up cluster.yaml` needs on a laptop and on the
cluster's nodes). A stamp in `.venv` keyed by pyproject.toml, the lock and the Python
version, and naming the extras installed, makes the second run a no-op. Last, pyproject's
`[tool.platform] no-deps` with `pip install --no-deps` (musicnn, whose metadata pins an old
numpy and a TensorFlow that its shipped weights do not need here).

Last of all, PATH_FILE in `.venv`'s site-packages puts the repo on that Python's path ahead
of the standard library, so `.venv/bin/python -m platform.sweep ...` works from any folder
(the repo's `platform` package is a superset of the standard module it hides, see
platform/__init__.py); the project itself is never installed.

`--extras browser` is not a pip extra: Debian's `chromium` for the browser test
(tests/test_tracking_e2e.py opens the MLflow UI headless), installed with apt-get when no
Chromium is on PATH and this is a root shell (CI's container, `.ci/run`). Anywhere else the
test is skipped and says why.
"""
import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
import urllib.error
import urllib.request
import venv
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"
LOCK = ROOT / "platform" / "requirements.lock"
CPU_INDEX = "https://download.pytorch.org/whl/cpu"
CPU_INDEX_TIMEOUT_S = 5
CHROMIUM = ("chromium", "chromium-browser", "google-chrome")
BROWSER = "browser"  # the one extra that is not pip's
# Packages whose build depends on the machine (torch's CUDA runtime): not in the lock
MACHINE_BUILDS = re.compile(r"^(torch|triton|nvidia-.*|pytorch-triton.*)$")
PATH_FILE = "techno_mel_gan_repo.pth"  # in .venv's site-packages: the repo's folder on the path


def _venv_python() -> Path:
    return VENV / "bin" / "python"


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _project() -> dict:
    return _pyproject()["project"]


def _optional() -> dict[str, list[str]]:
    return _project()["optional-dependencies"]


def _requirements(extras: frozenset[str] = frozenset()) -> list[str]:
    project = _project()
    reqs = list(project["dependencies"]) + list(project["optional-dependencies"]["test"])
    for extra in sorted(extras - {BROWSER}):
        reqs += project["optional-dependencies"][extra]
    # torch is installed on its own first (see module docstring)
    return [r for r in reqs if not re.match(r"torch\b", r.replace(" ", ""))]


# ---------- the lock ----------

def lock_lines() -> list[str]:
    if not LOCK.exists():
        return []
    return [line.strip() for line in LOCK.read_text().splitlines() if line.strip() and not line.startswith("#")]


def locked_torch() -> str:
    """The lock's torch pin, e.g. "torch==2.13.0" (plain "torch" if the lock has none)."""
    return next((line for line in lock_lines() if line.startswith("torch==")), "torch")


def _constraints(tmp: Path) -> list[str]:
    """pip arguments constraining an install to the lock, torch left out: the torch that
    is installed (whatever its build, or PLATFORM_TORCH's version) is the one kept."""
    lines = [line for line in lock_lines() if not MACHINE_BUILDS.match(line.split("==")[0])]
    if not lines:
        return []
    path = tmp / "constraints.txt"
    path.write_text("\n".join(lines) + "\n")
    return ["-c", str(path)]


def lock_text(installed: list[dict]) -> str:
    """The lock for `pip list --format=json` output: every package at its exact version,
    local build labels dropped (`2.13.0+cpu` pins 2.13.0 of any build); torch's CUDA
    runtime packages left out, torch itself kept as the version to install."""
    pins = {}
    for package in installed:
        name = package["name"].lower().replace("_", "-")
        if MACHINE_BUILDS.match(name) and name != "torch":
            continue
        pins[name] = f"{name}=={package['version'].split('+')[0]}"
    header = ("# The exact versions the test suite passed with; platform.bootstrap installs with\n"
              "# `pip -c` this file (torch: the version, its build chosen per machine).\n"
              "# Regenerate from a tested .venv: python3 -m platform.bootstrap --refresh-lock\n")
    return header + "".join(pins[name] + "\n" for name in sorted(pins))


def refresh_lock() -> int:
    if not _venv_python().exists():
        print(f"platform.bootstrap: no {VENV} to read versions from; run the set-up first.", file=sys.stderr)
        return 2
    listed = subprocess.run([str(_venv_python()), "-m", "pip", "list", "--format=json", "--exclude-editable",
                             "--disable-pip-version-check"], capture_output=True, text=True, check=True)
    installed = [p for p in json.loads(listed.stdout) if p["name"].lower() not in ("pip", "setuptools", "wheel")]
    LOCK.write_text(lock_text(installed))
    print(f"{LOCK}: {len(lock_lines())} packages, torch {locked_torch()}", file=sys.stderr)
    return 0


# ---------- torch ----------

@dataclass(frozen=True)
class TorchPlan:
    requirement: str
    index_url: str | None  # None: pip's configured index
    why: str               # for the user


def cpu_index_reachable(url: str | None = None, timeout: float = CPU_INDEX_TIMEOUT_S) -> bool:
    """One request, no retries: can pip reach PyTorch's CPU index (CPU_INDEX) from here?"""
    url = url or CPU_INDEX
    try:
        urllib.request.urlopen(urllib.request.Request(url.rstrip("/") + "/torch/", method="HEAD"), timeout=timeout)
        return True
    except (urllib.error.URLError, OSError, ValueError):
        return False


def torch_plan(has_torch: bool, env_torch: str | None, has_nvidia_smi: bool, locked: str,
               index_reachable: Callable[[], bool]) -> TorchPlan | None:
    """What to install for torch, or None to keep the one there (see module docstring).
    `index_reachable` is only asked on a machine that wants the CPU build."""
    if has_torch:
        return None
    if env_torch:
        return TorchPlan(env_torch, None, "PLATFORM_TORCH")
    if has_nvidia_smi:
        return TorchPlan(locked, None, "nvidia-smi found: PyPI's default (CUDA) build")
    if index_reachable():
        return TorchPlan(locked, CPU_INDEX, "no nvidia-smi: the CPU build from PyTorch's CPU index")
    return TorchPlan(locked, None, f"no nvidia-smi, and PyTorch's CPU index ({CPU_INDEX}) could not be reached: "
                                   "pip's configured index")


def _has_torch() -> bool:
    return subprocess.run([str(_venv_python()), "-c", "import torch"], capture_output=True).returncode == 0


def _torch_build() -> str:
    probe = ("import torch; cuda = torch.version.cuda; "
             "print(torch.__version__, f'(CUDA {cuda} build)' if cuda else '(CPU build)')")
    done = subprocess.run([str(_venv_python()), "-c", probe], capture_output=True, text=True)
    return done.stdout.strip() or "(not importable)"


def _install_torch() -> None:
    plan = torch_plan(_has_torch(), os.environ.get("PLATFORM_TORCH"), shutil.which("nvidia-smi") is not None,
                      locked_torch(), cpu_index_reachable)
    if plan is None:
        print(f"torch: keeping the one in .venv, {_torch_build()}", file=sys.stderr)
        return
    if plan.index_url:
        try:
            _pip(plan.requirement, "--index-url", plan.index_url, "--timeout", str(CPU_INDEX_TIMEOUT_S),
                 "--retries", "0")
        except subprocess.CalledProcessError:  # reachable a moment ago, yet no wheel for this machine
            plan = TorchPlan(plan.requirement, None, "PyTorch's CPU index failed: pip's configured index")
    if not plan.index_url:
        _pip(plan.requirement)
    print(f"torch: {plan.requirement} ({plan.why}): installed {_torch_build()}", file=sys.stderr)


# ---------- the repo on .venv's path ----------

def path_file_line(root: Path) -> str:
    """The line of PATH_FILE: the site module runs it at start-up and puts `root` on sys.path
    just before the standard library (after the working folder and PYTHONPATH), so `python -m
    platform.X` finds this repo's package, not the standard module it stands in for, from any
    folder; run from a clone's root, that clone's own package comes first."""
    return ("import os, sys; root = " + repr(str(root)) + "; stdlib = os.path.dirname(os.__file__); "
            "root in sys.path or sys.path.insert(sys.path.index(stdlib) if stdlib in sys.path else 0, root)\n")


def link_repo(venv: Path, root: Path) -> list[Path]:
    """Write PATH_FILE into `venv`'s site-packages (each Python version's there); the files written."""
    written = []
    for site_packages in sorted(venv.glob("lib/python3*/site-packages")):
        path = site_packages / PATH_FILE
        if not path.exists() or path.read_text() != path_file_line(root):
            path.write_text(path_file_line(root))
            written.append(path)
    return written


# ---------- the rest ----------

def _no_deps() -> list[str]:
    """pyproject's [tool.platform] no-deps: wheels installed without their declared dependencies."""
    return _pyproject().get("tool", {}).get("platform", {}).get("no-deps", [])


def _stamp(extras: frozenset[str] = frozenset()) -> Path:
    """`.bootstrap-KEY` for the base install, `.bootstrap-KEY+cluster+...` with extras."""
    lock = LOCK.read_bytes() if LOCK.exists() else b""
    key = hashlib.sha256((ROOT / "pyproject.toml").read_bytes() + b"\0" + lock + sys.version.encode())
    return VENV / "+".join([f".bootstrap-{key.hexdigest()[:16]}", *sorted(extras)])


def _installed_extras() -> frozenset[str] | None:
    """The extras the current stamp names, or None when no stamp matches pyproject.toml and the lock."""
    base = _stamp().name
    for stamp in VENV.glob(base + "*"):
        name, *extras = stamp.name.split("+")
        if name == base:
            return frozenset(extras)
    return None


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python3 -m platform.bootstrap", description=__doc__.split("\n\n")[0])
    parser.add_argument("--extras", default="", metavar="NAME[,NAME]",
                        help="optional dependency groups of pyproject.toml to install too, e.g. cluster; "
                             "`browser`: Debian's chromium for the browser test (root with apt-get)")
    parser.add_argument("--refresh-lock", action="store_true",
                        help="write platform/requirements.lock from the versions in .venv, install nothing")
    args = parser.parse_args(argv)
    args.extras = frozenset(e.strip() for e in args.extras.split(",") if e.strip())
    known = set(_optional()) | {BROWSER}
    unknown = sorted(args.extras - known)
    if unknown:
        parser.error(f"--extras: no extra {', '.join(map(repr, unknown))} in pyproject.toml "
                     f"(expected one of: {', '.join(sorted(known))}).")
    return args


def _pip(*args: str) -> None:
    subprocess.run([str(_venv_python()), "-m", "pip", "install", "--quiet",
                    "--disable-pip-version-check", *args], check=True)


def _chromium() -> None:
    """Only asked for (`--extras browser`): the quickstart never installs a system package."""
    if any(shutil.which(name) for name in CHROMIUM):
        return
    if not (shutil.which("apt-get") and hasattr(os, "geteuid") and os.geteuid() == 0):
        print("platform.bootstrap: --extras browser needs a root shell with apt-get (or install Chromium "
              "yourself); the browser test will be skipped.", file=sys.stderr)
        return
    print("Installing Debian's chromium for the browser test (apt-get) ...", file=sys.stderr)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    install = ["apt-get", "install", "-y", "-q", "chromium"]
    quiet = dict(env=env, stdout=subprocess.DEVNULL)
    if subprocess.run(install, **quiet).returncode != 0:  # stale package lists: update, then once more
        subprocess.run(["apt-get", "update", "-q"], **quiet)
        if subprocess.run(install, **quiet).returncode != 0:
            print("platform.bootstrap: chromium could not be installed; the browser test will be skipped.",
                  file=sys.stderr)
            return
    print("chromium installed.", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    if sys.version_info < (3, 11):
        print(f"platform.bootstrap: Python 3.11 or newer is needed, this is {sys.version.split()[0]}.",
              file=sys.stderr)
        return 2
    args = _parse_args(argv)
    if args.refresh_lock:
        return refresh_lock()
    extras = args.extras
    installed = _installed_extras()
    if installed is None or not extras - {BROWSER} <= installed:
        if not _venv_python().exists():
            print(f"Creating {VENV} ...", file=sys.stderr)
            venv.EnvBuilder(with_pip=True).create(VENV)
        print("Installing the locked dependencies into .venv (first run only, about a minute) ...", file=sys.stderr)
        _install_torch()
        with tempfile.TemporaryDirectory(prefix="bootstrap-") as tmp:
            _pip(*_constraints(Path(tmp)), *_requirements(extras))
            if _no_deps():
                _pip("--no-deps", *_no_deps())  # pinned exactly in pyproject.toml
        for old in VENV.glob(".bootstrap-*"):
            old.unlink()
        _stamp((extras - {BROWSER}) | (installed or frozenset())).touch()
        print("Dependencies ready in .venv.", file=sys.stderr)
    for path in link_repo(VENV, ROOT):
        print(f"{path.name}: .venv's Python finds this repo's commands from any folder.", file=sys.stderr)
    if BROWSER in extras:
        _chromium()
    return 0


if __name__ == "__main__":
    sys.exit(main())
