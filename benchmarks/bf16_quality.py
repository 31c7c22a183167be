"""Do the four GANs train as well under bf16 autocast as in fp32? The check behind `training.precision: auto`.

    .venv/bin/python benchmarks/bf16_quality.py FOLDER [--work runs/bf16] [--seeds 0 1]
        [--families dcgan1 dcgan2 wgan_clip wgan_gp] [--width 32] [--batch 32]
        [--bce-steps 600] [--wgan-steps 150] [--samples 256]

FOLDER holds real music (benchmarks/real_corpus.py makes one from Debian's packages). The
script runs one sweep (`platform.sweep`, FIFO, every trial to its end, two at a time on the
CPU) of a grid of fixed experiments: each family in its study settings (those of
search_spaces/paper.yaml) x fp32 and bf16 (`training.precision`) x each seed
(`training.seed`), every one the same length. It then scores each trial's final generator
in the standard Inception FID (float32) on `--samples` images against real segments, with
real-vs-real at that count beside it, and prints per family the fp32 seeds, their spread
(max - min), the bf16 seeds and the verdict: bf16 trains as well when the mean of its seeds
lies within the fp32 seeds' range widened by that spread on each side (with two seeds, no
farther from fp32's mean than one seed of fp32 is from the other), or below it.
The WGANs take fewer generator steps: each makes 5 critic steps, so `--wgan-steps` 150 is
750 critic batches against the DCGANs' 600 (about the same compute).
"""
import argparse
import json
import math
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import platform  # noqa: E402,F401  (the repo's package, before torch)

os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

NAME = "bf16_quality"
# each family's study settings (search_spaces/paper.yaml's experiments)
FAMILIES = {
    "dcgan1": {"model": {"family": "dcgan1"}, "training": {}},
    "dcgan2": {"model": {"family": "dcgan2", "dropout_g": 0.5, "dropout_d": 0.3}, "training": {}},
    "wgan_clip": {"model": {"family": "wgan_clip", "critic_norm": "batch"},
                  "training": {"optimizer": "rmsprop", "critic_steps": 5, "clip_value": 0.01}},
    "wgan_gp": {"model": {"family": "wgan_gp", "critic_norm": "layer"},
                "training": {"critic_steps": 5, "gp_lambda": 10.0}},
}
PRECISIONS = ("fp32", "bf16")


def experiment(family: str, precision: str, seed: int) -> str:
    return f"{family}_{precision}_s{seed}"


def write_space(path: Path, folder: Path, work: Path, args) -> None:
    """The sweep's file: the grid as fixed experiments, one trial each, run to their ends."""
    experiments = {}
    for family in args.families:
        steps = args.wgan_steps if family.startswith("wgan") else args.bce_steps
        for precision in PRECISIONS:
            for seed in args.seeds:
                settings = FAMILIES[family]
                experiments[experiment(family, precision, seed)] = {
                    "model": settings["model"],
                    "training": {**settings["training"], "precision": precision, "seed": seed,
                                 "iterations": 4, "steps_per_iteration": math.ceil(steps / 4)}}
    space = {
        "name": NAME,
        "dataset": {"folders": [str(folder)], "segment": {"seconds": 5.0},
                    "mel": {"sample_rate": 22050, "n_mels": 64, "frames": 64}},
        "model": {"family": "dcgan1", "latent_dim": 100, "width": args.width, "image_size": 64},
        "training": {"batch_size": args.batch, "optimizer": "adam", "lr_g": 2.0e-4, "lr_d": 2.0e-4,
                     "beta1": 0.5, "beta2": 0.999, "checkpoint_every": 4},
        "experiments": experiments,
        # the in-loop fid only at the end (the score is Inception's, after), on few samples
        "evaluation": {"embedding": "inception-fast", "samples": 64, "every": 4},
        "tune": {"searcher": "random", "scheduler": {"name": "fifo"}, "num_samples": 1, "max_concurrent": 2,
                 "resources_per_trial": {"cpu": 1, "gpu": 0}},
        "storage": {"root": str(work / "runs")},
        "mlflow": {"tracking_uri": f"sqlite:///{work / 'mlflow.db'}"},
    }
    path.write_text(json.dumps(space, indent=1))  # JSON is YAML


def run(*args: str) -> None:
    print("$", " ".join(shlex.quote(a) for a in args), file=sys.stderr, flush=True)
    subprocess.run([sys.executable, *args], cwd=ROOT, check=True)


