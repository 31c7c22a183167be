"""The MLflow store a command writes to, opened once before anything else starts.

A new SQLite store is created and migrated by MLflow itself the first time a client uses
it. Two drivers doing that at once corrupt it (alembic's temporary tables collide, and a
half-migrated store stays broken for every later command), so here the first use happens
under an exclusive lock on a file beside the database (`mlflow.db.lock`): the first driver
migrates, the others wait and then find the tables made. A store that cannot be opened (a
garbage file, a folder in its place, a schema MLflow cannot read) is one sentence, before
Ray starts. A server store (http) is checked by the cluster preflight instead. An Optuna database the
user names in `storage.optuna` as a SQLite URL is made the same way, so it gets the same
lock (the default, a journal file, locks itself: platform/spec/study_storage.py).
"""
import fcntl
import os
from pathlib import Path

from platform.driver.cluster import ClusterError

SQLITE = "sqlite:///"
LOCK_SUFFIX = ".lock"
LOCK_WAIT_S = 600  # a migration takes seconds; a driver holding the lock longer is stuck


class StoreUnusable(ClusterError):
    """The MLflow store cannot be opened; the message names it and says why (a ClusterError:
    the commands that catch those say it as one sentence)."""


def _locked(lock_path: Path, wait_s: float):
    """An open file descriptor holding an exclusive flock on `lock_path`, waited for up to `wait_s`."""
    import time
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    deadline = time.monotonic() + wait_s
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            if time.monotonic() > deadline:
                os.close(fd)
                raise StoreUnusable(f"another process has held {lock_path} for over {wait_s:g} s while creating "
                                    "the store; end it, or delete the lock file if no such process is left.")
            time.sleep(0.1)


def _first_line(error: BaseException) -> str:
    text = str(getattr(error, "orig", None) or error).strip()
    return (text.splitlines() or [type(error).__name__])[0][:300]


def _open_locked(uri: str, what: str, setting: str, open_store) -> None:
    """`open_store()` on the SQLite file of `uri`, under the lock beside it."""
    path = Path(uri[len(SQLITE):])
    shown = f"the {what} {uri} cannot be opened"
    if path.exists() and not path.is_file():
        raise StoreUnusable(f"{shown}: {path} is not a file.")
    if path.is_file():
        with open(path, "rb") as db:
            header = db.read(16)
        if header and header != b"SQLite format 3\0":
            raise StoreUnusable(f"{shown}: {path} is not an SQLite database (move it away, or point {setting} "
                                "elsewhere).")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = _locked(path.with_name(path.name + LOCK_SUFFIX), LOCK_WAIT_S)
    try:
        open_store()
    except Exception as error:  # noqa: BLE001 - sqlalchemy's and alembic's many kinds, as one sentence
        raise StoreUnusable(f"{shown} ({_first_line(error)}); move it away, or point {setting} elsewhere.") from None
    finally:
        os.close(fd)  # closing releases the lock


def ready(uri: str, optuna_uri: str | None = None) -> None:
    """Open the MLflow store at `uri` and, with the optuna searcher, the Optuna storage
    `optuna_uri`: a new SQLite one is created (its tables made, an MLflow store migrated) by
    exactly one process at a time. StoreUnusable, one sentence, when one cannot be opened."""
    if uri.startswith(SQLITE):
        from mlflow import MlflowClient
        # the first use creates and migrates a new store
        _open_locked(uri, "MLflow store", "mlflow.tracking_uri",
                     lambda: MlflowClient(tracking_uri=uri).search_experiments(max_results=1))
    if optuna_uri and optuna_uri.startswith(SQLITE):
        import optuna
        _open_locked(optuna_uri, "Optuna storage", "storage.root", lambda: optuna.storages.RDBStorage(optuna_uri))
