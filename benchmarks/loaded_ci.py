"""CI on a busy machine: several fresh clones of this repository run `.ci/run` at once, so
each suite has the others beside it as its heavy processes (each a whole suite: Ray
clusters, trials, MLflow servers), optionally with a torch matmul loop on top. Prints each
run's closing pytest line and exit status, and the machine's one-minute load sampled every
30 s over the whole time (bootstrap included).

    .venv/bin/python benchmarks/loaded_ci.py                 # three clones of HEAD
    .venv/bin/python benchmarks/loaded_ci.py --heavy-threads 2 --work /tmp/loaded

The clones, their logs and `load.log` go under --work (default: a new folder in the
system's temp dir, named at the start); nothing in this checkout changes. A run of three
takes about an hour on 2 cores (README, "Two commands").
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# a CPU-bound loop in torch, `threads` wide, until killed: the "other heavy process"
HEAVY = ("import sys, torch; torch.set_num_threads(int(sys.argv[1])); a = torch.rand(1024, 1024)\n"
         "while True: a = (a @ a).clamp_(-1, 1)")


def sample_load(path: Path, stop: threading.Event, every_s: float = 30.0) -> None:
    with path.open("a") as out:
        while not stop.is_set():
            one_minute = Path("/proc/loadavg").read_text().split()[0]
            out.write(f"{time.strftime('%H:%M:%S')} {one_minute}\n")
            out.flush()
            stop.wait(every_s)


def closing_line(log: Path) -> str:
    """pytest's last `=== ... in Ns ===` line, or the log's last line if it has none."""
    lines = log.read_text(errors="replace").splitlines()
    summary = [line for line in lines if line.startswith("=") and " in " in line]
    return (summary or lines or ["(no output)"])[-1].strip()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="fresh clones running .ci/run at once (default 3)")
    parser.add_argument("--heavy-threads", type=int, default=0,
                        help="also run a torch matmul loop this many threads wide (default: none)")
    parser.add_argument("--work", type=Path, help="where the clones and logs go (default: a new temp folder)")
    parser.add_argument("--source", type=Path, default=ROOT, help="the repository to clone (default: this one)")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="loaded-ci-"))
    work.mkdir(parents=True, exist_ok=True)
    commit = subprocess.run(["git", "-C", str(args.source), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True, check=True).stdout.strip()
    print(f"{args.runs} fresh clone(s) of {commit} in {work}, each running .ci/run"
          + (f", beside a {args.heavy_threads}-thread matmul loop" if args.heavy_threads else ""), flush=True)

    clones = []
    for n in range(1, args.runs + 1):
        clone = work / f"c{n}"
        if clone.exists():
            sys.exit(f"error: {clone} exists; give --work a new folder")
        subprocess.run(["git", "clone", "-q", str(args.source), str(clone)], check=True)
        clones.append(clone)

    stop = threading.Event()
    sampler = threading.Thread(target=sample_load, args=(work / "load.log", stop), daemon=True)
    sampler.start()
    # the work folder in its command line names this run's loop among others (`pgrep -f`)
    heavy = subprocess.Popen([sys.executable, "-c", HEAVY, str(args.heavy_threads), str(work)]) \
        if args.heavy_threads else None
    started = time.monotonic()
    env = {**os.environ, "CI": "true"}
    runs = [subprocess.Popen(["bash", ".ci/run"], cwd=clone, env=env, stdout=(work / f"ci{n}.log").open("w"),
                             stderr=subprocess.STDOUT) for n, clone in enumerate(clones, 1)]
    ended = {}
    try:
        while len(ended) < len(runs):
            for n, run in enumerate(runs, 1):
                if n not in ended and run.poll() is not None:
                    ended[n] = (run.returncode, time.monotonic() - started)
            time.sleep(1)
    finally:
        for run in runs:
            if run.poll() is None:
                run.terminate()
        if heavy is not None:
            heavy.kill()
        stop.set()

    for n in sorted(ended):
        code, seconds = ended[n]
        print(f"ci{n}: {closing_line(work / f'ci{n}.log')}   exit {code} after {seconds:.0f} s")
    loads = [float(line.split()[1]) for line in (work / "load.log").read_text().splitlines()]
    print(f"one-minute load, {len(loads)} samples every 30 s: mean {statistics.mean(loads):.1f}, "
          f"{min(loads):.1f} to {max(loads):.1f}, {sum(load >= 10 for load in loads)} of them 10 or more")
    return 0 if all(code == 0 for code, _ in ended.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
