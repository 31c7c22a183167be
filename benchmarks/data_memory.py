"""A node's memory with 1, 2 and 4 trials on one dataset, and each data path's throughput.

    .venv/bin/python benchmarks/data_memory.py [--segments 20000] [--trials 1 2 4] [--rounds 10]
    .venv/bin/python benchmarks/data_memory.py --driver [--segments 260000] [--samples 2048]

Paths, each trials on one node (Ray actors, the processes Tune runs trials in):
  private       today's before issue 21: every trial reads the Parquet into its own memory
                (load_mels, float16), as `trainables/train.py: load_images` did
  object-store  that array once in Ray's object store (as `tune.with_parameters` puts its
                arguments; loaded by one more process, counted with the trials); every
                trial gets it zero-copy on the node
  mmap          trainables/dataset_share.py: every trial maps one .npy beside the Parquet
  mmap-uint8    the same, quantised (training.data_dtype: uint8)
  none          trials that train the same networks on one batch of their own: the
                processes' own memory, subtracted as the baseline

Memory: the peak, while the trials take their images, read every one once and hold them,
of the summed proportional set size (PSS, from /proc/PID/smaps_rollup: a page shared by n
processes counts 1/n in each, so the sum is what the node holds) of the trials, this driver
and Ray's own processes; "data" is that minus the `none` path's with the same number of
trials. The trials hold the very arrays a trial does (load_mels, the object store's array,
data.node_cache.mel_array) in numpy, without importing torch, which 15 trial starts on 2
shared cores could not afford; a trial's own memory (torch, the trainer) is measured once,
apart, for the extrapolation.

Throughput, side by side: one process alternates the paths' trainers (same config, seed and
batch) iteration by iteration for `--rounds` rounds; the figure is each path's median img/s
and its ratio to `private` (today's in-memory tensor). Target: >= 0.95.

`--driver` measures the sweep's driver instead: its peak memory (the child's maximum RSS)
while it computes the reference statistics and the real-vs-real baseline of a dataset of
`--segments` (default: the study's 260k) at `--samples` (paper.yaml's 2048), side by side
with every row in memory, as the driver held them before it read only the rows it uses.
The embedding is `mel-stats` (no network), so what differs between the two is the data.

Last, the extrapolation to the study's 260k segments at 64 x 64 and at the HiFi-GAN preset's
80 x 432, from the bytes per segment measured here (both shapes are written, the second
small) and the per-trial baseline, against a g5.xlarge worker (16 GiB host, 24 GiB A10G;
4 trials at a quarter GPU, search_spaces/hifigan.yaml).
"""
import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from data.dataset import MANIFEST, SEGMENTS  # noqa: E402

PATHS = ("none", "private", "object-store", "mmap", "mmap-uint8")
GIB = 2 ** 30
STUDY_SEGMENTS = 260_000
WORKER = {"name": "g5.xlarge", "host_gib": 16, "gpu_gib": 24, "trials": 4}  # cluster.yaml, hifigan.yaml
CONFIG = {"model": {"width": 16, "latent_dim": 64}, "evaluation": {},
          "training": {"batch_size": 64, "iterations": 10_000, "steps_per_iteration": 10}}


def write_dataset(folder: Path, segments: int, shape: tuple[int, int], seed: int = 0) -> Path:
    """A dataset directory as the pipeline writes it, of uniform random images in [-1, 1]
    (memory and speed do not depend on the music), 1,000 segments a track."""
    rng = np.random.default_rng(seed)
    parts = folder / SEGMENTS
    parts.mkdir(parents=True)
    tensor = pa.fixed_shape_tensor(pa.float16(), list(shape))
    for track, start in enumerate(range(0, segments, 1000)):
        n = min(1000, segments - start)
        images = (rng.random((n, *shape), dtype=np.float32) * 2 - 1).astype(np.float16)
        table = pa.table({"track_id": pa.array([f"t{track:05d}"] * n), "segment_index": pa.array(np.arange(n, dtype=np.int32)),
                          "mel": pa.FixedShapeTensorArray.from_numpy_ndarray(images)})
        pq.write_table(table, parts / f"t{track:05d}.parquet")
    (folder / MANIFEST).write_text(json.dumps({"shape": list(shape), "counts": {"segments": segments},
                                               "scaling": {"db_min": -80.0, "db_max": 0.0}}))
    return folder


