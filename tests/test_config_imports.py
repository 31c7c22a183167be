"""Validating a spec loads no torch: `--dry-run` (and the driver before Ray) reads the trial's
config sections from trainables/config.py, which must stay free of the training stack.

Ray Tune is allowed: the dry run prints the searched keys as Tune domains."""
import os
import subprocess
import sys

from tests.helpers import ROOT

# the training stack a spec check must not pay for (seconds of imports, and a GPU runtime)
HEAVY = ("torch", "scipy", "torchvision", "librosa")

# `python -m platform.sweep ... --dry-run` in-process, then the modules it left loaded
DRY_RUN = f"""
import runpy, sys
sys.argv = ["platform.sweep", "search_spaces/quickstart.yaml", "--dry-run"]
try:
    runpy.run_module("platform.sweep", run_name="__main__")
except SystemExit as stop:
    assert not stop.code, f"the dry run exited {{stop.code}}"
print("LOADED", sorted(name for name in {HEAVY!r} if name in sys.modules))
"""


def test_a_dry_run_imports_no_torch():
    # from the repo root, as a user runs it: `platform/` shadows the standard module there
    done = subprocess.run([sys.executable, "-c", DRY_RUN], cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)),
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    loaded = [line for line in done.stdout.splitlines() if line.startswith("LOADED")]
    assert loaded == ["LOADED []"]
