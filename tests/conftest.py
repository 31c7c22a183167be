import pytest

from tests.helpers import ROOT


@pytest.fixture(scope="module")
def ray_local():
    """A local Ray for the module's tests, with the repo root on the workers' path."""
    import ray
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": str(ROOT)}})
    yield ray
    ray.shutdown()
