"""Draw the study's figures for a sweep: python -m platform.report EXPERIMENT --out DIR

For the experiment's latest sweep (or `--parent RUN_ID`), from its trial runs in MLflow:
    fid_per_trial.png   best and final fid of every trial (the study's Figure 16), and its mean
                        opinion score beside it once the listening test has ratings
    loss_curves.png     loss/D, loss/G (and the Wasserstein estimate of WGANs) per trial (Figures 3, 6-11)
    samples.png         each trial's last sample grid (Figures 12-15)
written into --out and logged to the sweep's parent run under report/.
"""
import argparse
import logging
import math
import sys
import tempfile
from pathlib import Path

from platform import command, tracking

FIGURES = ("fid_per_trial.png", "loss_curves.png", "samples.png")


def _label(run) -> str:
    """What the study calls an experiment (paper.yaml's tag) or the model family, and the
    trial's number within its sweep."""
    name = run.data.tags.get("experiment") or run.data.params.get("model.family", "?")
    trial = run.data.tags.get("tune.trial_id", run.info.run_id[:8])
    return f"{name}\n{trial.rsplit('_', 1)[-1]}"


def _grid(n: int, columns: int = 3):
    cols = max(1, min(columns, n))
    return math.ceil(n / cols), cols


def fid_figure(trials: list[dict]):
    from matplotlib.figure import Figure
    fig = Figure(figsize=(max(5.0, 1.1 * len(trials) + 2), 4), layout="constrained")
    ax = fig.subplots()
    x = range(len(trials))
    best = [t["best_fid"] for t in trials]
    final = [t["final_fid"] for t in trials]
    ax.bar([i - 0.2 for i in x], best, width=0.4, label="best fid", color="tab:blue")
    ax.bar([i + 0.2 for i in x], final, width=0.4, label="final fid", color="tab:gray")
    for i, value in zip(x, best):
        ax.annotate(f"{value:.3g}", (i - 0.2, value), ha="center", va="bottom", fontsize="x-small")
    ax.set_xticks(list(x), [t["label"] for t in trials], fontsize="small")
    finite = [v for v in best + final if math.isfinite(v) and v > 0]
    if finite and max(finite) / min(finite) > 50:
        ax.set_yscale("log")
    ax.set_ylabel("fid (lower is better)")
    ax.set_title("FID per trial")
    ax.legend(fontsize="small", loc="upper left")
    rated = [(i, t) for i, t in zip(x, trials) if t.get("mos") is not None]
    if rated:  # the listening test's scores (platform.listening) on their own 1-5 axis
        mos = ax.twinx()
        for i, t in rated:
            low, high = t.get("mos_ci", (t["mos"], t["mos"]))
            mos.errorbar([i + 0.45], [t["mos"]], yerr=[[t["mos"] - low], [high - t["mos"]]], fmt="D",
                         color="tab:red", capsize=3)
            mos.annotate(f"{t['mos']:.2g} (n={t['mos_count']})", (i + 0.45, t["mos"]), xytext=(4, 0),
                         textcoords="offset points", fontsize="x-small", color="tab:red", va="center")
        mos.set_ylim(1, 5)
        mos.set_ylabel("mos, 95 % interval (higher is better)", color="tab:red")
    ax.grid(axis="y", alpha=0.3)
    return fig


