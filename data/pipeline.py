"""Build a dataset with Ray Data: tracks -> 5 s segments -> log-mel images -> Parquet.

Output, under `<root>/datasets/<fingerprint>/`:
  segments/         Parquet, one file per track and one row per segment: track_id, title,
                    source, segment_index, start_seconds, and `mel`, Arrow's fixed-shape
                    float16 tensor (n_mels, frames)
  failures.parquet  inputs that gave no segments: input, stage, reason
  manifest.json     the spec, its fingerprint, counts, the mel scaling, library versions
Downloads go to `<root>/downloads/`, one file per video id, shared by every dataset; at
most `download.per_host_concurrency` at once from one site, `download.concurrency` in all.
The failures' reasons name their cause (data/download.py); platform.prepare's report
ends with one line per cause and its fix ("YouTube asked to sign in for 37 videos: set
dataset.download.cookies ...").

Resumable: the build works in `<root>/datasets/.<fingerprint>.building/`, where each track's
Parquet file appears whole (written aside, then renamed) once the track is done. A re-run
skips the tracks whose file is there, and the directory is renamed to its final name only
when every track is done, so a stopped build never leaves something that looks finished.
One file per track is what makes that possible: Ray Data's `write_parquet` commits a whole
dataset at once and could not tell a re-run which tracks are finished.
"""
import fcntl
import json
import logging
import os
import shutil
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from data import mel, sources, tracks as track_work
from data.dataset import FAILURES, MANIFEST, SEGMENTS, DatasetError, check_parts, read_manifest
from data.spec import DatasetSpec, redacted

log = logging.getLogger(__name__)


class BuildError(Exception):
    """A build that produced no segment at all; the message says why in one sentence."""


@dataclass(frozen=True)
class BuiltDataset:
    path: Path
    fingerprint: str
    segments: int
    reused: bool
    tracks: int = 0
    failures: int = 0
    unreachable: int = 0        # URL inputs that failed because the network could not be reached
    processed_tracks: int = 0   # tracks this call decoded (a resumed build skips finished ones)
    resumed_tracks: int = 0     # tracks found finished by an earlier, stopped build
    stats: str = ""             # Ray Data's per-operator statistics of this build


def _write_failures(path: Path, failures: list[dict]) -> None:
    schema = pa.schema([("input", pa.string()), ("stage", pa.string()), ("reason", pa.string())])
    rows = [{k: f[k] for k in ("input", "stage", "reason")} for f in failures]
    tmp = path.with_name(path.name + ".tmp")
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), tmp)
    os.replace(tmp, path)


def _versions() -> dict:
    from importlib.metadata import version
    import librosa
    import ray
    return {"ray": ray.__version__, "librosa": librosa.__version__, "pydub": version("pydub"),
            "yt-dlp": version("yt-dlp"), "numpy": np.__version__, "pyarrow": pa.__version__}


