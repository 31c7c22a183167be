"""The repo's `platform` package stands in for the standard library's module."""
import os
import subprocess
import sys

import pytest

from tests.helpers import ROOT, run_module


def test_standard_functions_work_through_the_package():
    import platform
    assert hasattr(platform, "__path__"), "the repo's package is the one imported"
    assert platform.system() == os.uname().sysname
    assert platform.python_version() == ".".join(map(str, sys.version_info[:3]))
    uname = platform.uname()
    assert uname.system == platform.system() and uname.machine


@pytest.mark.slow
def test_heavy_libraries_import_with_repo_root_first():
    code = ("import platform, pickle; assert hasattr(platform, '__path__'); "
            "import torch, ray, mlflow, optuna, pyarrow, pandas, yt_dlp; "
            "u = platform.uname(); assert pickle.loads(pickle.dumps(u)) == u; "
            "print(platform.system(), platform.python_version())")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split()[1] == ".".join(map(str, sys.version_info[:3]))


@pytest.mark.slow
def test_commands_run_from_another_directory(tmp_path):
    result = run_module("platform.sweep", "--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "--dry-run" in result.stdout


def _venv(path, *site_lines: str):
    """A bare virtual environment (no pip) at `path`, with `site_lines` as .pth files."""
    import venv
    venv.EnvBuilder(symlinks=True, with_pip=False).create(path)
    site_packages = next(path.glob("lib/python3*/site-packages"))
    for i, line in enumerate(site_lines):
        (site_packages / f"test_{i}.pth").write_text(line + "\n")
    return path / "bin" / "python"


def _with_the_projects_packages(path):
    """A venv like .venv after bootstrap: the set-up's packages (this Python's) and the repo's path file."""
    import sysconfig
    from pathlib import Path
    from platform import bootstrap
    python = _venv(path, f"import site; site.addsitedir({sysconfig.get_paths()['purelib']!r})")
    assert bootstrap.link_repo(path, ROOT) and not bootstrap.link_repo(path, ROOT)  # written once
    return python


def test_the_path_file_puts_the_repo_just_before_the_standard_library(monkeypatch):
    from platform import bootstrap
    stdlib = os.path.dirname(os.__file__)
    path = ["/cwd", "/from/PYTHONPATH", "/x/python311.zip", stdlib, "/site-packages"]
    monkeypatch.setattr(sys, "path", list(path))
    exec(bootstrap.path_file_line(ROOT))
    assert sys.path == path[:3] + [str(ROOT)] + path[3:]
    exec(bootstrap.path_file_line(ROOT))  # twice: once on the path
    assert sys.path.count(str(ROOT)) == 1


@pytest.mark.parametrize("argv, command", [
    (["python", "-m", "platform.sweep", "x.yaml"], "sweep"), (["python", "-u", "-mplatform.report", "q"], "report"),
    (["python", "-m", "pytest"], None), (["python", "-c", "import platform"], None), (["python", "x.py", "-m"], None),
    (["ray::worker"], None)])
def test_a_command_is_told_from_other_importers(monkeypatch, argv, command):
    import platform
    monkeypatch.setattr(sys, "orig_argv", argv)
    assert platform._command() == command


@pytest.mark.slow
def test_commands_run_from_any_folder_with_the_projects_python(tmp_path):
    python = _with_the_projects_packages(tmp_path / "venv")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    spec = ROOT / "search_spaces" / "quickstart.yaml"
    dry = subprocess.run([python, "-m", "platform.sweep", str(spec), "--dry-run"], cwd=elsewhere, env=env,
                         capture_output=True, text=True, timeout=900)
    assert dry.returncode == 0, dry.stderr[-2000:]
    # a spec's relative paths (here its defaults, ./runs and ./mlflow.db) are the working folder's
    assert f"# storage: {elsewhere / 'runs'}, MLflow: sqlite:///mlflow.db (relative paths: in {elsewhere})" in dry.stdout
    for module in ("platform.report", "platform.doctor", "platform.generate"):
        helped = subprocess.run([python, "-m", module, "--help"], cwd=elsewhere, env=env, capture_output=True,
                                text=True, timeout=900)
        assert helped.returncode == 0 and "usage: python" in helped.stdout, helped.stderr[-2000:]
    # every other importer of `platform` in that Python still gets the standard module's functions
    other = subprocess.run([python, "-c", "import platform, json; print(json.dumps([platform.system(), "
                            "platform.python_version(), platform.__file__]))"], cwd=elsewhere, env=env,
                           capture_output=True, text=True, timeout=300)
    import json
    system, version, file = json.loads(other.stdout)
    assert (system, version) == (os.uname().sysname, ".".join(map(str, sys.version_info[:3])))
    assert file == str(ROOT / "platform" / "__init__.py")


@pytest.mark.slow
def test_a_python_without_the_dependencies_says_which_to_use_in_one_sentence(tmp_path):
    python = _venv(tmp_path / "bare")  # the system's python3, as a newcomer might type it
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    for module, args in (("platform.sweep", ["search_spaces/quickstart.yaml"]), ("platform.report", ["quickstart"]),
                         ("platform.doctor", []), ("platform.generate", ["--experiment", "quickstart"]),
                         ("platform.listen", ["--serve", "quickstart"]), ("platform.prepare", ["x.yaml"])):
        result = subprocess.run([python, "-m", module, *args], cwd=ROOT, env=env, capture_output=True, text=True,
                                timeout=300)
        assert result.returncode == 2 and result.stdout == "", (module, result.stdout[-500:], result.stderr[-2000:])
        line, = result.stderr.splitlines()
        assert line.startswith(f"{module}: this Python ({python}") and line.count(". ") == 0, line
        assert f".venv/bin/python -m {module} ...`" in line and "ray" in line, line