def scores(work: Path, samples: int) -> tuple[dict[str, float], float]:
    """{experiment: standard Inception FID of its final generator}, and real vs real."""
    import torch
    from mlflow import MlflowClient

    from data.dataset import read_manifest
    from platform.driver import tracking
    from trainables.checkpoint import generator_from
    from trainables.metrics import embeddings, fid
    from trainables.metrics.feature_stats import feature_stats
    from trainables.metrics.reference import real_stats, real_vs_real
    client = MlflowClient(f"sqlite:///{work / 'mlflow.db'}")
    _, runs = tracking.sweep_runs(client, NAME)
    dataset = next((work / "runs" / "datasets").iterdir())
    fingerprint = read_manifest(dataset)["fingerprint"]
    inception = embeddings.build("inception")
    real = real_stats(dataset, fingerprint, inception, samples, seed=0)
    baseline = real_vs_real(dataset, fingerprint, inception, samples, seed=0)["fid"]
    found = {}
    for run_ in runs:
        generator, cfg = generator_from(tracking.trial_checkpoint(client, run_, "last"))
        z = torch.randn(samples, cfg.model.latent_dim, generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            generator.eval()
            fake = feature_stats((generator(chunk) for chunk in z.split(64)), inception)
        name = run_.data.params.get("experiment", run_.info.run_name)
        found[name] = fid.fid(real, fake, inception.standardised)
        print(f"  {name}: {found[name]:.1f}", file=sys.stderr, flush=True)
    return found, baseline


def verdicts(found: dict[str, float], families, seeds) -> list[dict]:
    """Per family: fp32 and bf16 fids by seed, fp32's spread, and whether bf16 trains as well."""
    rows = []
    for family in families:
        fp32 = [found[experiment(family, "fp32", s)] for s in seeds if experiment(family, "fp32", s) in found]
        bf16 = [found[experiment(family, "bf16", s)] for s in seeds if experiment(family, "bf16", s) in found]
        if len(fp32) < 2 or not bf16:
            rows.append({"family": family, "fp32": fp32, "bf16": bf16, "verdict": "incomplete"})
            continue
        spread = max(fp32) - min(fp32)
        mean16 = sum(bf16) / len(bf16)
        ok = mean16 <= max(fp32) + spread and mean16 >= min(fp32) - spread or mean16 < min(fp32)
        rows.append({"family": family, "fp32": fp32, "bf16": bf16, "spread": spread,
                     "fp32_mean": sum(fp32) / len(fp32), "bf16_mean": mean16,
                     "verdict": "as well" if ok else "worse"})
    return rows


def table(rows: list[dict], baseline: float, samples: int) -> str:
    lines = [f"standard Inception FID of each final generator on {samples} images "
             f"(real vs real {baseline:.1f}); lower is better",
             "| family | fp32 by seed | fp32 spread | bf16 by seed | bf16 mean - fp32 mean | bf16 trains |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        seeds = lambda v: ", ".join(f"{x:.1f}" for x in v)  # noqa: E731
        if r["verdict"] == "incomplete":
            lines.append(f"| {r['family']} | {seeds(r['fp32'])} | - | {seeds(r['bf16'])} | - | incomplete |")
            continue
        lines.append(f"| {r['family']} | {seeds(r['fp32'])} | {r['spread']:.1f} | {seeds(r['bf16'])} | "
                     f"{r['bf16_mean'] - r['fp32_mean']:+.1f} | {r['verdict']} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "bf16")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--families", nargs="+", default=list(FAMILIES), choices=list(FAMILIES))
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--bce-steps", type=int, default=600)
    parser.add_argument("--wgan-steps", type=int, default=150)
    parser.add_argument("--samples", type=int, default=256)
    parser.add_argument("--score-only", action="store_true", help="score a finished --work folder")
    args = parser.parse_args()
    if len(args.seeds) < 2:
        parser.error("--seeds needs at least two: the verdict compares bf16 with fp32's seed-to-seed spread")
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    started = time.time()
    if not args.score_only:
        space = work / "bf16_quality.yaml"
        write_space(space, args.folder.resolve(), work, args)
        run("-m", "platform.sweep", str(space))
    found, baseline = scores(work, args.samples)
    rows = verdicts(found, args.families, args.seeds)
    print(table(rows, baseline, args.samples))
    print(f"({(time.time() - started) / 60:.0f} min; {', '.join(f'{k} {v:.1f}' for k, v in sorted(found.items()))})")
    (work / "verdicts.json").write_text(json.dumps({"baseline": baseline, "rows": rows, "fids": found}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
