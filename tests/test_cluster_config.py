"""cluster.yaml against Ray's own offline checks, and the pieces of the cluster path that
need no cluster: what the sweep ships to nodes, the shared-storage check with a stubbed
probe, bootstrap's extras."""
import copy
import socket
import zipfile

import jsonschema
import pytest
import yaml

from tests.helpers import ROOT

CLUSTER_YAML = ROOT / "cluster.yaml"


@pytest.fixture
def offline(monkeypatch):
    """Any attempt to reach a network (AWS's API included) fails the test."""
    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args[1:] or kwargs}")
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


def _raw() -> dict:
    return yaml.safe_load(CLUSTER_YAML.read_text())


def _prepare_and_validate(raw: dict) -> dict:
    from ray.autoscaler._private.util import prepare_config, validate_config
    config = prepare_config(copy.deepcopy(raw))
    validate_config(config)
    return config


def test_cluster_yaml_passes_rays_offline_checks(offline):
    config = _prepare_and_validate(_raw())
    nodes = config["available_node_types"]
    head, worker = nodes[config["head_node_type"]], nodes["gpu_worker"]
    assert "GPU" not in head["resources"] and head["max_workers"] == 0
    assert worker["resources"]["GPU"] == 1 and worker["min_workers"] == 0 and worker["max_workers"] >= 1
    assert config["max_workers"] >= worker["max_workers"] and config["idle_timeout_minutes"] > 0
    assert config["provider"]["type"] == "aws"
    # the code goes to every node, without data, stores, environments or history
    assert config["file_mounts"] == {"~/platform": "."}
    assert {".venv", "runs", "mlflow.db", "mlruns", ".git"} <= set(config["rsync_exclude"])
    # installed as the README does, with the cluster extra
    assert any("python3.11 -m platform.bootstrap --extras cluster" in c for c in config["setup_commands"])
    head_setup = " ".join(config["head_setup_commands"])
    for part in ("mlflow server --app-name basic-auth --host $HEAD_IP --port 5000",
                 "--backend-store-uri sqlite:////srv/shared/",
                 "--artifacts-destination /srv/shared/", "export RAY_ADDRESS=", "MLFLOW_TRACKING_URI=http://",
                 "PLATFORM_STORAGE_ROOT=/srv/shared/runs", "/etc/exports.d"):
        assert part in head_setup, part
    assert any("mount -t nfs4" in c and "$RAY_HEAD_IP:/srv/shared /srv/shared" in c
               for c in config["worker_setup_commands"])
    # the dashboard only on the head's loopback; nothing secret in the file
    assert "--dashboard-host=127.0.0.1" in " ".join(config["head_start_ray_commands"])
    _assert_nothing_open_to_the_network(config)
    text = CLUSTER_YAML.read_text().lower()
    for secret in ("aws_access_key", "aws_secret", "akia", "ssh_private_key:", "password"):
        assert secret not in text, secret


def _assert_nothing_open_to_the_network(config: dict) -> None:
    """No server on every address without a password, NFS only to the cluster's own block."""
    import re
    commands = [c for key in ("setup_commands", "head_setup_commands", "worker_setup_commands",
                              "head_start_ray_commands", "worker_start_ray_commands") for c in config[key]]
    servers = [c for c in commands if "mlflow server" in c]
    assert servers, "cluster.yaml starts no MLflow server"
    for command in servers:
        assert "--app-name basic-auth" in command and "EnvironmentFile=/srv/shared/mlflow/auth/server.env" in command
        host = re.search(r"--host (\S+)", command)
        assert host and host.group(1) == "$HEAD_IP" and "HEAD_IP=$(hostname -I" in command, command
    assert not [c for c in commands if "0.0.0.0" in c or "--host ::" in c]
    # the credentials are made on the head by the project's module, before the server starts
    made = [i for i, c in enumerate(config["head_setup_commands"]) if "platform.mlflow_auth /srv/shared/mlflow/auth" in c]
    started = [i for i, c in enumerate(config["head_setup_commands"]) if "mlflow server" in c]
    assert made and made[0] < started[0]
    # every ray start (whose workers run trials) and the driver's environment log in
    for key in ("head_start_ray_commands", "worker_start_ray_commands"):
        start = next(c for c in config[key] if "ray start" in c)
        assert start.index(". /srv/shared/mlflow/auth/client.env") < start.index("ray start"), key
    assert any("auth/client.env" in c and ".platform-cluster.env" in c for c in config["head_setup_commands"])
    exports = [c for c in config["head_setup_commands"] if "exports" in c]
    assert len(exports) == 1 and '"/srv/shared $VPC_CIDR(rw,' in exports[0]
    assert "vpc-ipv4-cidr-block" in exports[0] and "ipaddress.ip_network" in exports[0]
    for broad in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "0.0.0.0/0", "/srv/shared *", "/srv/shared *("):
        assert broad not in exports[0], broad
    assert "no_root_squash" not in exports[0] and "insecure" not in exports[0]


@pytest.mark.parametrize("path, value, expected", [
    (("max_workers",), "four", "max_workers"),
    (("available_node_types", "gpu_worker", "resources", "GPU"), "one", "GPU"),
    (("available_node_types", "gpu_worker", "min_workers"), 0.5, "min_workers"),
    (("head_node_type",), "no_such_type", "head_node_type"),
    (("surprise_key",), 1, "surprise_key"),
])
def test_broken_cluster_yaml_is_rejected_naming_the_key(offline, path, value, expected):
    raw = _raw()
    node = raw
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    with pytest.raises((jsonschema.ValidationError, ValueError)) as error:
        _prepare_and_validate(raw)
    assert expected in str(error.value)


