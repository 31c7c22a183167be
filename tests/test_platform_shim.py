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
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split()[1] == ".".join(map(str, sys.version_info[:3]))


@pytest.mark.slow
def test_commands_run_from_another_directory(tmp_path):
    result = run_module("platform.sweep", "--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "--dry-run" in result.stdout
