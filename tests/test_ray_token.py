"""A local Ray's token under the storage root, owner-only, never in the user's home; the
user's own choice of Ray's authentication kept."""
import os
import stat
import subprocess
import sys

import pytest

from platform.driver import ray_token
from tests.helpers import ROOT


@pytest.fixture
def clean_env(monkeypatch):
    for name in ray_token.USER_CHOICES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(ray_token, "_chosen", {})


def test_the_token_is_made_once_under_the_root_and_readable_by_its_owner_only(tmp_path, clean_env):
    path = ray_token.use_local_token(tmp_path / "runs")
    assert path == tmp_path / "runs" / "ray" / "auth_token"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    token = path.read_text()
    assert len(token) == 64 and int(token, 16)
    assert os.environ["RAY_AUTH_MODE"] == "token" and os.environ["RAY_AUTH_TOKEN_PATH"] == str(path)
    assert ray_token.use_local_token(tmp_path / "runs") == path and path.read_text() == token  # kept
    assert os.listdir(path.parent) == ["auth_token"]  # no temporary file left


def test_a_later_sweep_in_the_same_process_gets_its_own_root(tmp_path, clean_env):
    first = ray_token.use_local_token(tmp_path / "a")
    second = ray_token.use_local_token(tmp_path / "b")
    assert first != second and os.environ["RAY_AUTH_TOKEN_PATH"] == str(second)


@pytest.mark.parametrize("name, value", [("RAY_AUTH_MODE", "disabled"), ("RAY_AUTH_TOKEN", "abc"),
                                         ("RAY_AUTH_TOKEN_PATH", "/somewhere/token")])
def test_the_users_own_choice_is_kept(tmp_path, clean_env, monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    assert ray_token.use_local_token(tmp_path) is None
    assert not (tmp_path / "ray").exists() and os.environ[name] == value


@pytest.mark.slow
def test_a_local_ray_starts_with_the_token_and_writes_nothing_in_home(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ray_token.USER_CHOICES}
    script = ("from platform.driver import cluster\n"
              f"cluster.connect('local', {str(tmp_path / 'runs')!r})\n"
              "import ray, os\n"
              "print(ray.get(ray.remote(lambda: os.environ['RAY_AUTH_TOKEN_PATH']).remote()))\n")
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env={**env, "HOME": str(home)},
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().endswith(str(tmp_path / "runs" / "ray" / "auth_token"))
    assert "Token authentication" not in done.stderr  # Ray's warning: the mode is set
    assert not (home / ".ray").exists()