def pss_kb(pid: int) -> int:
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return 0  # gone
    return next(int(line.split()[1]) for line in text.splitlines() if line.startswith("Pss:"))


def ray_pids() -> list[int]:
    """This driver and the Ray processes it started (raylet holds the object store)."""
    import ray._private.worker as worker
    node = worker._global_node
    return [os.getpid()] + [info.process.pid for infos in node.all_processes.values() for info in infos]


def trial_images(path: str, kind: str, shared=None):
    """What one trial trains on, by path."""
    import torch
    from data.dataset import load_mels
    from trainables.dataset_share import shared_images
    cpu = torch.device("cpu")
    if kind == "private":
        return torch.from_numpy(load_mels(path)).unsqueeze(1)
    if kind == "object-store":
        import warnings
        with warnings.catch_warnings():  # read-only, zero-copy: nothing writes it
            warnings.simplefilter("ignore", UserWarning)
            return torch.from_numpy(shared).unsqueeze(1)
    return shared_images(path, None, cpu, dtype="uint8" if kind == "mmap-uint8" else "float16")


def make_trial_class():
    import ray

    @ray.remote(num_cpus=0)
    class Trial:
        """One trial's process."""

        def pid(self):
            return os.getpid()

        def load(self, path: str):
            """The dataset as this method's return value: Ray stores it in the object store,
            owned by the driver, as `tune.with_parameters` stores its arguments."""
            from data.dataset import load_mels
            return load_mels(path)

        def hold(self, path: str, kind: str, shared=None) -> int:
            """Take this path's images as a trial does and read every one once (an epoch's
            reads), then keep them until killed. numpy only: the same arrays a trial holds,
            without the seconds of importing torch that 2 shared cores cannot spare 15 times."""
            if kind == "none":
                return 0
            if kind == "private":
                from data.dataset import load_mels
                self.images = load_mels(path)
            elif kind == "object-store":
                self.images = shared
            else:
                from data.node_cache import mel_array
                self.images = mel_array(path, "uint8" if kind == "mmap-uint8" else "float16")
            for start in range(0, len(self.images), 1024):
                np.asarray(self.images[start:start + 1024], dtype=np.float32).sum()
            return len(self.images)

        def trial_process(self) -> int:
            """A trial's own memory without data: torch and the trainer, on one batch."""
            import torch
            from trainables.config import TrialConfig
            from trainables.trainer import GANTrainer
            torch.set_num_threads(1)
            images = torch.zeros(CONFIG["training"]["batch_size"], 1, 64, 64, dtype=torch.float16)
            self.trainer = GANTrainer(TrialConfig.from_tune(CONFIG), images, torch.device("cpu"))
            self.trainer.run_iteration()
            return pss_kb(os.getpid())

    return Trial


def measure_memory(path: Path, kind: str, trials: int, Trial) -> dict:
    """Peak summed PSS while `trials` trials of path `kind` run. One Ray session serves every
    measurement, the object store's last: it keeps the pages of a freed object resident,
    which would count against the paths measured after it."""
    import ray
    actors = [Trial.remote() for _ in range(trials)]
    pids = ray.get([a.pid.remote() for a in actors])
    shared = None
    if kind == "object-store":  # loaded by a process of its own, counted with the trials
        loader = Trial.remote()
        actors.append(loader)
        pids.append(ray.get(loader.pid.remote()))
        shared = loader.load.remote(str(path))
        ray.wait([shared], fetch_local=False)
    peak, parts, done = 0, {}, threading.Event()

    def sample():
        nonlocal peak, parts
        while not done.is_set():
            now = {"trials": sum(pss_kb(p) for p in pids), "driver": pss_kb(os.getpid()),
                   "ray": sum(pss_kb(p) for p in set(ray_pids()) - {os.getpid()})}
            if sum(now.values()) > peak:
                peak, parts = sum(now.values()), now
            time.sleep(0.2)
    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        ray.get([a.hold.remote(str(path), kind, shared) for a in actors[:trials]])
        time.sleep(1.0)  # a last few samples with every trial holding its images
    finally:
        done.set()
        sampler.join()
        for a in actors:
            ray.kill(a)
        del shared
    deadline = time.time() + 120  # the killed trials gone before the next measurement
    while any(Path(f"/proc/{p}").exists() for p in pids) and time.time() < deadline:
        time.sleep(0.2)
    return {"peak_mib": peak / 1024, "parts_mib": {k: v / 1024 for k, v in parts.items()}}


