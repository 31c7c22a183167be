"""The outage journal of trainables/mlflow_buffer.py at the scale of a long outage, without a
server: writes are kept while the tracking URI is a closed loopback port, then logged to a
store that answers. Linear work is checked by counting file I/O, not by timing it."""
import builtins
import io
import logging
import os
from pathlib import Path

import pytest
from mlflow import MlflowClient
from mlflow.entities import Metric

from tests.faults.mlflow_server import free_port
from trainables import mlflow_buffer
from trainables.mlflow_buffer import BufferedClient

WRITES = 20_000        # a long outage: an iteration's metrics every few seconds for a day
ARTIFACT_EVERY = 10    # and a small artifact (a sample grid) every tenth iteration


@pytest.fixture
def unreachable(monkeypatch) -> str:
    """A tracking URI nothing listens on, refused at once (no retries, no backoff)."""
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    return f"http://127.0.0.1:{free_port()}"


class FileWork:
    """Bytes written to, and stat calls on, files under `folder`; raises as soon as either passes
    its budget, so the quadratic journal fails in a second instead of writing gigabytes."""

    def __init__(self, monkeypatch, folder: Path, max_bytes: int, max_stats: int):
        self.folder, self.max_bytes, self.max_stats = str(folder), max_bytes, max_stats
        self.bytes = self.stats = 0
        opened, stat = io.open, os.stat

        def counted_open(file, mode="r", *args, **kwargs):
            handle = opened(file, mode, *args, **kwargs)
            return _Counted(handle, self) if self._watched(file) and set(mode) & set("wax+") else handle

        def counted_stat(path, *args, **kwargs):
            if self._watched(path):
                self.stats += 1
                assert self.stats <= self.max_stats, f"{self.stats} stat calls on kept files: not linear"
            return stat(path, *args, **kwargs)

        monkeypatch.setattr(io, "open", counted_open)  # pathlib's Path.open
        monkeypatch.setattr(builtins, "open", counted_open)
        monkeypatch.setattr(os, "stat", counted_stat)  # pathlib's Path.stat, shutil

    def _watched(self, path) -> bool:
        path = os.fspath(path) if isinstance(path, (str, os.PathLike)) else None
        return isinstance(path, str) and path.startswith(self.folder)

    def wrote(self, size: int) -> None:
        self.bytes += size
        assert self.bytes <= self.max_bytes, f"{self.bytes} bytes written to the journal: it is rewritten"


class _Counted:
    def __init__(self, handle, work: FileWork):
        self._handle, self._work = handle, work

    def write(self, data):
        self._work.wrote(len(data))
        return self._handle.write(data)

    def __enter__(self):
        self._handle.__enter__()
        return self

    def __exit__(self, *exc):
        return self._handle.__exit__(*exc)

    def __getattr__(self, name):
        return getattr(self._handle, name)


class Recorder:
    """A tracking server that takes everything, in memory (20,000 sqlite transactions take
    over a minute here); it reads each artifact as it is logged, as MLflow would."""

    def __init__(self):
        self.steps: list[int] = []
        self.artifacts: list[bytes] = []

    def log_batch(self, run_id, metrics=(), params=(), tags=()):
        self.steps += [m.step for m in metrics]

    def log_artifact(self, run_id, local_path, artifact_path=None):
        self.artifacts.append(Path(local_path).read_bytes())


def _keep_an_outage(client: BufferedClient, source: Path) -> None:
    for step in range(WRITES):
        client.log_batch("run", metrics=[Metric("loss/G", 0.5, 1_700_000_000_000 + step, step)])
        if step % ARTIFACT_EVERY == 0:
            source.write_bytes(b"grid %d" % step)
            client.log_artifact("run", source, "samples")


