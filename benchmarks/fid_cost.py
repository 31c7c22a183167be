"""What evaluation costs a trial, component by component, now and as it was, side by side.

    .venv/bin/python benchmarks/fid_cost.py [--files quickstart dcgan1 dcgan2 wgan_clip wgan_gp]
        [--train-steps 6] [--embed-images 32] [--device cpu|cuda] [--set section.key=value ...]

For each search-space file, at that file's own settings (model, batch, steps per iteration,
evaluation samples, embedding, KID, coverage, artifacts, scheduler), on this machine with
the file's CPU threads per trial:
- train s/it: the real GANTrainer, measured over --train-steps steps and scaled to the
  file's steps_per_iteration;
- per evaluation, by component: generate (the generator over the evaluation samples),
  embed, FID, KID, coverage, artifacts (the sample grid and audio clips of the evaluations
  that log them, averaged over a trial's evaluations);
- evaluations per full-length trial: as it was (every iteration) and now (where the
  file's scheduler reads fid, every `evaluation.every` and the last: EvaluationSchedule);
- the evaluation share of a full-length trial's time, as it was and now, and the speed-up
  of its evaluation.
"As it was": the embedding in float32, KID and coverage in float64 numpy with three new
products per KID subset (the code before the change, kept below as the baseline). "Now":
the embedding in the file's `evaluation.precision` (auto: bf16 on a CPU with AMX or
AVX512-BF16), KID and coverage in torch on the device, KID's kernels computed once.
Where the file evaluates more images than --embed-images, generate and embed are
measured on --embed-images and scaled (marked ~). FID, KID and coverage run on feature
rows of the real count and dimension. On a GPU (--device cuda, as benchmarks/gpu_check.py
runs it) "now" computes on the card and "before" KID and coverage on the host, as they were.
"""
import argparse
import dataclasses
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import platform  # noqa: E402,F401  (the repo's shim, before torch)

import numpy as np  # noqa: E402
import torch  # noqa: E402

from platform.spec import spaces, tune_space  # noqa: E402
from trainables import models  # noqa: E402
from trainables.artifacts import write_wav  # noqa: E402
from trainables.config import TrialConfig  # noqa: E402
from trainables.evaluation import precision  # noqa: E402
from trainables.figures import mel_figure  # noqa: E402
from trainables.metrics import embeddings, fid  # noqa: E402
from trainables.metrics.feature_stats import MAX_KEPT_ROWS, RunningStats  # noqa: E402
from trainables.metrics.coverage import density_coverage, real_radii  # noqa: E402
from trainables.metrics.kid import kernel_inception_distance  # noqa: E402
from trainables.trainer import GANTrainer  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
FILES = ("quickstart", "dcgan1", "dcgan2", "wgan_clip", "wgan_gp")
COMPONENTS = ("generate", "embed", "FID", "KID", "coverage", "artifacts")


# ---------- the previous behaviour, as the baseline ----------

