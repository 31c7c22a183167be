"""A trial's MLflow client that keeps training through a tracking-server outage.

MLflow's own client retries a failed request for minutes and then raises, so an outage
would stall a trial without a word and then fail it. Here a trial's client asks MLflow for
a short retry window instead (MLFLOW_HTTP_REQUEST_MAX_RETRIES, MLFLOW_HTTP_REQUEST_TIMEOUT,
unless set), and a write the store does not take is kept, in order, in a journal in the
trial's directory (`mlflow-buffer/journal.jsonl`, artifacts copied beside it), which the
next write flushes first once the store answers again. A SQLite store that another process
holds longer than MLflow's busy timeout ("database is locked") is waited out the same way:
no trial fails for a lock.

The journal is only appended to: a flush counts what it has logged in `journal.sent` after
each entry (a trial that dies while flushing resends at most the entry it was logging), and
the folder goes once everything is logged. The trial's log (and so the driver's console,
where Ray prints workers' logs) says when the store went away and why, while it stays away,
and when what was kept has been logged. Reads (a restored trial's history, the loss curves
at the end) flush and wait for the store, saying so, up to PLATFORM_MLFLOW_WAIT_S.

Bounded: at most MAX_ENTRIES writes and MAX_ARTIFACT_BYTES of artifact copies wait; past
that, artifacts (sample grids, audio, checkpoint copies) are dropped with a warning, and a
metric write fails the trial, naming the journal, rather than losing metrics silently.
"""
import json
import logging
import os
import shutil
import tempfile
import time
import uuid
from collections import deque
from pathlib import Path

from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag

log = logging.getLogger(__name__)

# Short, so a trial notices an outage in seconds, not minutes (MLflow's defaults: docs/tracking.md).
CLIENT_ENV = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
              "MLFLOW_HTTP_REQUEST_TIMEOUT": "20"}
RETRY_EVERY_S = 10.0   # while the server is away, writes go straight to the journal between tries
REMIND_EVERY_S = 60.0
MAX_ENTRIES = 100_000
MAX_ARTIFACT_BYTES = 256 * 1024 ** 2


def retry_every_s() -> float:
    """Seconds between tries while the server is away: PLATFORM_MLFLOW_RETRY_S, else RETRY_EVERY_S."""
    return float(os.environ.get("PLATFORM_MLFLOW_RETRY_S") or RETRY_EVERY_S)


class TrackingUnavailable(RuntimeError):
    """The tracking server stayed away longer than the trial can keep what it would log."""


LOCKED = "database is locked"  # SQLite's words for a store another process holds past its busy timeout


def outage(error: BaseException) -> str | None:
    """How the store is away, if `error` is an outage to wait out: "unreachable" (a connection
    that failed or timed out: the server is down) or "locked" (a SQLite store that another
    process holds longer than MLflow's busy timeout); None for a request the store refused."""
    import sqlite3

    import requests
    from mlflow.exceptions import MlflowException
    for _ in range(10):
        if error is None:
            return None
        if isinstance(error, (requests.exceptions.ConnectionError, requests.exceptions.Timeout, ConnectionError)):
            return "unreachable"
        if isinstance(error, (MlflowException, sqlite3.OperationalError)) and LOCKED in str(error):
            return "locked"
        if isinstance(error, MlflowException) and any(
                text in str(error) for text in ("Max retries exceeded", "Connection refused", "timed out",
                                                "Failed to establish a new connection", "Connection aborted")):
            return "unreachable"
        error = error.__cause__ or error.__context__
    return None


