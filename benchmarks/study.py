"""The study's six experiments (search_spaces/paper.yaml) on real music, at this machine's size.

    .venv/bin/python benchmarks/study.py FOLDER [--minutes 45] [--samples 512] [--work runs/study]
        [--out docs/study.md]

FOLDER holds real music (benchmarks/real_corpus.py makes one from Debian's packages). The
script builds the dataset with `platform.prepare`, then chooses the scale: the largest
network width and batch (the study's 64 and 64 first, halving) at which `paper.yaml`'s six
experiments, with the study's epochs and relative data sizes (all, 0.23, 0.115) kept, are
estimated to take at most `--minutes` on this machine (platform/driver/cost.py, from a
measured calibration), two trials at a time on the CPU. It runs `platform.sweep
search_spaces/paper.yaml` with those `--set` values, then scores each experiment's final
generator in the standard Inception FID on `--samples` images (real-vs-real beside it) and
writes `--out` with its figures in `<out without .md>/`: the loss evolution of each
experiment (the study's figures 3, 6, 7, 10, 11), generated mels (12-15), the FID bar chart
(16), and the ranks beside the study's.
"""
import argparse
import json
import math
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import platform  # noqa: E402,F401  (the repo's package, before torch)

os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

PAPER = ROOT / "search_spaces" / "paper.yaml"
# The study's order by FID, best first (its section 4); dcgan2_30k_7ep is not ranked there.
STUDY_RANK = {"dcgan1_all_7ep": 1, "dcgan2_60k_6ep": 2, "dcgan2_all_2ep": 3, "wgan_gp_60k_5ep": 4,
              "wgan_clip_60k_5ep": 5}
STUDY_FIGURE = {"dcgan1_all_7ep": "3 and 12", "dcgan2_all_2ep": "7", "dcgan2_60k_6ep": "6 and 13",
                "dcgan2_30k_7ep": "-", "wgan_gp_60k_5ep": "11 and 15", "wgan_clip_60k_5ep": "10 and 14"}
# (width, batch, epochs factor), first fit wins: the study's network and batch with more epochs,
# then the study's epochs with smaller networks and batches
SCALES = [(64, 64, k) for k in (16, 8, 4, 2, 1)] + [(64, 32, 1), (32, 32, 1), (32, 16, 1), (16, 16, 1), (16, 8, 1),
                                                   (8, 8, 1)]
POINTS = 12  # Tune iterations per experiment, so each loss curve has about this many points


def common_sets(folder: Path, work: Path) -> list[str]:
    return [f"dataset.folders=[{json.dumps(str(folder))}]", "dataset.synthetic=null",
            f"storage.root={json.dumps(str(work / 'runs'))}",
            f"mlflow.tracking_uri=sqlite:///{work / 'mlflow.db'}",
            "tune.resources_per_trial.gpu=0", "tune.resources_per_trial.cpu=1", "tune.max_concurrent=2",
            # in-loop fid: the default embedding, on few samples (CPU), at each trial's end only:
            # FIFO reads none and the page scores in Inception after, so the CPU trains instead
            "evaluation.embedding=inception-fast", "evaluation.samples=128", "evaluation.every=1000000"]


def run(*args: str) -> None:
    print("$", " ".join(shlex.quote(a) for a in args), file=sys.stderr, flush=True)
    subprocess.run([sys.executable, *args], cwd=ROOT, check=True)


def choose_scale(sets: list[str], minutes: float, factor: int | None = None) -> tuple[list[str], float, int]:
    """The first scale of SCALES estimated to fit `minutes`: its --set values, estimate and
    epoch factor. A corpus far smaller than the study's trains for little time at the
    study's epochs, so the budget goes first to more epochs (all experiments' alike, their
    ratios kept), then, where even the study's epochs do not fit, to smaller networks.
    `factor` given: only scales with that epoch factor are tried."""
    from platform.driver import cost
    from platform.driver.calibration import Calibration
    from platform.spec import spaces
    base = spaces.read(str(PAPER), sets).spec
    for width, batch, times in SCALES:
        if factor is not None and times != factor:
            continue
        scaled = sets + [f"model.width={width}", f"training.batch_size={batch}"] + [
            f"experiments.{name}.training.epochs={e.training.epochs * times:g}"
            for name, e in base.experiments.items() if times > 1]
        spec = spaces.read(str(PAPER), scaled).spec
        segments, _ = cost.dataset_segments(spec)
        calibration = Calibration(spec.storage.resolved_root(), "cpu", 1)
        seconds, plans = 0.0, cost.plan(spec, segments)
        if any(p.steps == 0 for p in plans):
            continue  # a batch larger than an experiment's rows: nothing to train
        for p in plans:
            step = calibration.step_seconds(p.model, p.training)
            sample = calibration.sample_seconds(spec.evaluation, spec.dataset)
            seconds += p.steps * step + len(p.evaluated) * sample * spec.evaluation.samples
        wall = seconds / cost.concurrent_trials(spec) / 60
        print(f"  width {width}, batch {batch}, epochs x{times}: about {wall:.0f} min", file=sys.stderr, flush=True)
        if wall <= minutes:
            break
    return scaled + curve_points(plans), wall, times