def losses_figure(trials: list[dict]):
    from matplotlib.figure import Figure
    from trainables.figures import draw_losses
    rows, cols = _grid(len(trials))
    fig = Figure(figsize=(4.2 * cols, 3.2 * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax, trial in zip(axes.flat, trials):
        draw_losses(ax, trial["history"], f"{trial['label'].replace(chr(10), ' ')}: best fid {trial['best_fid']:.3g}")
    for ax in list(axes.flat)[len(trials):]:
        ax.set_axis_off()
    fig.suptitle("Loss evolution per trial")
    return fig


def samples_figure(trials: list[dict]):
    import matplotlib.image
    from matplotlib.figure import Figure
    images = [matplotlib.image.imread(t["samples"]) if t["samples"] else None for t in trials]
    aspect = next((image.shape[0] / image.shape[1] for image in images if image is not None), 0.8)
    rows, cols = _grid(len(trials), 2)
    fig = Figure(figsize=(6 * cols, (6 * aspect + 0.4) * rows + 0.5), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax, trial, image in zip(axes.flat, trials, images):
        ax.set_axis_off()
        ax.set_title(trial["label"].replace("\n", " "), fontsize="small")
        if image is not None:
            ax.imshow(image)
        else:
            ax.text(0.5, 0.5, "no sample grid logged", ha="center", va="center", transform=ax.transAxes)
    for ax in list(axes.flat)[len(trials):]:
        ax.set_axis_off()
    fig.suptitle("Generated mels: the last sample grid of each trial")
    return fig


def _mos(metrics: dict) -> dict:
    """The listening test's score of a trial run, when it has ratings."""
    if "mos" not in metrics:
        return {}
    mos = {"mos": metrics["mos"], "mos_count": int(metrics.get("mos/count", 0))}
    if "mos/ci95_low" in metrics:
        mos["mos_ci"] = (metrics["mos/ci95_low"], metrics["mos/ci95_high"])
    return mos


def _trials(client, runs: list, downloads: Path) -> list[dict]:
    from trainables.figures import LOSS_KEYS
    from trainables.mlflow_run import metric_history
    trials = []
    for run in runs:
        history = metric_history(client, run.info.run_id, ("fid",) + LOSS_KEYS)
        fids = [value for _, value in history.get("fid", [])]
        grids = sorted(a.path for a in client.list_artifacts(run.info.run_id, "samples") if a.path.endswith(".png"))
        samples = None
        if grids:
            samples = client.download_artifacts(run.info.run_id, grids[-1], str(downloads / run.info.run_id))
        trials.append({"label": _label(run), "history": history, "samples": samples,
                       "best_fid": min(fids, default=math.nan), "final_fid": fids[-1] if fids else math.nan,
                       **_mos(run.data.metrics)})
    return sorted(trials, key=lambda t: t["best_fid"] if math.isfinite(t["best_fid"]) else math.inf)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m platform.report", description=__doc__.split("\n\n")[0])
    parser.add_argument("experiment", help="the MLflow experiment (a search space's name)")
    parser.add_argument("--parent", help="the sweep's parent run id (default: the experiment's latest sweep)")
    parser.add_argument("--out", default="report", help="output folder (default: report)")
    command.add_tracking_option(parser)
    parser.add_argument("--no-log", action="store_true", help="do not log the figures to the parent run")
    args = parser.parse_args(argv)
    if Path(args.out).exists() and not Path(args.out).is_dir():
        return command.error(f"--out {args.out}: is a file, not a folder for the figures.")
    command.setup_logging(logging.WARNING)
    try:
        _, client = command.tracking_client(args.tracking_uri)
        experiment = tracking.get_experiment(client, args.experiment)
        if args.parent:
            parent = tracking.get_run(client, args.parent)
            if parent.info.experiment_id != experiment.experiment_id:
                raise tracking.RunLookupError(f"run {args.parent} is not in experiment {args.experiment!r}.")
        else:
            parent = tracking.latest_parent_run(client, args.experiment)
        runs = tracking.trial_runs(client, experiment.experiment_id, parent.info.run_id)
        if not runs:
            raise tracking.RunLookupError(f"sweep run {parent.info.run_id} ({parent.info.run_name}) has no trial runs.")
    except tracking.RunLookupError as error:
        return command.error(error)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="sweep-report-") as tmp:
        trials = _trials(client, runs, Path(tmp))
        for name, draw in zip(FIGURES, (fid_figure, losses_figure, samples_figure)):
            draw(trials).savefig(out / name, dpi=100)
    for t in trials:
        if t.get("mos") is not None:
            interval = " ({:.2f} to {:.2f})".format(*t["mos_ci"]) if "mos_ci" in t else ""
            print(f"{t['label'].replace(chr(10), ' ')}: best fid {t['best_fid']:.4g}, "
                  f"mos {t['mos']:.2f}{interval} from {t['mos_count']} ratings")
    for name in FIGURES:
        if not args.no_log:
            client.log_artifact(parent.info.run_id, str(out / name), "report")
        print(out / name)
    print(f"{len(trials)} trials of sweep {parent.info.run_name} ({parent.info.run_id})"
          + ("" if args.no_log else ", figures logged to it under report/"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
