"""End-to-end dataset build speed: Ray Data on all cores vs a plain single-process loop.

    .venv/bin/python benchmarks/data_pipeline.py [--tracks 120] [--unique 40] [--seconds 180] [--format m4a]

Makes a folder of encoded synthetic techno once (cached under runs/bench/: `--unique`
different renders, copied up to `--tracks` files, since rendering and encoding take far
longer than decoding; every copy is decoded like any file), then, in one run,
builds Parquet from it twice with the same code (data/tracks.py: ffmpeg decode, pydub
segmenting, librosa mel, pyarrow writing): first a plain loop over the tracks in this
process, then `data.pipeline.build` through Ray Data with every core. Ray is started
before either is timed (a sweep has it running already) and its start-up is printed apart.
Prints segments per second of each, their ratio, and the share of task time per stage.
"""
import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
if not hasattr(sys.modules.get("platform"), "__path__"):  # load the repo's shim over the stdlib module
    sys.modules.pop("platform", None)

from data import pipeline, sources, synthetic, tracks  # noqa: E402
from data.spec import DatasetSpec  # noqa: E402


def make_folder(n: int, unique: int, seconds: float, fmt: str) -> Path:
    renders = ROOT / "runs" / "bench" / f"audio-{unique}x{seconds:g}s-{fmt}"
    folder = ROOT / "runs" / "bench" / f"audio-{n}of{unique}x{seconds:g}s-{fmt}"
    if (folder / ".complete").exists():
        return folder
    started = time.perf_counter()
    renders.mkdir(parents=True, exist_ok=True)
    for i in range(unique):
        path = renders / f"track{i:03d}.{fmt}"
        if not path.exists():
            tmp = path.with_name(f"tmp-{path.name}")
            synthetic.write_track(tmp, seed=1000 + i, seconds=seconds, sample_rate=44100, channels=2)
            os.replace(tmp, path)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        shutil.copyfile(renders / f"track{i % unique:03d}.{fmt}", folder / f"track{i:03d}.{fmt}")
    (folder / ".complete").write_text("")
    print(f"made {n} {fmt} tracks of {seconds:g} s in {time.perf_counter() - started:.1f} s at {folder}")
    return folder


def shares(stage_seconds: dict) -> str:
    total = sum(stage_seconds.values()) or 1.0
    return ", ".join(f"{stage} {100 * s / total:.0f}%" for stage, s in stage_seconds.items() if stage != "fetch")


def plain_loop(spec: DatasetSpec, out: Path) -> tuple[float, int, dict]:
    started = time.perf_counter()
    found, _ = sources.resolve(spec)
    parts = out / "segments"
    parts.mkdir(parents=True)
    summaries = [tracks.process(track, spec, parts) for track in found]
    seconds = time.perf_counter() - started
    stage_seconds = {s: sum(row[f"seconds_{s}"] for row in summaries) for s in tracks.STAGES}
    return seconds, sum(row["segments"] for row in summaries), stage_seconds


def process_pool(spec: DatasetSpec, out: Path, workers: int) -> tuple[float, int]:
    """Reference only, not the pipeline: the same per-track work on a plain process pool,
    to show what any parallel run can get from these cores while other jobs share them."""
    from concurrent.futures import ProcessPoolExecutor
    started = time.perf_counter()
    found, _ = sources.resolve(spec)
    parts = out / "segments"
    parts.mkdir(parents=True)
    with ProcessPoolExecutor(workers) as pool:
        summaries = list(pool.map(tracks.process, found, [spec] * len(found), [parts] * len(found)))
    return time.perf_counter() - started, sum(row["segments"] for row in summaries)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tracks", type=int, default=120)
    parser.add_argument("--unique", type=int, default=40, help="different renders among the tracks")
    parser.add_argument("--seconds", type=float, default=180.0)
    parser.add_argument("--format", default="m4a", choices=["mp3", "m4a", "aac", "wav", "flac", "ogg"])
    parser.add_argument("--no-pool-reference", action="store_true", help="skip the process-pool reference run")
    args = parser.parse_args()
    folder = make_folder(args.tracks, args.unique, args.seconds, args.format)
    print(f"load average before: {os.getloadavg()[0]:.1f} (other processes share these cores)")
    spec = DatasetSpec(folders=[str(folder)])

    import ray
    started = time.perf_counter()
    ray.init(address="local", include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": str(ROOT)}})
    cpus = int(ray.cluster_resources()["CPU"])
    print(f"ray.init: {time.perf_counter() - started:.1f} s ({cpus} CPUs), not counted below")

    with tempfile.TemporaryDirectory(dir=ROOT / "runs" / "bench") as scratch:
        loop_s, loop_segments, loop_stages = plain_loop(spec, Path(scratch) / "loop")
        print(f"plain loop, 1 process:   {loop_segments} segments in {loop_s:6.1f} s = "
              f"{loop_segments / loop_s:6.1f} segments/s")
        print(f"  task time by stage: {shares(loop_stages)}")

        started = time.perf_counter()
        built = pipeline.build(spec, Path(scratch) / "ray")
        ray_s = time.perf_counter() - started
        record = pipeline.read_manifest(built.path)["build"]
        stages = record["stage_seconds"]
        print(f"Ray Data, {cpus} CPUs:        {built.segments} segments in {ray_s:6.1f} s = "
              f"{built.segments / ray_s:6.1f} segments/s")
        print(f"  task time by stage: {shares(stages)}")
        task_s = sum(stages.values())
        print(f"  task time {task_s:.1f} s over {ray_s:.1f} s wall: {task_s / ray_s:.2f} tasks busy on average")
        first, last, done = record["ray_data_first_began_last_ended_done"]
        print(f"  fixed costs: first track began {first:.1f} s into the Ray Data run, the last ended at "
              f"{last:.1f} s, results back at {done:.1f} s; build total {ray_s:.1f} s")
        for line in built.stats.splitlines():
            if line.startswith("Operator") or "Remote wall time" in line:
                print("  ray:", line.strip())
        assert built.segments == loop_segments, "both sides must produce the same segments"
        if not args.no_pool_reference:
            pool_s, pool_segments = process_pool(spec, Path(scratch) / "pool", cpus)
            assert pool_segments == loop_segments
            print(f"reference, a {cpus}-process pool: {pool_segments} segments in {pool_s:6.1f} s = "
                  f"{pool_segments / pool_s:6.1f} segments/s, {loop_s / pool_s:.2f}x the loop "
                  "(the ceiling these shared cores allow now)")
        shutil.rmtree(scratch, ignore_errors=True)

    print(f"speed-up, Ray Data over the plain loop: {loop_s / ray_s:.2f}x "
          f"(load average after: {os.getloadavg()[0]:.1f})")
    ray.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