def curve_points(plans) -> list[str]:
    """Each experiment's steps_per_iteration, so its losses are logged about POINTS times
    (losses are logged once per Tune iteration, as means over its steps)."""
    return [f"experiments.{p.name}.training.steps_per_iteration={max(1, math.ceil(p.steps / POINTS))}"
            for p in plans]


def final_scores(work: Path, samples: int) -> tuple[list[dict], dict, str]:
    """Each experiment's trial: its name, steps, loss history, standard Inception FID of its
    final generator; the real-vs-real baseline at the same count; the dataset's path."""
    import torch
    from mlflow import MlflowClient

    from data.dataset import read_manifest
    from platform.driver import tracking
    from trainables.checkpoint import generator_from
    from trainables.metrics import embeddings, fid
    from trainables.metrics.feature_stats import feature_stats
    from trainables.metrics.reference import real_stats, real_vs_real
    client = MlflowClient(f"sqlite:///{work / 'mlflow.db'}")
    parent, runs = tracking.sweep_runs(client, "paper")
    dataset = next((work / "runs" / "datasets").iterdir())
    fingerprint = read_manifest(dataset)["fingerprint"]
    inception = embeddings.build("inception")
    real = real_stats(dataset, fingerprint, inception, samples, seed=0)
    baseline = real_vs_real(dataset, fingerprint, inception, samples, seed=0)
    results = []
    for run in runs:
        state, which = tracking.end_checkpoint(client, run)  # a trial stopped before its end: its best
        generator, cfg = generator_from(state)
        z = torch.randn(samples, cfg.model.latent_dim, generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            generator.eval()
            fake = feature_stats((generator(chunk) for chunk in z.split(64)), inception)
            shown = generator(z[:8]).squeeze(1).float().numpy()
        history = {key: [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, key)]
                   for key in ("loss/D", "loss/G", "wasserstein")}
        results.append({"experiment": run.data.params.get("experiment", run.info.run_name),
                        "fid": fid.fid(real, fake, inception.standardised), "images": shown,
                        "steps": max((s for s, _ in history["loss/G"]), default=0), "history": history,
                        "in_loop": run.data.metrics.get("best/fid", math.nan), "checkpoint": which})
    return sorted(results, key=lambda r: r["fid"]), baseline, str(dataset)


def figures(results: list[dict], baseline: dict, dataset: str, folder: Path) -> None:
    from matplotlib.figure import Figure

    from data.dataset import read_manifest
    from trainables.figures import draw_losses, mel_figure
    folder.mkdir(parents=True, exist_ok=True)
    info = read_manifest(dataset)
    for r in results:
        fig = Figure(figsize=(6, 3), layout="constrained")
        draw_losses(fig.subplots(), r["history"], title=f"{r['experiment']}: losses")
        fig.savefig(folder / f"losses_{r['experiment']}.png", dpi=110)
        mel_figure(r["images"], info, columns=4, title=r["experiment"]).savefig(
            folder / f"samples_{r['experiment']}.png", dpi=90)
    fig = Figure(figsize=(6.5, 3.2), layout="constrained")
    ax = fig.subplots()
    names = [r["experiment"] for r in results]
    ax.barh(names[::-1], [r["fid"] for r in results][::-1], color="#4c72b0")
    ax.axvline(baseline["fid"], color="black", linestyle="--", label=f"real vs real ({baseline['fid']:.1f})")
    ax.set_xlabel("Inception FID (lower is better)")
    ax.legend(loc="lower right", fontsize="small")
    fig.savefig(folder / "fid_bars.png", dpi=110)