def _blocks(n_tracks: int) -> int:
    """Several tracks to a task (up to 8): one track a task leaves Ray Data's per-task cost
    dominant (docs/data.md has the measurements). Each track still commits its own part, so
    resuming is unchanged; at least 4 tasks per CPU keep the last tasks short."""
    import ray
    cpus = int(ray.cluster_resources().get("CPU", 1)) if ray.is_initialized() else os.cpu_count() or 1
    cpus = max(1, cpus)
    per_task = max(1, min(8, n_tracks // (4 * cpus)))
    return -(-n_tracks // per_task)


def _site(url: str) -> str:
    """The site a URL fetches from, for the per-site cap: youtube.com for www.youtube.com,
    m.youtube.com and youtu.be alike."""
    import urllib.parse
    host = (urllib.parse.urlsplit(url).hostname or "").lower()
    site = ".".join(host.split(".")[-2:])
    return "youtube.com" if site == "youtu.be" else site


def _fetch_slots(sites: dict[str, int], concurrency: int, per_host: int) -> dict[str, int]:
    """Downloads at once per site: at most `per_host` each, `concurrency` in all (each site
    gets at least one), the sites with the most tracks served first."""
    slots, left = {}, concurrency
    for site, tracks in sorted(sites.items(), key=lambda item: -item[1]):
        slots[site] = max(1, min(per_host, tracks, left))
        left -= slots[site]
    return slots


def _run(pending: list[dict], spec: DatasetSpec, parts: Path, cache_dir: Path,
         here_only: bool = False) -> tuple[list[dict], str]:
    """Ray Data: fetch (URL tracks, a few at a time per site) -> decode, segment, mel,
    write per track. `here_only`: every task on this node, for a root the other nodes do
    not see."""
    import ray
    import ray.data
    placement = {}
    if here_only:
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
        placement["scheduling_strategy"] = NodeAffinitySchedulingStrategy(
            ray.get_runtime_context().get_node_id(), soft=False)
    urls = [t for t in pending if t["kind"] == "url"]
    if not urls:
        ds = ray.data.from_items(pending, override_num_blocks=_blocks(len(pending)))
    else:
        # One fetch stage per site, each with its own concurrency (Ray Data's TaskPoolStrategy):
        # YouTube asks parallel fetches from one address to sign in. Downloads wait on the
        # network, not the CPU: a small CPU share, and the concurrency is what bounds them.
        by_site: dict[str, list[dict]] = {}
        for track in urls:
            by_site.setdefault(_site(track["locator"]), []).append(track)
        slots = _fetch_slots({site: len(tracks) for site, tracks in by_site.items()},
                             spec.download.concurrency, spec.download.per_host_concurrency)
        fetch = {"fn_kwargs": {"spec": spec, "cache_dir": cache_dir}, "num_cpus": 0.25, **placement}
        stages = [ray.data.from_items(tracks, override_num_blocks=_blocks(len(tracks)))
                  .map(track_work.fetch, compute=ray.data.TaskPoolStrategy(size=slots[site]), **fetch)
                  for site, tracks in by_site.items()]
        others = [t for t in pending if t["kind"] != "url"]
        if others:  # through fetch too (it passes them on), so that every row has the same columns
            stages.append(ray.data.from_items(others, override_num_blocks=_blocks(len(others)))
                          .map(track_work.fetch, **fetch))
        ds = stages[0].union(*stages[1:]) if len(stages) > 1 else stages[0]
    ds = ds.map(track_work.process, fn_kwargs={"spec": spec, "parts_dir": parts}, **placement)
    rows = ds.take_all()
    return rows, ds.stats()


def _reuse(final: Path, fingerprint: str) -> BuiltDataset:
    """The finished build at `final`, its Parquet parts checked (footers): a damaged file is
    named now, before any trial opens it."""
    try:
        check_parts(final)
    except DatasetError as error:
        raise BuildError(str(error)) from None
    manifest = read_manifest(final)
    counts = manifest["counts"]
    return BuiltDataset(final, fingerprint, counts["segments"], reused=True, tracks=counts["tracks"],
                        failures=counts["failures"], unreachable=manifest.get("unreachable", 0))


def build(spec: DatasetSpec, root: str | os.PathLike, retry_failed: bool = False,
          here_only: bool = False) -> BuiltDataset:
    """Build the dataset for `spec` under `root`, reuse the finished build there, or finish
    a stopped one. Bad inputs land in the failures table; the build goes on without them.

    `retry_failed`: if the finished build has failures (say the network was down), try
    those inputs again; its finished tracks are kept, and it stays in place until the new
    build replaces it.

    `here_only`: run every Ray Data task on this node, because `root` is this node's own
    disk (a cluster whose datasets are published to storage.datasets).
    """
    fingerprint = spec.fingerprint
    datasets = Path(root) / "datasets"
    final = datasets / fingerprint
    if (final / MANIFEST).exists() and not (retry_failed and read_manifest(final)["counts"]["failures"]):
        return _reuse(final, fingerprint)
    locks = Path(root) / "locks"  # beside datasets/, which holds datasets only
    locks.mkdir(parents=True, exist_ok=True)
    with open(locks / f"{fingerprint}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a second build of the same data waits, then reuses
        if (final / MANIFEST).exists():
            if not (retry_failed and read_manifest(final)["counts"]["failures"]):
                return _reuse(final, fingerprint)
            _start_from(final, final.with_name(f".{fingerprint}.building") / SEGMENTS)
        return _build_locked(spec, fingerprint, Path(root), final, here_only)


def _start_from(final: Path, parts: Path) -> None:
    """Seed a new build with the finished tracks of `final` (hard links: no copy, no loss)."""
    parts.mkdir(parents=True, exist_ok=True)
    for part in (final / SEGMENTS).glob("*.parquet"):
        if not (parts / part.name).exists():
            os.link(part, parts / part.name)


def _build_locked(spec: DatasetSpec, fingerprint: str, root: Path, final: Path, here_only: bool) -> BuiltDataset:
    started = time.perf_counter()
    work = final.with_name(f".{fingerprint}.building")
    parts = work / SEGMENTS
    parts.mkdir(parents=True, exist_ok=True)
    for stale in parts.glob(".*.tmp"):  # a part cut off mid-write by a stop
        stale.unlink()

    all_tracks, failures = sources.resolve(spec)
    finished = {p.stem for p in parts.glob("*.parquet")}
    pending = [t for t in all_tracks if t["track_id"] not in finished]
    resumed = len(all_tracks) - len(pending)
    if resumed:
        log.info("Resuming a stopped build: %d of %d tracks are done already.", resumed, len(all_tracks))

    ray_started = time.time()
    summaries, stats = _run(pending, spec, parts, root / "downloads", here_only) if pending else ([], "")
    lost = [s["input"] for s in summaries if s["segments"] and not track_work.part_path(parts, s["track_id"]).exists()]
    if lost:  # written by a task on a node that does not see this root: never a silent partial dataset
        raise BuildError(f"{len(lost)} track(s) were processed but their parts are not under {parts} "
                         f"(first: {lost[0]}): the Ray tasks ran on a node that does not see {root}; make "
                         "storage.root a directory every node mounts, or set storage.datasets.")
    # when the first track began and the last ended, from the start of the Ray Data run:
    # the gaps at either end are fixed costs (executor and worker start-up, the last tasks)
    span = [round(min(s["began"] for s in summaries) - ray_started, 2),
            round(max(s["ended"] for s in summaries) - ray_started, 2),
            round(time.time() - ray_started, 2)] if summaries else []
    faults = [s for s in summaries if s["stage"] == track_work.ENVIRONMENT]
    if faults:  # the machine's fault, not the inputs': no partial set under the full fingerprint
        raise BuildError(_stopped(faults[0]["reason"], len(faults), work))
    failures += [sources.failure(s["input"], s["stage"], s["reason"], s["unreachable"])
                 for s in summaries if s["stage"]]
    for f in failures:
        log.warning("Skipped %s at the %s stage: %s.", f["input"], f["stage"], f["reason"])
    unreachable = sum(1 for f in failures if f["unreachable"])

    files = sorted(parts.glob("*.parquet"))
    n_segments = sum(pq.read_metadata(p).num_rows for p in files)
    if n_segments == 0:
        why = "the URL sources could not be reached and there is no other source" if unreachable else \
            "every input failed (see the reasons above)"
        raise BuildError(f"The dataset {fingerprint} has no segments: {why}.")
    if unreachable:
        log.warning("%d URL input(s) could not be reached (no network?); building from the other sources.",
                    unreachable)

    try:
        return _finish(spec, fingerprint, final, work, files, n_segments, failures, unreachable, summaries,
                       pending, resumed, started, span, stats)
    except OSError as error:
        if track_work.disk_full(error):
            raise BuildError(_stopped(f"disk full at {work}", 0, work)) from None
        raise


def _stopped(reason: str, tracks: int, work: Path) -> str:
    """The one sentence of a build stopped by its machine (a full disk)."""
    done = len(list((work / SEGMENTS).glob("*.parquet")))
    return (f"{reason}: the build stopped" + (f" with {tracks} track(s) not written" if tracks else "")
            + f"; the {done} finished track(s) are kept in {work} and the next run goes on from them "
            "once there is space.")


def _finish(spec: DatasetSpec, fingerprint: str, final: Path, work: Path, files: list[Path], n_segments: int,
            failures: list[dict], unreachable: int, summaries: list[dict], pending: list[dict], resumed: int,
            started: float, span: list, stats: str) -> BuiltDataset:
    """Write the failures table and the manifest (last), and move the build into place."""
    stage_seconds = {stage: round(sum(float(s[f"seconds_{stage}"]) for s in summaries), 3)
                     for stage in track_work.STAGES}
    _write_failures(work / FAILURES, failures)
    manifest = {
        "fingerprint": fingerprint,
        "spec": redacted(asdict(spec), "dataset."),  # no cookies path in a manifest
        "hop_length": spec.hop_length(),
        "shape": [spec.mel.n_mels, spec.mel.frames],
        "scaling": mel.scaling(spec),
        "counts": {"tracks": len(files), "segments": n_segments, "failures": len(failures)},
        "failures_by_stage": dict(Counter(f["stage"] for f in failures)),
        "unreachable": unreachable,  # failures for want of a network: --retry-failed once online
        "silent_segments_dropped": sum(int(s["silent"]) for s in summaries),
        "build": {"seconds": round(time.perf_counter() - started, 2), "processed_tracks": len(pending),
                  "resumed_tracks": resumed, "stage_seconds": stage_seconds,
                  "ray_data_first_began_last_ended_done": span},
        "versions": _versions(),
    }
    tmp = work / f"{MANIFEST}.tmp"
    tmp.write_text(json.dumps(manifest, indent=2))
    os.replace(tmp, work / MANIFEST)
    if final.exists():  # a build being retried, or an unfinished leftover without manifest
        old = final.with_name(f".{fingerprint}.replaced")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(final, old)
        os.replace(work, final)
        shutil.rmtree(old)
    else:
        os.replace(work, final)
    return BuiltDataset(final, fingerprint, n_segments, reused=False, tracks=len(files),
                        failures=len(failures), unreachable=unreachable, processed_tracks=len(pending),
                        resumed_tracks=resumed, stats=stats)
