"""Where a sweep's Optuna study lives, and the record that says so.

Left out (`storage.optuna`), the studies of a search space are kept in one journal file,
`<storage.root>/optuna/<space>.journal` (Optuna's JournalStorage with a file backend): it
appends to one file under a lock made of an atomic file operation, which holds on NFS,
where SQLite's locking does not, so two drivers (or a driver and optuna-dashboard) on a
cluster's shared storage do not break it. `storage.optuna` names a database instead (an
RDB URL, for a server every driver reaches).

Each sweep writes its own record, `<storage.root>/optuna/<sweep>.json`: the study's name,
the sweep's MLflow parent run, and where the study is (the journal's file name, or the
database URL without its credentials). `platform.report` opens the study from that record
alone; a tag on an MLflow run, which anyone who can write to the store can set, never
chooses what it opens.
"""
import json
import os
import re
from pathlib import Path

from data.spec import without_credentials

FOLDER = "optuna"
PLAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,199}")


class StudyRecordError(Exception):
    """A study the report cannot open as its sweep recorded it; the message says why in one sentence."""


def folder(root: str | os.PathLike) -> Path:
    return Path(root) / FOLDER


def journal_path(root: str | os.PathLike, space: str) -> Path:
    """The journal file of a search space's studies under the storage root."""
    return folder(root) / f"{space}.journal"


def storage(spec, url: str | None = None):
    """The Optuna storage of `spec`'s studies: its database (`url`, else storage.optuna), or its
    journal file."""
    import optuna
    from optuna.storages.journal import JournalFileBackend
    url = url or spec.storage.optuna
    if url:
        return optuna.storages.RDBStorage(url)
    path = journal_path(spec.storage.resolved_root(), spec.name)
    path.parent.mkdir(parents=True, exist_ok=True)
    return optuna.storages.JournalStorage(JournalFileBackend(str(path)))


def shown(spec) -> str:
    """Where the studies are, as it may be recorded and printed (no credentials)."""
    if spec.storage.optuna:
        return without_credentials(spec.storage.optuna)
    return str(journal_path(spec.storage.resolved_root(), spec.name))


def record(spec, study: str, parent_run_id: str) -> None:
    """Write the sweep's study record under the storage root (see the module's docstring)."""
    where = ({"database": without_credentials(spec.storage.optuna)} if spec.storage.optuna
             else {"journal": journal_path(".", spec.name).name})
    out = folder(spec.storage.resolved_root()) / f"{study}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(json.dumps({"study": study, "parent_run_id": parent_run_id, **where}, indent=1))
    os.replace(tmp, out)


def recorded(root: str | os.PathLike, study: str, parent_run_id: str, tagged: str | None = None):
    """(the Optuna storage, where it is in words) of the study `study` that the sweep with MLflow
    parent run `parent_run_id` recorded under `root`. StudyRecordError, one sentence, when the
    name is not a plain name, the record is missing or names another run, or `tagged` (the
    parent run's `optuna.storage` tag) points anywhere but where the record says."""
    import optuna
    from optuna.storages.journal import JournalFileBackend
    if not PLAIN_NAME.fullmatch(study or ""):
        raise StudyRecordError(f"the parent run's optuna.study tag {study[:80]!r} is not a sweep's name; "
                               "no study was opened.")
    path = folder(root) / f"{study}.json"
    try:
        kept = json.loads(path.read_text())
    except (OSError, ValueError):
        raise StudyRecordError(f"no record of study {study!r} under {folder(root)} ({path.name} is missing or "
                               "unreadable): give the sweep's storage root with --root.") from None
    if kept.get("parent_run_id") != parent_run_id or kept.get("study") != study:
        raise StudyRecordError(f"{path} records another sweep's study (parent run {kept.get('parent_run_id')}), "
                               f"not this one's ({parent_run_id}); no study was opened.")
    if kept.get("database"):
        where = kept["database"]
        opened = lambda: optuna.storages.RDBStorage(where)  # noqa: E731 - opened only once the tag is checked
    else:
        journal = folder(root) / Path(str(kept.get("journal", ""))).name
        where = str(journal)
        if not journal.is_file():
            raise StudyRecordError(f"the journal {journal} that study {study!r} was recorded in is not there; "
                                   "no study was opened.")
        opened = lambda: optuna.storages.JournalStorage(JournalFileBackend(where))  # noqa: E731
    if tagged is not None and tagged != where:
        raise StudyRecordError(f"the parent run's optuna.storage tag names {without_credentials(tagged)[:200]}, not "
                               f"{where}, where the sweep recorded its study: the tag is refused and nothing "
                               "is opened there.")
    return opened(), where