def measure_throughput(path: Path, rounds: int, kinds: list[str]) -> dict:
    """Each path's trainer, iterations alternating: median img/s per path."""
    import ray
    import torch
    from data.dataset import load_mels
    from trainables.config import TrialConfig
    from trainables.trainer import GANTrainer
    torch.set_num_threads(1)
    cfg = TrialConfig.from_tune(CONFIG)
    shared = ray.get(ray.put(load_mels(path))) if "object-store" in kinds else None
    trainers = {kind: GANTrainer(cfg, trial_images(str(path), kind, shared), torch.device("cpu")) for kind in kinds}
    for trainer in trainers.values():  # warm-up
        trainer.run_iteration()
    rates = {kind: [] for kind in kinds}
    for _ in range(rounds):
        for kind, trainer in trainers.items():
            rates[kind].append(trainer.run_iteration()["throughput/img_s"])
    return {kind: statistics.median(r) for kind, r in rates.items()}


def bytes_per_segment(folder: Path, shape: tuple[int, int], segments: int) -> dict:
    from data.node_cache import mel_array
    path = write_dataset(folder, segments, shape, seed=1)
    parquet = sum(p.stat().st_size for p in (path / SEGMENTS).glob("*.parquet"))
    return {"parquet": parquet / segments,
            "float16": os.path.getsize(mel_array(path, "float16").filename) / segments,
            "uint8": os.path.getsize(mel_array(path, "uint8").filename) / segments}


DRIVER = """
import resource, sys, torch
sys.path.insert(0, {root!r})
from data.dataset import load_mels
from trainables.metrics import embeddings, reference
path, samples, every = {path!r}, {samples}, {every}
images = torch.from_numpy(load_mels(path)).unsqueeze(1) if every else None
embedding = embeddings.build("mel-stats")
reference.real_stats(path, "bench", embedding, samples, images=images)
baseline = reference.real_vs_real(path, "bench", embedding, samples, images=images)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, baseline["count"])
"""


def measure_driver(segments: int, samples: int) -> None:
    """The driver's peak memory for the reference and real-vs-real, rows read as used vs every row."""
    import subprocess
    with tempfile.TemporaryDirectory(prefix="driver-memory-") as tmp:
        path = write_dataset(Path(tmp) / "ds", segments, (64, 64))
        peaks = {}
        for name, every in (("rows it uses", False), ("every row (before)", True)):
            shutil.rmtree(path / "fid_stats", ignore_errors=True)  # each path computes the statistics itself
            code = DRIVER.format(root=str(ROOT), path=str(path), samples=samples, every=every)
            out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
            kib, held_out = out.stdout.split()
            peaks[name] = int(kib) / 2 ** 20
            print(f"  {name}: peak {peaks[name]:.2f} GiB ({held_out} held out)", file=sys.stderr, flush=True)
    print(f"\nThe driver's reference and real-vs-real, {segments:,} segments of 64 x 64 float16 "
          f"({segments * 8192 / GIB:.2f} GiB of images), {samples} samples, mel-stats:")
    for name, gib in peaks.items():
        print(f"  {name:<20}peak {gib:6.2f} GiB")
    print(f"  ratio {peaks['rows it uses'] / peaks['every row (before)']:.3f}; target: at most 2 GiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--segments", type=int, default=None,
                        help="64 x 64 segments in the measured dataset (20000; with --driver 260000)")
    parser.add_argument("--trials", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--rounds", type=int, default=10, help="alternating iterations per path for throughput")
    parser.add_argument("--driver", action="store_true", help="measure the sweep driver's reference instead")
    parser.add_argument("--samples", type=int, default=2048, help="with --driver: evaluation.samples")
    args = parser.parse_args()
    if args.driver:
        return measure_driver(args.segments or STUDY_SEGMENTS, args.samples)
    args.segments = args.segments or 20_000
    import ray
    with tempfile.TemporaryDirectory(prefix="data-memory-") as tmp:
        tmp = Path(tmp)
        path = write_dataset(tmp / "ds", args.segments, (64, 64))
        per_segment = {"64x64": bytes_per_segment(tmp / "b64", (64, 64), 500),
                       "80x432": bytes_per_segment(tmp / "b80", (80, 432), 500)}
        from data.node_cache import mel_array
        mel_array(path, "float16"), mel_array(path, "uint8")  # written once, as by the node's first trial
        memory = {}
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
                 runtime_env={"env_vars": {"PYTHONPATH": str(ROOT)}})
        try:
            Trial = make_trial_class()
            order = [(k, n) for n in args.trials for k in PATHS if k != "object-store"] + \
                    [("object-store", n) for n in args.trials]
            for kind, n in order:
                memory[(kind, n)] = m = measure_memory(path, kind, n, Trial)
                print(f"  {n} trial(s), {kind}: peak {m['peak_mib']:.0f} MiB (" +
                      ", ".join(f"{k} {v:.0f}" for k, v in m["parts_mib"].items()) + ")", file=sys.stderr, flush=True)
            probe = Trial.remote()
            trial_mib = ray.get(probe.trial_process.remote()) / 1024
            ray.kill(probe)
            speed = measure_throughput(path, args.rounds, [k for k in PATHS if k != "none"])
        finally:
            ray.shutdown()
    report(args, memory, speed, per_segment, trial_mib)


