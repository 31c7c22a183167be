"""Checks that run on every node of a cluster before a sweep starts trials there
(platform/driver/cluster.py's preflight sends them): the MLflow server reachable, shared storage
visible, an object store (storage.datasets) writable and readable.

They live in `data/`, not `platform/`, because they execute on Ray workers (see
docs/architecture.md). Each returns a reason string when the node cannot do its part,
or None when it can.
"""
import os
import threading
import urllib.error
import urllib.request

from data.remote import StoreError, first_line, open_uri


def http_reachable(url: str, timeout: float = 5.0) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return None if response.status == 200 else f"HTTP {response.status}"
    except (urllib.error.URLError, OSError, ValueError) as error:
        return str(getattr(error, "reason", error))


def file_visible(path: str) -> str | None:
    return None if os.path.exists(path) else f"{path} does not exist on this node"


# ---------- an object store (storage.datasets) ----------

def _probe(uri: str, marker: str) -> None:
    fs, path = open_uri(uri)
    fs.create_dir(path, recursive=True)
    with fs.open_output_stream(f"{path}/{marker}") as out:
        out.write(b"techno-mel-gan write check\n")


def _within(seconds: float, fn, *args) -> None:
    """`fn(*args)`, or a TimeoutError after `seconds`: some stores retry or wait for
    credentials for minutes where there is no network."""
    outcome: list = []

    def call():
        try:
            outcome.append(fn(*args))
        except BaseException as error:  # noqa: BLE001 - handed to the caller below
            outcome.append(error)
    worker = threading.Thread(target=call, daemon=True)
    worker.start()
    worker.join(seconds)
    if not outcome:
        raise TimeoutError(f"no answer within {seconds:g} s")
    if isinstance(outcome[0], BaseException):
        raise outcome[0]


def write_problem(uri: str, marker: str, timeout: float = 60.0) -> str | None:
    """Why an object named `marker` cannot be written under `uri`, or None (it is then there)."""
    try:
        _within(timeout, _probe, uri, marker)
    except StoreError as error:
        return str(error)
    except (OSError, ValueError, TimeoutError) as error:
        return first_line(error)
    return None


def read_problem(uri: str, marker: str, timeout: float = 60.0) -> str | None:
    """Why the object `marker` under `uri` cannot be read from here, or None."""
    def read():
        fs, path = open_uri(uri)
        with fs.open_input_stream(f"{path}/{marker}") as stream:
            stream.read()
    try:
        _within(timeout, read)
    except StoreError as error:
        return str(error)
    except (OSError, ValueError, TimeoutError) as error:
        return first_line(error)
    return None


def remove(uri: str, marker: str) -> None:
    fs, path = open_uri(uri)
    try:
        fs.delete_file(f"{path}/{marker}")
    except OSError:  # FileNotFoundError included: already gone is fine
        pass
