"""Connecting the driver to Ray, and the checks a multi-node sweep needs first.

Locally (`address="local"`) workers get the repo root on PYTHONPATH. On a cluster
(`--address auto`, `HOST:PORT` or `ray://...`) the code is shipped with Ray's runtime
environment (`working_dir`, which also goes first on the workers' PYTHONPATH), without
datasets, virtual environments or stores.

Before any trial starts on a cluster of more than one node, `preflight` checks what
would otherwise fail late and far away: a local MLflow store (other nodes cannot write
to it), an MLflow server some node cannot reach, a storage path that is not shared, an
object store (storage.datasets) some node cannot read.
Each failure is a ClusterError with one sentence naming what to fix.
"""
import contextlib
import importlib.util
import os
import socket
import stat
import uuid
from dataclasses import dataclass
from pathlib import Path

from data.spec import without_credentials

ROOT = Path(__file__).resolve().parents[2]  # platform/driver/cluster.py -> the repo root

# Never shipped to workers: generated data, environments, stores, VCS.
SHIP_EXCLUDES = [".venv/", ".git/", "runs/", "mlruns/", "mlartifacts/", "mlflow.db",
                 "**/__pycache__/", "*.parquet", "*.wav", "*.pt", ".pytest_cache/"]


class ClusterError(Exception):
    """A cluster set-up the sweep cannot use; the message says what to fix."""


@dataclass(frozen=True)
class Node:
    node_id: str
    address: str


def is_local(address: str | None) -> bool:
    return address in (None, "local")


def runtime_env(address: str | None) -> dict:
    if is_local(address):
        # Workers import the standard `platform` before the driver's directory is on
        # their path; PYTHONPATH puts the repo root first so they load our shim too.
        return {"env_vars": {"PYTHONPATH": str(ROOT)}}
    return {"working_dir": str(ROOT), "excludes": SHIP_EXCLUDES}


def _endpoint_problem(address: str) -> str | None:
    """For HOST:PORT and ray://HOST:PORT, whether anything listens there: ray.init itself
    retries an absent GCS for minutes before it gives up."""
    if address == "auto":
        return None
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return "expected 'auto', HOST:PORT or ray://HOST:PORT"
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as error:
        return error.strerror or str(error) or type(error).__name__
    return None


def _unreachable(address: str, why: str) -> ClusterError:
    return ClusterError(f"no Ray cluster could be reached at {address!r} ({why}); start one with "
                        "`ray up cluster.yaml` or `ray start --head`, or drop --address to run on this machine.")


def _address_space_limit() -> int | None:
    """This process's `ulimit -v` in bytes, None when unlimited."""
    import resource
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    return None if soft == resource.RLIM_INFINITY else soft