class BufferedClient:
    """MlflowClient's methods a trial uses; writes are journalled while the server is away."""

    def __init__(self, tracking_uri: str, folder: str | os.PathLike | None):
        for key, value in CLIENT_ENV.items():
            os.environ.setdefault(key, value)
        self.tracking_uri = tracking_uri
        self._client = MlflowClient(tracking_uri=tracking_uri)
        # made only when something must wait; outside a trial, a fresh temporary name
        self.folder = (Path(folder) if folder else Path(tempfile.gettempdir()) / f"trial-{uuid.uuid4().hex}") \
            / "mlflow-buffer"
        self.journal = self.folder / "journal.jsonl"
        # how many of the journal's first entries are logged: rewriting the journal after each
        # one made a long outage's flush quadratic
        self.progress = self.folder / "journal.sent"
        self.pending: deque[dict] = deque()  # the journal's entries after the first `sent`
        self.sent = 0
        self.kept_bytes = 0  # of the artifact copies that wait, counted as they come and go
        self.down_since: float | None = None
        self.away = "unreachable"  # or "locked by another process": a SQLite store held (see outage)
        self._next_try = 0.0
        self._reminded = 0.0
        self._reopen()

    def _reopen(self) -> None:
        """What an earlier attempt of this trial, on this node, kept and did not log."""
        if not self.journal.is_file():
            # a progress count without its journal (a crash while removing a drained one) would
            # skip the first entries of the next
            self.progress.unlink(missing_ok=True)
            return
        lines = self._journal_lines()
        self.sent = min(self._read_progress(), len(lines))
        self.pending = deque(json.loads(line) for line in lines[self.sent:])
        for entry in self.pending:
            if entry["kind"] == "artifact":  # journals of earlier versions have no size
                entry.setdefault("size", _size(entry["path"]))
                self.kept_bytes += entry["size"]
        if not self.pending:  # drained, but not yet removed when the attempt died
            self._compact()
            return
        log.warning("%d MLflow write(s) an earlier attempt could not make are waiting in %s",
                    len(self.pending), self.journal)

    def _journal_lines(self) -> list[str]:
        text = self.journal.read_bytes()
        whole = text.rfind(b"\n") + 1
        if whole < len(text):
            # the attempt died while appending its last entry (never kept, so its step is
            # trained and logged again); cut it, or the next entry would be appended to it
            log.warning("an incomplete last entry of %s dropped", self.journal)
            with self.journal.open("r+b") as journal:
                journal.truncate(whole)
        return [line for line in text[:whole].decode().splitlines() if line.strip()]

    def _read_progress(self) -> int:
        try:
            return int(self.progress.read_text())
        except (FileNotFoundError, ValueError):  # none yet (nothing logged): all of it waits
            return 0

    # ---- reads: flush what waits, then ask; wait for the server while it is away ----
    def _wait_for(self, what: str, call):
        limit = float(os.environ.get("PLATFORM_MLFLOW_WAIT_S", "3600"))
        started = time.monotonic()
        while True:
            try:
                if self._flush(force=True):
                    result = call()
                    self._back()
                    return result
            except Exception as error:
                if not outage(error):
                    raise
                self._went_away(error)
            if time.monotonic() - started > limit:
                raise TrackingUnavailable(
                    f"the MLflow tracking server {self.tracking_uri} has not answered for {limit:.0f} s "
                    f"(PLATFORM_MLFLOW_WAIT_S) while {what}; {len(self.pending)} write(s) wait in {self.journal}")
            self._remind(f"waiting for it before {what}")
            time.sleep(min(retry_every_s(), 2.0 + (time.monotonic() - started) / 10))

    def get_run(self, run_id):
        return self._wait_for("reading the run", lambda: self._client.get_run(run_id))

    def get_metric_history(self, run_id, key):
        return self._wait_for("reading metric history", lambda: self._client.get_metric_history(run_id, key))

    def search_runs(self, *args, **kwargs):
        return self._wait_for("searching runs", lambda: self._client.search_runs(*args, **kwargs))

    def create_run(self, *args, **kwargs):
        return self._wait_for("creating the trial's run", lambda: self._client.create_run(*args, **kwargs))

    # ---- writes ----
    def log_batch(self, run_id, metrics=(), params=(), tags=()):
        self._write({"kind": "batch", "run_id": run_id,
                     "metrics": [[m.key, m.value, m.timestamp, m.step] for m in metrics],
                     "params": [[p.key, p.value] for p in params], "tags": [[t.key, t.value] for t in tags]})

    def set_tag(self, run_id, key, value):
        self._write({"kind": "tag", "run_id": run_id, "key": key, "value": str(value)})

    def delete_tag(self, run_id, key):
        self._write({"kind": "delete_tag", "run_id": run_id, "key": key})

    def update_run(self, run_id, status=None, name=None):
        self._write({"kind": "update", "run_id": run_id, "status": status, "name": name})

    def set_terminated(self, run_id, status=None, end_time=None):
        self._write({"kind": "terminated", "run_id": run_id, "status": status,
                     "end_time": end_time or int(time.time() * 1000)})

    def log_artifact(self, run_id, local_path, artifact_path=None):
        self._write({"kind": "artifact", "run_id": run_id, "path": str(local_path), "artifact_path": artifact_path})

    def log_dict(self, run_id, dictionary, artifact_file):
        with tempfile.TemporaryDirectory(prefix="mlflow-dict-") as tmp:
            path = Path(tmp) / Path(artifact_file).name
            path.write_text(json.dumps(dictionary, indent=2))
            self.log_artifact(run_id, path, str(Path(artifact_file).parent) if "/" in artifact_file else None)

    def log_figure(self, run_id, figure, artifact_file):
        with tempfile.TemporaryDirectory(prefix="mlflow-figure-") as tmp:
            path = Path(tmp) / Path(artifact_file).name
            figure.savefig(path)
            self.log_artifact(run_id, path, str(Path(artifact_file).parent) if "/" in artifact_file else None)

    def _apply(self, entry: dict) -> None:
        kind, run_id = entry["kind"], entry["run_id"]
        if kind == "batch":
            self._client.log_batch(run_id, metrics=[Metric(*m) for m in entry["metrics"]],
                                   params=[Param(*p) for p in entry["params"]], tags=[RunTag(*t) for t in entry["tags"]])
        elif kind == "tag":
            self._client.set_tag(run_id, entry["key"], entry["value"])
        elif kind == "delete_tag":
            self._client.delete_tag(run_id, entry["key"])
        elif kind == "update":
            self._client.update_run(run_id, status=entry["status"], name=entry["name"])
        elif kind == "terminated":
            self._client.set_terminated(run_id, status=entry["status"], end_time=entry["end_time"])
        elif kind == "artifact":
            self._client.log_artifact(run_id, entry["path"], entry["artifact_path"])
        else:
            raise ValueError(f"unknown journal entry {kind!r} in {self.journal}")

    def _write(self, entry: dict) -> None:
        if self._flush():
            try:
                self._apply(entry)
                self._back()
                return
            except Exception as error:
                if not outage(error):
                    raise
                self._went_away(error)
        self._keep(entry)
        self._remind("kept for later")

    def _flush(self, force: bool = False) -> bool:
        """Log what waits, in order; True when nothing waits any more. Between tries while the
        server is away, False at once (no request): training does not wait on it."""
        if self.down_since is not None and not force and time.monotonic() < self._next_try:
            return False
        flushed = 0
        while self.pending:
            try:
                self._apply(self.pending[0])
            except Exception as error:
                if outage(error):
                    self._went_away(error)
                    return False
                # the server answered and refused it: trying again would fail again
                log.warning("MLflow refused a kept %s write for run %s, dropped: %s", self.pending[0]["kind"],
                            self.pending[0]["run_id"], (str(error).splitlines() or [""])[0][:300])
            self._logged(self.pending.popleft())
            flushed += 1
        if flushed:
            self._compact()
        self._back(flushed)
        return True

    def _logged(self, done: dict) -> None:
        """Count `done` as logged, before its copy goes: a crash in between leaves a stray copy
        (removed with the folder), not an entry whose artifact is missing."""
        self.sent += 1
        tmp = self.progress.with_name("journal.sent.tmp")
        tmp.write_text(f"{self.sent}\n")
        os.replace(tmp, self.progress)  # whole or not at all
        if done["kind"] == "artifact":
            self.kept_bytes -= done["size"]
            if Path(done["path"]).is_relative_to(self.folder):
                shutil.rmtree(Path(done["path"]).parent, ignore_errors=True)

    def _compact(self) -> None:
        """Everything is logged: the journal goes first (its progress count alone is ignored),
        then the folder with it and any stray copy."""
        self.journal.unlink(missing_ok=True)
        shutil.rmtree(self.folder, ignore_errors=True)
        self.sent = self.kept_bytes = 0

    def _back(self, flushed: int = 0) -> None:
        if self.down_since is not None:
            log.warning("the MLflow tracking server %s answers again after %.0f s; %d kept write(s) logged",
                        self.tracking_uri, time.monotonic() - self.down_since, flushed)
            self.down_since = None

    def _went_away(self, error: BaseException) -> None:
        self._next_try = time.monotonic() + retry_every_s()
        if self.down_since is None:
            self.down_since = self._reminded = time.monotonic()
            reason = (str(error).strip().splitlines() or [type(error).__name__])[0][:300]
            self.away = "locked by another process" if outage(error) == "locked" else "unreachable"
            log.warning("the MLflow tracking server %s is %s (%s); training goes on and what cannot be "
                        "logged is kept in %s until it answers", self.tracking_uri, self.away, reason, self.journal)

    def _remind(self, doing: str) -> None:
        if self.down_since is not None and time.monotonic() - self._reminded > REMIND_EVERY_S:
            self._reminded = time.monotonic()
            log.warning("the MLflow tracking server %s is still %s after %.0f s (%s; %d write(s) wait)",
                        self.tracking_uri, self.away, time.monotonic() - self.down_since, doing, len(self.pending))

    def _keep(self, entry: dict) -> None:
        if entry["kind"] == "artifact":
            entry = self._copy(entry)
            if entry is None:
                return
        elif len(self.pending) >= MAX_ENTRIES:
            raise TrackingUnavailable(f"the MLflow tracking server {self.tracking_uri} has been unreachable for "
                                      f"{time.monotonic() - (self.down_since or 0):.0f} s and {MAX_ENTRIES} writes "
                                      f"wait in {self.journal}; log them once it is back")
        self.folder.mkdir(parents=True, exist_ok=True)
        with self.journal.open("a") as journal:  # one line added, nothing rewritten
            journal.write(json.dumps(entry) + "\n")
        self.pending.append(entry)
        if entry["kind"] == "artifact":
            self.kept_bytes += entry["size"]

    def _copy(self, entry: dict) -> dict | None:
        """The artifact's entry, pointing at a copy beside the journal (the trial may overwrite
        or delete its file); None, saying so, past the bounds."""
        size = Path(entry["path"]).stat().st_size
        if self.kept_bytes + size > MAX_ARTIFACT_BYTES or len(self.pending) >= MAX_ENTRIES:
            log.warning("artifact %s of run %s dropped: %d MB of artifacts already wait for the tracking server",
                        entry["path"], entry["run_id"], self.kept_bytes // 1024 ** 2)
            return None
        copy = self.folder / uuid.uuid4().hex / Path(entry["path"]).name
        copy.parent.mkdir(parents=True)
        shutil.copy2(entry["path"], copy)
        return {**entry, "path": str(copy), "size": size}

    def drain(self, what: str) -> None:
        """Wait until everything kept is logged (a trial's end: nothing may stay behind)."""
        self._wait_for(what, lambda: None)

    def buffered_steps(self, run_id: str, key: str) -> list[int]:
        """Steps of `key` that wait in the journal for `run_id`."""
        return [m[3] for e in self.pending if e["kind"] == "batch" and e["run_id"] == run_id
                for m in e["metrics"] if m[0] == key]


def _size(path: str) -> int:
    try:
        return Path(path).stat().st_size
    except FileNotFoundError:  # a kept copy someone removed: logging it will say so
        return 0