def test_shipped_package_leaves_data_and_environments_behind(tmp_path):
    """What `--address` uploads (runtime_env working_dir + SHIP_EXCLUDES), packed by Ray's own
    code from a copy of the repo's layout with the things that must stay behind."""
    from ray._private.runtime_env.packaging import _zip_files

    from platform.driver.cluster import SHIP_EXCLUDES
    tree = {
        "platform/sweep.py": b"x", "trainables/train.py": b"x", "data/mel.py": b"x", "cluster.yaml": b"x",
        "runs/benchmarks/audio/clip.wav": b"\0" * 1_000_000, "runs/datasets/f/part-0.parquet": b"\0" * 1000,
        "runs/datasets/f/manifest.json": b"{}", "runs/tune/t/checkpoint_000000/ckpt.pt": b"\0",
        ".venv/bin/python": b"x", ".git/HEAD": b"x", "mlflow.db": b"x", "mlruns/0/meta.yaml": b"x",
        "mlartifacts/1/a.png": b"x", "platform/__pycache__/sweep.cpython-311.pyc": b"x",
        ".pytest_cache/v": b"x",
    }
    for name, content in tree.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(content)
    package = tmp_path.parent / f"{tmp_path.name}.zip"
    _zip_files(str(tmp_path), SHIP_EXCLUDES, str(package), include_gitignore=False)
    shipped = set(zipfile.ZipFile(package).namelist())
    assert shipped == {"platform/sweep.py", "trainables/train.py", "data/mel.py", "cluster.yaml"}, shipped


def test_repo_package_is_small(tmp_path):
    from ray._private.runtime_env.packaging import _zip_files

    from platform.driver.cluster import SHIP_EXCLUDES
    package = tmp_path / "repo.zip"
    _zip_files(str(ROOT), SHIP_EXCLUDES, str(package), include_gitignore=True)
    names = zipfile.ZipFile(package).namelist()
    assert package.stat().st_size < 5 * 1024 ** 2, package.stat().st_size
    assert not [n for n in names if n.startswith((".venv/", ".git/", "runs/", "mlruns/"))]


def test_check_shared_names_the_node_that_cannot_see_the_path(tmp_path, monkeypatch):
    """One machine cannot make a path that only some nodes see without root (tests/test_two_node.py
    does it with a mount namespace where it can); here the per-node probe is stubbed."""
    from platform.driver import cluster
    nodes = [cluster.Node("a" * 8, "10.0.0.1"), cluster.Node("b" * 8, "10.0.0.2")]
    seen = {}

    def on_each(nodes, fn, *args):
        seen["marker"] = args[0]
        return {node: (None if node.address == "10.0.0.1" else f"{args[0]} does not exist on this node")
                for node in nodes}
    monkeypatch.setattr(cluster, "_on_each", on_each)
    with pytest.raises(cluster.ClusterError, match=r"storage.root .* is not shared with node 10\.0\.0\.2"):
        cluster.check_shared(str(tmp_path), "storage.root", nodes)
    assert seen["marker"].startswith(str(tmp_path)) and not list(tmp_path.glob(".shared-check-*"))

    monkeypatch.setattr(cluster, "_on_each", lambda nodes, fn, *args: {n: None for n in nodes})
    cluster.check_shared(str(tmp_path), "storage.root", nodes)  # shared: no error
    cluster.check_shared("s3://bucket/tune", "storage.tune", nodes)  # a URI is not probed


def test_bootstrap_extras_install_once_and_keep_the_fast_path(tmp_path, monkeypatch):
    from platform import bootstrap
    venv = tmp_path / ".venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").touch()
    installs, no_deps = [], []  # no_deps: pyproject's [tool.platform] no-deps, a pip call of their own
    monkeypatch.setattr(bootstrap, "VENV", venv)
    monkeypatch.setattr(bootstrap, "_pip", lambda *args: (no_deps if args[0] == "--no-deps" else installs).append(args))
    monkeypatch.setattr(bootstrap, "_install_torch", lambda: None)
    if hasattr(bootstrap, "_chromium"):
        monkeypatch.setattr(bootstrap, "_chromium", lambda: None)

    assert bootstrap.main([]) == 0 and len(installs) == 1
    assert not any("boto3" in r for r in installs[0])
    assert no_deps == [("--no-deps", "musicnn==0.1.0")]
    assert bootstrap.main([]) == 0 and len(installs) == 1            # stamp: nothing to do
    assert bootstrap.main(["--extras", "cluster"]) == 0 and len(installs) == 2
    assert any(r.startswith("boto3") for r in installs[1]) and any(r.startswith("ray[default]") for r in installs[1])
    assert bootstrap.main(["--extras", "cluster"]) == 0 and len(installs) == 2
    assert bootstrap.main([]) == 0 and len(installs) == 2            # cluster's stamp covers the base
    assert [p.name.split("+")[1:] for p in venv.glob(".bootstrap-*")] == [["cluster"]]
    with pytest.raises(SystemExit) as error:
        bootstrap.main(["--extras", "clutser"])
    assert error.value.code == 2


def test_a_ray_client_address_without_the_client_says_what_to_install(monkeypatch):
    from platform.driver import cluster
    monkeypatch.setattr(cluster.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(cluster.ClusterError, match=r"ray://127\.0\.0\.1:10001 is a Ray Client address, which needs "
                                                   r"Ray's client \(grpcio\): run `python3 -m platform.bootstrap "
                                                   r"--extras cluster`"):
        cluster.connect("ray://127.0.0.1:10001")