def _check_address_space() -> None:
    """A local Ray's raylet maps its object store (by default 30 % of the memory) and needs a
    few GiB besides; under a lower `ulimit -v` Ray hangs in its start-up or dumps a raylet
    crash. Said first, in one sentence."""
    limit = _address_space_limit()
    if limit is None:
        return
    needed = int(0.3 * os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")) + (4 << 30)
    if limit < needed:
        raise ClusterError(f"memory is too low for Ray: the address-space limit (ulimit -v) is {limit / 2**30:.1f} "
                           f"GiB, and a local Ray needs about {needed / 2**30:.0f} GiB of it on this machine (its "
                           "object store is 30 % of the memory); raise it (ulimit -v unlimited).")


def connect(address: str | None, root: str | os.PathLike | None = None) -> list[Node]:
    """Start or join Ray; return the alive nodes. A local Ray keeps its authentication
    token under `root` (the storage root), not in the user's home (platform/driver/ray_token.py)."""
    import ray
    address = address or "local"  # never join a cluster some `ray start` left running
    if address.startswith("ray://") and importlib.util.find_spec("grpc") is None:
        raise ClusterError(f"--address {address} is a Ray Client address, which needs Ray's client "
                           "(grpcio): run `python3 -m platform.bootstrap --extras cluster`, or run the sweep "
                           "on the head with --address auto.")
    if is_local(address):
        _check_address_space()
        if root is not None:
            from platform.driver import ray_token
            ray_token.use_local_token(root)
    problem = None if is_local(address) else _endpoint_problem(address)
    if problem:
        raise _unreachable(address, problem)
    try:
        ray.init(address=address, include_dashboard=False if is_local(address) else None,
                 runtime_env=runtime_env(address))
    except Exception as error:
        limit = _address_space_limit()
        if is_local(address) and limit is not None:  # Ray's own message is a timeout or a raylet crash dump
            raise ClusterError(f"Ray could not start on this machine ({type(error).__name__}): its memory is too "
                               f"low, the address-space limit (ulimit -v) being {limit / 2**30:.1f} GiB, which "
                               "Ray's processes exceed at start; raise it (ulimit -v unlimited).") from None
        if not isinstance(error, (ConnectionError, RuntimeError, ValueError)):
            raise
        raise _unreachable(address, str(error).splitlines()[0]) from None
    return [Node(n["NodeID"], n["NodeManagerAddress"]) for n in ray.nodes() if n["Alive"]]


def _on_each(nodes: list[Node], fn, *args) -> dict[Node, str | None]:
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
    remote = ray.remote(num_cpus=0)(fn)
    refs = {node: remote.options(scheduling_strategy=NodeAffinitySchedulingStrategy(node.node_id, soft=False))
            .remote(*args) for node in nodes}
    return {node: ray.get(ref, timeout=120) for node, ref in refs.items()}


def check_tracking(tracking_uri: str, nodes: list[Node]) -> None:
    from data import node_checks
    if not tracking_uri.startswith(("http://", "https://")):
        if len(nodes) > 1:
            raise ClusterError(f"mlflow.tracking_uri {tracking_uri!r} is a store on this machine that trials "
                               "on other nodes cannot write to; set it (or MLFLOW_TRACKING_URI) to the "
                               "cluster's MLflow server, e.g. http://HEAD_IP:5000.")
        return
    health = tracking_uri.rstrip("/") + "/health"
    reason = node_checks.http_reachable(health)
    if reason:
        raise ClusterError(f"the MLflow server {tracking_uri} is not reachable from the driver ({reason}); "
                           "start it or fix mlflow.tracking_uri.")
    check_login(tracking_uri)
    for node, reason in _on_each(nodes, node_checks.http_reachable, health).items():
        if reason:
            raise ClusterError(f"the MLflow server {tracking_uri} is not reachable from node {node.address} "
                               f"({reason}); it must listen on an address the workers can reach, not 127.0.0.1 "
                               "only (cluster.yaml starts it on the head's private address).")


def check_login(tracking_uri: str) -> None:
    """A server behind basic auth (cluster.yaml's) refuses a driver without its credentials:
    say which variables, rather than a traceback from the parent run's creation."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException
    try:
        MlflowClient(tracking_uri=tracking_uri).search_experiments(max_results=1)
    except MlflowException as error:
        if "401" not in str(error) and "403" not in str(error) and error.error_code not in (
                "UNAUTHENTICATED", "PERMISSION_DENIED"):
            raise
        raise ClusterError(f"the MLflow server {tracking_uri} refused this driver's credentials; set "
                           "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD (on cluster.yaml's head: "
                           "`source ~/.platform-cluster.env`, which reads /srv/shared/mlflow/auth/client.env).") from None


def check_shared(path: str, what: str, nodes: list[Node]) -> None:
    """A marker written here must be visible on every node, or checkpoints and data go astray."""
    from data.remote import is_uri
    from data import node_checks
    if len(nodes) < 2 or is_uri(path):
        return
    Path(path).mkdir(parents=True, exist_ok=True)
    marker = Path(path) / f".shared-check-{uuid.uuid4().hex}"
    marker.touch()
    try:
        for node, reason in _on_each(nodes, node_checks.file_visible, str(marker)).items():
            if reason:
                other = ("publish datasets to an object store with storage.datasets: s3://BUCKET/PREFIX"
                         if what == "storage.root" else "use an s3:// URI")
                raise ClusterError(f"{what} {path} is not shared with node {node.address}: mount the same shared "
                                   f"file system on every node (cluster.yaml mounts /srv/shared) or {other}.")
    finally:
        os.unlink(marker)


_CREDENTIALS = ("check the bucket's name, that it exists, and the credentials (for s3://: AWS_ACCESS_KEY_ID "
                "and AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or an instance role)")


def _write_marker(uri: str, what: str, kind: str) -> str:
    """A test object written under `uri` from here, or a ClusterError saying why not."""
    from data import node_checks
    marker = f".{kind}-check-{uuid.uuid4().hex}"
    problem = node_checks.write_problem(uri, marker)
    if problem:
        raise ClusterError(f"{what} {without_credentials(uri)} cannot be written from this machine ({problem}); {_CREDENTIALS}.")
    return marker


def check_store_writable(uri: str, what: str = "storage.datasets") -> None:
    """The driver publishes datasets there: a test object is written and removed, before Ray
    starts, so a misspelt bucket or missing credentials stop the sweep in seconds."""
    from data import node_checks
    node_checks.remove(uri, _write_marker(uri, what, "write"))


def _local_problem(path: Path) -> str | None:
    """Why a file cannot be made in `path` (made if missing), or None: a byte is written, so
    a full disk fails here too, not at a trial's first checkpoint."""
    if os.path.lexists(path):  # a file or device in its place, or a symlink loop: mkdir says only "File exists"
        try:
            if not stat.S_ISDIR(os.stat(path).st_mode):
                return "it is not a folder"
        except OSError as error:  # ELOOP: a symlink loop
            return error.strerror or str(error)
    marker = path / f".write-check-{uuid.uuid4().hex}"
    made = [p for p in (path, *path.parents) if not p.exists()]  # removed again, deepest first
    try:
        path.mkdir(parents=True, exist_ok=True)
        with marker.open("wb") as out:
            out.write(b"x")
            out.flush()
            os.fsync(out.fileno())
    except OSError as error:
        return error.strerror or str(error)
    finally:
        with contextlib.suppress(OSError):  # on a read-only disk, unlinking the absent marker fails too
            marker.unlink(missing_ok=True)
            for folder in made:  # a check leaves nothing behind (a storage path may prove unshared)
                folder.rmdir()
    return None


def local_store_folders(tracking_uri: str) -> dict[str, Path]:
    """The folders a local MLflow store writes: its own, and ./mlruns, where the artifacts of
    experiments it creates go (a server's are its own business)."""
    if tracking_uri.startswith("sqlite:///"):
        return {"mlflow.tracking_uri": Path(tracking_uri[len("sqlite:///"):]).parent,
                "MLflow's artifact folder": Path("mlruns").resolve()}
    if "://" not in tracking_uri or tracking_uri.startswith("file://"):
        return {"mlflow.tracking_uri": Path(tracking_uri.removeprefix("file://"))}
    return {}


def check_writable(paths: dict[str, str | os.PathLike]) -> None:
    """Every local folder a command writes, before Ray starts: a read-only or full disk is one
    sentence naming the setting, not a traceback from deep inside Ray (URIs are skipped)."""
    from data import remote
    for what, path in paths.items():
        if path is None or remote.is_uri(str(path)):
            continue
        problem = _local_problem(Path(path))
        if problem:
            raise ClusterError(f"{what} {path} cannot be written ({problem}); free space there, fix its "
                               "permissions or mount, or point the setting at another folder.")


def check_store_readable(uri: str, what: str, nodes: list[Node]) -> None:
    """Trials copy datasets from there: every node must be able to read what the driver wrote."""
    from data import node_checks
    if len(nodes) < 2:
        return
    marker = _write_marker(uri, what, "read")
    try:
        for node, reason in _on_each(nodes, node_checks.read_problem, uri, marker).items():
            if reason:
                raise ClusterError(f"{what} {without_credentials(uri)} cannot be read from node {node.address} ({reason}); every node "
                                   "needs credentials for it (an instance role that reads the bucket, or the "
                                   "same AWS_* variables).")
    finally:
        node_checks.remove(uri, marker)


def preflight(nodes: list[Node], tracking_uri: str, storage_paths: dict[str, str],
              stores: dict[str, str] | None = None) -> None:
    """`storage_paths`: paths every node must see (URIs are not probed); `stores`: object-store
    URIs every node must read."""
    check_tracking(tracking_uri, nodes)
    for what, path in storage_paths.items():
        check_shared(path, what, nodes)
    for what, uri in (stores or {}).items():
        check_store_readable(uri, what, nodes)


def native_precisions(nodes: list[Node]) -> dict[Node, str]:
    """What each node's trials evaluate in natively (trainables/native_precision.py: node_precision)."""
    from trainables.native_precision import node_precision
    return _on_each(nodes, node_precision)
