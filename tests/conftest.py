import os

import pytest

from tests.helpers import ROOT, TINY_DATASET, run_module, write_spec

# A dry run measures each family's step on this machine (platform/driver/calibration.py);
# the tests that check that measure on purpose, and every other dry run here skips it.
os.environ.setdefault("PLATFORM_CALIBRATION", "0")


@pytest.fixture(scope="module")
def ray_local():
    """A local Ray for the module's tests, with the repo root on the workers' path."""
    import ray
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": str(ROOT)}})
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def tiny_datasets(tmp_path_factory):
    """TINY_DATASET built once per session with `platform.prepare`, as a user builds one: the
    `datasets/` folder that end-to-end tests copy into their storage root (helpers.seed_datasets)
    so each sweep reuses it instead of building it again with Ray Data (tens of seconds each)."""
    folder = tmp_path_factory.mktemp("tiny-datasets")
    spec = write_spec(folder / "tiny.yaml", name="tiny", dataset=TINY_DATASET)
    result = run_module("platform.prepare", str(spec), "--root", str(folder / "runs"), cwd=folder, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return folder / "runs" / "datasets"