def report(args, memory: dict, speed: dict, per_segment: dict, trial_mib: float) -> None:
    dataset_mib = args.segments * per_segment["64x64"]["float16"] / 2 ** 20
    print(f"\n{args.segments} segments of 64 x 64 ({dataset_mib:.0f} MiB in float16); trials {args.trials}; "
          f"{os.cpu_count()} cores")
    print("\nPeak node memory (MiB, summed PSS; data = above the `none` trials' own)")
    print(f"{'path':<14}" + "".join(f"{f'{n} trial(s)':>22}" for n in args.trials) + f"{'data 4/1':>10}")
    for kind in PATHS:
        cells, data = [], {}
        for n in args.trials:
            m = memory[(kind, n)]
            data[n] = m["peak_mib"] - memory[("none", n)]["peak_mib"]
            cells.append(f"{m['peak_mib']:8.0f} (data {data[n]:6.0f})" if kind != "none" else f"{m['peak_mib']:22.0f}")
        ratio = f"{data[args.trials[-1]] / data[args.trials[0]]:10.2f}" if kind != "none" and data[args.trials[0]] > 0 else ""
        print(f"{kind:<14}" + "".join(f"{c:>22}" for c in cells) + ratio)
    print("\nTotal node memory, most trials / 1 trial: " + ", ".join(
        f"{k} {memory[(k, args.trials[-1])]['peak_mib'] / memory[(k, args.trials[0])]['peak_mib']:.2f}" for k in PATHS))
    print("\nThroughput, one process alternating the paths (median img/s, ratio to private)")
    for kind, rate in speed.items():
        print(f"  {kind:<14}{rate:8.0f}  {rate / speed['private']:.3f}")
    per_trial_mib = trial_mib
    print(f"\nBytes per segment, measured: " + "; ".join(
        f"{shape}: Parquet {b['parquet']:.0f}, float16 {b['float16']:.0f}, uint8 {b['uint8']:.0f}"
        for shape, b in per_segment.items()))
    print(f"A trial process without data (torch, DCGAN 1 width 16, one iteration; PSS): {per_trial_mib:.0f} MiB "
          "(CPU; a CUDA context adds host memory on a GPU)")
    w = WORKER
    print(f"\nAt {STUDY_SEGMENTS:,} segments, {w['trials']} trials on one {w['name']} worker "
          f"({w['host_gib']} GiB host, {w['gpu_gib']} GiB GPU); GiB of data:")
    print(f"{'shape':<8}{'dtype':<9}{'one copy':>9}{'private x4':>11}{'host, shared':>14}  fits host?   on GPU (share 0.15)")
    for shape, b in per_segment.items():
        for dtype in ("float16", "uint8"):
            one = STUDY_SEGMENTS * b[dtype] / GIB
            host = one + w["trials"] * per_trial_mib / 1024
            on_gpu = one <= 0.15 * w["gpu_gib"]
            print(f"{shape:<8}{dtype:<9}{one:9.2f}{w['trials'] * one:11.2f}{host:14.2f}  "
                  f"{'yes' if host < w['host_gib'] else 'NO':<11}  "
                  f"{'copied to each trial' if on_gpu else 'no: pinned batches from the host copy'}")


if __name__ == "__main__":
    main()
