"""What `python -m platform.sweep SPACE --resume` needs to find a stopped sweep again.

Tune keeps the trials, the searcher and the scheduler in its experiment directory and
restores them (`Tuner.restore`). Beside them this module keeps the sweep's MLflow parent
run, in `platform-sweep.json`, so a resumed sweep goes on in the same parent run and each
trial finds its own child run again. The directory may be a local path or an s3:// or
gs:// URI (pyarrow file systems, as Tune uses).
"""
import dataclasses
import json
import posixpath
from dataclasses import asdict, dataclass

import pyarrow.fs as pafs

from data import remote
from data.spec import redacted
from platform.spec import study_storage
from trainables.mlflow_run import TrackingTarget

STATE_FILE = "platform-sweep.json"


class ResumeError(Exception):
    """No stopped sweep to resume where one was asked for; the message says what to do."""


@dataclass(frozen=True)
class StoppedSweep:
    path: str  # the Tune experiment directory, as Tuner.restore takes it
    target: TrackingTarget


def _fs(uri: str) -> tuple[pafs.FileSystem, str]:
    return pafs.FileSystem.from_uri(uri)


def _join(base: str, *parts: str) -> str:
    # a URI's query (s3://b/p?endpoint_override=...) must stay last: data.remote.join keeps it
    return remote.join(base, *parts) if remote.is_uri(base) else "/".join([base.rstrip("/"), *parts])


def resolved(spec) -> dict:
    """The spec as it was run, `--set`s applied and searched domains written out: what a
    resumed sweep must match (Tune restores its searcher and trials, not the file's edits).
    Secrets redacted (data.spec.redacted): the record is a file on shared storage, and a
    changed key or cookies file is no change to the search."""
    plain = asdict(dataclasses.replace(spec, search={}))
    plain["search"] = {path: str(domain) for path, domain in spec.search.items()}
    return redacted(json.loads(json.dumps(plain, default=str)))  # tuples as lists: as it reads back


def claim(spec, stamp: str) -> str:
    """A new sweep's name, `<spec name>-<stamp>`, made unique by claiming its folder under the
    Tune storage: a local folder is made exclusively (`os.mkdir`), so two sweeps started in the
    same second get `...-<stamp>` and `...-<stamp>-2`; sorted by name, the newest stays last.
    On an object store (no exclusive create) a name whose folder exists is skipped."""
    import os
    base = spec.storage.resolved_tune()
    for number in range(1, 10_000):
        name = f"{spec.name}-{stamp}" + (f"-{number}" if number > 1 else "")
        if remote.is_uri(base):
            fs, path = _fs(_join(base, name))
            if fs.get_file_info(path).type == pafs.FileType.NotFound:
                fs.create_dir(path, recursive=True)
                return name
            continue
        os.makedirs(base, exist_ok=True)
        try:
            os.mkdir(os.path.join(base, name))
            return name
        except FileExistsError:
            continue
    raise ResumeError(f"no free sweep name {spec.name}-{stamp}-N under {base}.")


def record(spec, name: str, target: TrackingTarget) -> None:
    """Write what --resume needs (STATE_FILE in the Tune experiment directory), and with the
    optuna searcher the study's record under the storage root (platform.spec.study_storage)."""
    if spec.tune.searcher == "optuna":
        study_storage.record(spec, name, target.parent_run_id)
    fs, path = _fs(_join(spec.storage.resolved_tune(), name))
    fs.create_dir(path, recursive=True)
    with fs.open_output_stream(posixpath.join(path, STATE_FILE)) as out:
        out.write(json.dumps({"sweep": spec.name, "tracking": asdict(target), "spec": resolved(spec)},
                             indent=1).encode())


def _flat(tree: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value and prefix != "search.":  # search keys are section.key already
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def differences(recorded: dict, current: dict) -> list[str]:
    """What changed from the recorded spec to this one, one phrase per key."""
    old, new = _flat(recorded), _flat(current)
    changed = []
    for key in sorted(old.keys() | new.keys()):
        if key not in new:
            changed.append(f"{key} was {old[key]} and is now left out")
        elif key not in old:
            changed.append(f"{key} is new ({new[key]})")
        elif old[key] != new[key]:
            changed.append(f"{key} was {old[key]}, now {new[key]}")
    return [phrase if len(phrase) <= 160 else phrase[:157] + "..." for phrase in changed]


def _read(experiment_path: str) -> dict | None:
    fs, path = _fs(experiment_path)
    try:
        with fs.open_input_stream(posixpath.join(path, STATE_FILE)) as stream:
            return json.loads(stream.read())
    except (FileNotFoundError, OSError):
        return None


def _order(rest: str) -> tuple:
    """`<stamp>` and `<stamp>-N` (claim's same-second names) in the order they were made."""
    stamp, _, number = rest.rpartition("-") if rest.count("-") >= 2 else (rest, "", "")
    return (stamp, int(number)) if number.isdigit() else (rest, 1)


def _latest(spec) -> str | None:
    """The newest `<name>-<time>` experiment of this spec under its Tune storage."""
    base = spec.storage.resolved_tune()
    fs, path = _fs(base)
    try:
        infos = fs.get_file_info(pafs.FileSelector(path, allow_not_found=True))
    except OSError:
        return None
    names = sorted((i.base_name for i in infos
                    if i.type == pafs.FileType.Directory and i.base_name.startswith(f"{spec.name}-")),
                   key=lambda name: _order(name[len(spec.name) + 1:]))
    return _join(base, names[-1]) if names else None


def find(spec, resume: str) -> StoppedSweep:
    """The sweep to continue: `resume` is a Tune experiment path, or "latest" for this spec's newest."""
    from ray import tune
    path = _latest(spec) if resume == "latest" else resume
    if path is None:
        raise ResumeError(f"--resume: no earlier sweep named {spec.name!r} under {spec.storage.resolved_tune()}; "
                          "run it without --resume first.")
    state = _read(path)
    if state is None or not tune.Tuner.can_restore(path):
        raise ResumeError(f"--resume: {path} is not a sweep this command started (no {STATE_FILE} or no Tune "
                          "experiment state there); give the directory Tune printed for it.")
    if state["sweep"] != spec.name:
        raise ResumeError(f"--resume: {path} is a sweep of {state['sweep']!r}, not of {spec.name!r}; "
                          "resume it with its own search-space file.")
    # older sweeps: unrecorded, or recorded with their secrets (redacted here as now)
    changed = differences(redacted(state["spec"]), resolved(spec)) if "spec" in state else []
    if changed:
        more = f" (and {len(changed) - 3} more)" if len(changed) > 3 else ""
        raise ResumeError(f"--resume: the search-space file changed since {path} started: {'; '.join(changed[:3])}"
                          f"{more}; Tune would go on with the search it recorded, so put the file back as it was, "
                          "or start a new sweep without --resume.")
    return StoppedSweep(path, TrackingTarget(**state["tracking"]))
