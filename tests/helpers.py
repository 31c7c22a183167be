"""Small builders the tests share: tiny spec files and subprocess runs from the repo root."""
import os
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def write_spec(path: Path, **sections) -> Path:
    path.write_text(yaml.safe_dump(sections, sort_keys=False))
    return path


def run_module(module: str, *args: str, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    """`python -m module args` in `cwd`, with the repo root first on the path as a user's run has."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", module, *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


TINY_DATASET = {
    "synthetic": {"tracks": 3, "seconds": 11.0, "seed": 7},  # 3 x 2 = 6 segments
    "mel": {"sample_rate": 16000, "n_mels": 64, "frames": 64},
}