def write_page(out: Path, command: str, scale: list[str], estimate: float, minutes: float,
               results: list[dict], baseline: dict, dataset: str, samples: int, corpus: str,
               factor: int = 1) -> None:
    from data.dataset import read_manifest
    segments = read_manifest(dataset)["counts"]["segments"]
    figs = out.with_suffix("").name
    ranked = [r for r in results if r["experiment"] in STUDY_RANK]
    ours = {r["experiment"]: i + 1 for i, r in enumerate(ranked)}
    lines = [
        "# The study reproduced at this machine's size", "",
        f"Measured by `{command}` ({minutes:.0f} min of wall; estimated {estimate:.0f} before the run).", "",
        f"Data: {corpus}: {segments:,} segments of 5 s (the study: 260,000), so each experiment's data is "
        f"{segments / 260_000:.4f} of the study's, with its relative data sizes kept and "
        + ("its epochs" if factor == 1 else f"{factor} times its epochs (their ratios kept)") + ". Scale: "
        + ", ".join(f"`{s}`" for s in scale) + ". In-loop fid: `inception-fast` on 128 samples; the scores "
        f"below: the standard Inception FID of each final generator on {samples} images against "
        f"{samples} real ones.", "",
        f"Real vs real (held-out real segments against the reference, {baseline['count']} of them): "
        f"**{baseline['fid']:.1f}**.", "",
        "| experiment | Inception FID | x real-vs-real | generator steps | our rank | the study's rank | study's figures |",
        "|---|---|---|---|---|---|---|"]
    for r in results:
        early = "" if r.get("checkpoint", "last") == "last" else " (stopped early: its best checkpoint)"
        lines.append(f"| {r['experiment']}{early} | {r['fid']:.1f} | {r['fid'] / baseline['fid']:.2f} | {r['steps']} | "
                     f"{ours.get(r['experiment'], '-')} | {STUDY_RANK.get(r['experiment'], 'not ranked')} | "
                     f"{STUDY_FIGURE.get(r['experiment'], '-')} |")
    agree = [e for e in STUDY_RANK if ours.get(e) == STUDY_RANK[e]]
    lines += ["", f"Same rank as the study for {len(agree)} of {len(STUDY_RANK)} ranked experiments"
              + (f" ({', '.join(agree)})." if agree else "."), "",
              "![FID by experiment](" + figs + "/fid_bars.png)", ""]
    for r in results:
        lines += [f"## {r['experiment']}", "",
                  f"![losses]({figs}/losses_{r['experiment']}.png) ![samples]({figs}/samples_{r['experiment']}.png)", ""]
    out.write_text("\n".join(lines) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--minutes", type=float, default=45)
    parser.add_argument("--samples", type=int, default=512)
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "study")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "study.md")
    parser.add_argument("--epochs-factor", type=int, choices=sorted({k for _, _, k in SCALES}),
                        help="train every experiment this many times the study's epochs (default: the most "
                             "that fits --minutes; 1 is the study's own)")
    args = parser.parse_args()
    command = "benchmarks/study.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    started = time.time()
    sets = common_sets(args.folder.resolve(), args.work.resolve())
    set_args = [a for s in sets for a in ("--set", s)]
    run("-m", "platform.prepare", str(PAPER), *set_args)
    scale, estimate, factor = choose_scale(sets, args.minutes, args.epochs_factor)
    extra = scale[len(sets):]
    print(f"scale: {', '.join(extra)}; estimated {estimate:.0f} min", file=sys.stderr, flush=True)
    run("-m", "platform.sweep", str(PAPER), *[a for s in scale for a in ("--set", s)])
    results, baseline, dataset = final_scores(args.work.resolve(), args.samples)
    figures(results, baseline, dataset, args.out.with_suffix(""))
    corpus = args.folder.name
    manifest = args.folder / "manifest.csv"
    if manifest.exists():
        packages = sorted({row.split(",")[1] for row in manifest.read_text().splitlines()[1:] if row})
        corpus = f"`{args.folder.name}` from Debian's {', '.join(packages)} (benchmarks/real_corpus.py)"
    write_page(args.out, command, extra, estimate, (time.time() - started) / 60, results, baseline, dataset,
               args.samples, corpus, factor)
    for r in results:
        print(f"{r['experiment']:<20} Inception FID {r['fid']:8.1f}  steps {r['steps']}  ({r['checkpoint']} checkpoint)")
    print(f"real vs real {baseline['fid']:.1f}; wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