def previous_kid(real: np.ndarray, fake: np.ndarray, subsets: int, subset_size: int, seed: int) -> float:
    """KID as computed before: float64 numpy, three new m x m kernel products per subset."""
    def kernel(a, b):
        k = a @ b.T / a.shape[1] + 1
        return k * k * k

    def mmd(x, y):
        m = len(x)
        kxx, kyy = kernel(x, x), kernel(y, y)
        return (kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (m * (m - 1)) - 2 * kernel(x, y).mean()
    real, fake = real.astype(np.float64), fake.astype(np.float64)
    m = min(len(real), len(fake), subset_size)
    if m == len(real) == len(fake):
        return float(mmd(fake, real))
    rng = np.random.default_rng(seed)
    return float(np.mean([mmd(fake[rng.choice(len(fake), m, replace=False)],
                              real[rng.choice(len(real), m, replace=False)]) for _ in range(subsets)]))


def previous_coverage(real: np.ndarray, fake: np.ndarray, k: int) -> None:
    """Density and coverage as before: float64 numpy distances (the real radii were kept)."""
    a, b = real.astype(np.float64), fake.astype(np.float64)
    squared = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T
    np.sqrt(np.maximum(squared, 0)) <= 1.0


# ---------- measuring ----------

def timed(fn) -> float:
    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    sync()
    started = time.perf_counter()
    fn()
    sync()  # a GPU's work is queued: count it when done
    return time.perf_counter() - started


def train_seconds(cfg: TrialConfig, steps: int, device: torch.device) -> float:
    """Seconds per Tune iteration of the file's training, from `steps` measured steps."""
    shape = cfg.model.shape
    images = (torch.rand(max(cfg.training.batch_size * 4, 256), 1, *shape) * 2 - 1).half().to(device)
    short = dataclasses.replace(cfg.training, steps_per_iteration=1, iterations=10**6, epochs=None)
    trainer = GANTrainer(dataclasses.replace(cfg, training=short), images, device)
    trainer.run_iteration()  # warm-up: first-call costs
    seconds = sum(timed(trainer.run_iteration) for _ in range(steps)) / steps
    return seconds * cfg.training.steps_per_iteration


def evaluation_seconds(cfg: TrialConfig, reduced: str, embed_images: int, artifacts_share: dict,
                       device: torch.device) -> dict:
    """{"now": {component: s}, "before": {component: s}} for one evaluation."""
    e = cfg.evaluation
    n = e.samples
    generator = models.build(cfg.model)[0].eval().to(device)
    measured = min(n, embed_images)
    z = torch.randn(measured, cfg.model.latent_dim, device=device)
    with torch.no_grad():
        generator(z[:4])
        gen = timed(lambda: [generator(c) for c in z.split(256)]) * n / measured
        images = generator(z)
    rows = {}
    for label, prec in (("before", "fp32"), ("now", reduced)):
        embedding = embeddings.build(e.embedding, e.inception_weights or None, precision=prec).to(device)
        embedding(images[:4])  # first-call costs
        rows[label] = {"generate": gen, "embed": timed(lambda: embedding(images)) * n / measured}
    dim = embedding.dim
    rng = np.random.default_rng(0)
    real_rows = np.abs(rng.normal(size=(min(n, MAX_KEPT_ROWS), dim))).astype(np.float32)
    fake_rows = np.abs(rng.normal(size=(min(n, MAX_KEPT_ROWS), dim)) * 1.1).astype(np.float32)
    real, fake = (RunningStats(dim) for _ in range(2))
    real.add(real_rows), fake.add(fake_rows)
    on_device = [torch.from_numpy(rows).to(device) for rows in (real_rows, fake_rows)]
    real, fake = real.result(), fake.result()
    for label in rows:  # the same Fréchet distance before and now
        rows[label]["FID"] = timed(lambda: fid.fid(real, fake, embedding.standardised))
    if e.kid:
        rows["before"]["KID"] = timed(lambda: previous_kid(real_rows, fake_rows, e.kid_subsets,
                                                           e.kid_subset_size, e.seed))
        rows["now"]["KID"] = timed(lambda: kernel_inception_distance(*on_device, e.kid_subsets,
                                                                     e.kid_subset_size, e.seed))
    if e.coverage:
        radii = real_radii(on_device[0], e.coverage_k)
        rows["before"]["coverage"] = timed(lambda: previous_coverage(real_rows, fake_rows, e.coverage_k))
        rows["now"]["coverage"] = timed(lambda: density_coverage(*on_device, e.coverage_k, radii))
    artifacts = artifact_seconds(cfg, images[:max(e.grid_images, e.audio_clips)].float().cpu().numpy()[:, 0])
    for label in rows:
        rows[label]["artifacts"] = artifacts * artifacts_share[label]
    return rows


def artifact_seconds(cfg: TrialConfig, images: np.ndarray) -> float:
    """One sample grid and the audio clips, as TrialArtifacts writes them."""
    from data.mel import scaling
    from data.spec import DatasetSpec, MelParams, SegmentParams
    bands, frames = cfg.model.shape
    spec = DatasetSpec(mel=MelParams(n_mels=bands, frames=frames), segment=SegmentParams())
    info = {"scaling": scaling(spec), "spec": {"mel": dataclasses.asdict(spec.mel),
                                               "segment": dataclasses.asdict(spec.segment)}}
    e = cfg.evaluation
    with tempfile.TemporaryDirectory() as tmp:
        def write():
            if e.grid_images:
                mel_figure(images[:e.grid_images], info, title="step 0").savefig(Path(tmp) / "grid.png", dpi=72)
            for i in range(e.audio_clips):
                write_wav(Path(tmp) / f"{i}.wav", images[i], info, e.griffin_lim_iters, "griffin-lim")
        write()  # first-call costs (librosa's filters, matplotlib's fonts)
        return timed(write)


def evaluations(spec, cfg: TrialConfig, now: bool) -> tuple[int, int]:
    """(evaluations, of which with sample artifacts) in a full-length trial."""
    iterations = cfg.training.iterations
    if not now:  # every iteration; samples at iteration 1, every artifacts_every and the last
        due = range(1, iterations + 1)
        samples = [i for i in due if i == 1 or i % cfg.evaluation.artifacts_every == 0 or i == iterations]
        return len(due), len(samples)
    schedule = tune_space.evaluation_schedule(spec, iterations)
    due = [i for i in range(1, iterations + 1) if schedule.due(i, i == iterations, cfg.evaluation, iterations)]
    samples = [k for k, i in enumerate(due, 1) if k == 1 or k % cfg.evaluation.artifacts_every == 0 or i == iterations]
    return len(due), len(samples)


def file_costs(name: str, train_steps: int, embed_images: int, device: torch.device = torch.device("cpu"),
               sets: dict | None = None) -> dict:
    """`sets`: {"section.key": value} changes to the file's settings, as `--set` makes them."""
    spec = spaces.load(ROOT / "search_spaces" / f"{name}.yaml", [f"{k}={v}" for k, v in (sets or {}).items()])
    if spec.training.epochs:  # the family files end on epochs: the iterations the driver resolves
        length = tune_space.SweepLengths.of_spec(spec, spec.dataset.synthetic.tracks * 12).longest
        spec = dataclasses.replace(spec, training=dataclasses.replace(spec.training, epochs=None, iterations=length))
    cfg = TrialConfig(model=spec.model, training=spec.training, evaluation=spec.evaluation)
    torch.set_num_threads(max(1, int(spec.tune.resources_per_trial.cpu)))
    counts = {label: evaluations(spec, cfg, label == "now") for label in ("before", "now")}
    share = {label: samples / evals for label, (evals, samples) in counts.items()}
    # only the Inception networks run under autocast; the others stay in float32
    reduced = precision(cfg.evaluation, device) if cfg.evaluation.embedding in embeddings.REDUCED_PRECISION else "fp32"
    train = train_seconds(cfg, train_steps, device)
    rows = evaluation_seconds(cfg, reduced, embed_images, share, device)
    return {"name": name, "cfg": cfg, "train": train, "rows": rows, "counts": counts, "precision": reduced,
            "scaled": cfg.evaluation.samples > embed_images, "threads": torch.get_num_threads(), "device": device}


def report(c: dict) -> None:
    cfg, iterations = c["cfg"], c["cfg"].training.iterations
    e = cfg.evaluation
    mark = "~" if c["scaled"] else " "
    print(f"\n{c['name']}: {cfg.model.family} width {cfg.model.width} {'x'.join(map(str, cfg.model.shape))}, "
          f"batch {cfg.training.batch_size} x {cfg.training.steps_per_iteration} steps, {iterations} iterations; "
          f"{e.samples} samples in {e.embedding}, kid {e.kid}, coverage {e.coverage}; {c['device']}, "
          f"{c['threads']} thread(s)")
    print(f"  train s/it {c['train']:.2f}")
    print(f"  {'':7s} {'precision':>9s} " + " ".join(f"{k:>10s}" for k in COMPONENTS)
          + f" {'eval s':>8s} {'evals':>6s} {'share':>7s}")
    total = {}
    for label in ("before", "now"):
        row = c["rows"][label]
        seconds = sum(row.values())
        evals = c["counts"][label][0]
        total[label] = evals * seconds
        share = total[label] / (total[label] + iterations * c["train"])
        prec = "fp32" if label == "before" else c["precision"]
        cells = " ".join((f"{row[k]:9.2f}{mark if k in ('generate', 'embed') else ' '}" if k in row
                          else f"{'-':>10s}") for k in COMPONENTS)
        print(f"  {label:7s} {prec:>9s} {cells} {seconds:8.2f} {evals:6d} {share:7.1%}")
    print(f"  evaluation per trial {total['before']:.0f} s -> {total['now']:.0f} s: "
          f"{total['before'] / total['now']:.1f}x less; per evaluation "
          f"{sum(c['rows']['before'].values()) / sum(c['rows']['now'].values()):.1f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", nargs="*", default=list(FILES), help="search_spaces/<name>.yaml to measure")
    parser.add_argument("--train-steps", type=int, default=6, help="training steps measured per file")
    parser.add_argument("--embed-images", type=int, default=32,
                        help="images generated and embedded per measurement; more are scaled from these")
    parser.add_argument("--device", default="cpu", help="cpu, or cuda for the trials' GPU")
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                        help="change a setting of every file measured, as platform.sweep's --set does")
    args = parser.parse_args()
    print(f"evaluation cost on {torch.get_num_threads()} CPU thread(s) available; ~: scaled from "
          f"{args.embed_images} images")
    for name in args.files:
        sets = dict(item.split("=", 1) for item in args.sets)
        report(file_costs(name, args.train_steps, args.embed_images, torch.device(args.device), sets))


if __name__ == "__main__":
    main()