@pytest.mark.slow
def test_a_long_outage_is_kept_and_logged_in_linear_work(tmp_path, unreachable, monkeypatch):
    trial, source = tmp_path / "trial", tmp_path / "grid.png"
    artifacts = WRITES // ARTIFACT_EVERY
    # a kept metric write is about 100 bytes of JSON: 1 KB each is ample for an append-only
    # journal and its progress, where rewriting it whole after each entry is gigabytes
    work = FileWork(monkeypatch, trial, max_bytes=1024 * (WRITES + artifacts), max_stats=20 * artifacts)
    away = BufferedClient(unreachable, trial)
    _keep_an_outage(away, source)
    assert away.down_since is not None and len(away.pending) == WRITES + artifacts
    journal = trial / "mlflow-buffer" / "journal.jsonl"
    kept = journal.stat().st_size

    recorder = Recorder()  # the trial restarts with the server back: it logs what was kept
    monkeypatch.setattr(mlflow_buffer, "MlflowClient", lambda tracking_uri: recorder)
    back = BufferedClient(unreachable, trial)
    assert back.buffered_steps("run", "loss/G") == list(range(WRITES))
    back.drain("the test's end")

    assert recorder.steps == list(range(WRITES))  # every metric, once, in order
    assert recorder.artifacts == [b"grid %d" % step for step in range(0, WRITES, ARTIFACT_EVERY)]
    assert not back.pending and not journal.exists() and not (trial / "mlflow-buffer").exists()  # compacted
    # the journal written once, plus a few bytes of progress per logged entry
    assert work.bytes < kept + 16 * (WRITES + artifacts), (work.bytes, kept)


def test_a_crash_while_flushing_resends_nothing_logged(tmp_path, unreachable):
    """A trial that dies halfway through logging what it kept: its next attempt logs the rest,
    each step once (in the store the server would write)."""
    store = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    run_id = store.create_run(store.create_experiment("outage")).info.run_id
    away = BufferedClient(unreachable, tmp_path / "trial")
    for step in range(200):
        away.log_batch(run_id, metrics=[Metric("loss/G", float(step), 1_700_000_000_000, step)])

    class Died(BaseException):
        """The process killed between two entries (not an error the client handles)."""

    flushing = BufferedClient(store.tracking_uri, tmp_path / "trial")
    apply, applied = flushing._apply, []

    def dies_at_the_81st(entry):
        if len(applied) == 80:
            raise Died
        apply(entry)
        applied.append(entry)

    flushing._apply = dies_at_the_81st
    with pytest.raises(Died):
        flushing.drain("the test")

    again = BufferedClient(store.tracking_uri, tmp_path / "trial")
    assert again.buffered_steps(run_id, "loss/G") == list(range(80, 200))
    again.drain("the test")
    steps = [m.step for m in store.get_metric_history(run_id, "loss/G")]
    assert sorted(steps) == list(range(200))  # each once
    assert not (tmp_path / "trial" / "mlflow-buffer").exists()


def test_a_reopened_journal_counts_its_artifacts_against_the_cap(tmp_path, unreachable, monkeypatch, caplog):
    monkeypatch.setattr(mlflow_buffer, "MAX_ARTIFACT_BYTES", 1000)
    source = tmp_path / "grid.png"
    source.write_bytes(b"x" * 300)
    away = BufferedClient(unreachable, tmp_path / "trial")
    for _ in range(3):
        away.log_artifact("run", source)
    again = BufferedClient(unreachable, tmp_path / "trial")  # a restarted trial, the server still away
    with caplog.at_level(logging.WARNING, logger=mlflow_buffer.__name__):
        again.log_artifact("run", source)  # 900 bytes wait: 300 more would pass the cap
    assert len(again.pending) == 3
    assert "dropped" in caplog.text


def test_a_finished_run_is_found_with_the_end_its_last_attempt_kept(tmp_path, unreachable, monkeypatch):
    """A resumed sweep's check (trainables/mlflow_run.finished_trial_run): the attempt that
    finished the trial ended its run while the server was away, so the end is in its journal."""
    from mlflow.entities import RunStatus
    from trainables import mlflow_run

    store = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = store.create_experiment("resume")
    parent = store.create_run(experiment).info.run_id
    run_id = store.create_run(experiment, tags={"mlflow.parentRunId": parent, "tune.trial_id": "t1"}).info.run_id
    away = BufferedClient(unreachable, tmp_path / "trial")
    away.log_batch(run_id, metrics=[Metric("step", 12.0, 1_700_000_000_000, 12)])
    away.set_terminated(run_id, status=RunStatus.to_string(RunStatus.FINISHED))
    assert len(away.pending) == 2

    monkeypatch.setattr(mlflow_run, "_trial_dir", lambda: str(tmp_path / "trial"))
    target = mlflow_run.TrackingTarget(store.tracking_uri, experiment, parent)
    assert mlflow_run.finished_trial_run(target, "t1", steps=12) == {"step": 12.0}
    assert mlflow_run.finished_trial_run(target, "t1", steps=14) is None  # not all its steps
