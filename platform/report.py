"""A sweep's report: python -m platform.report EXPERIMENT [--out DIR] [--format png|svg|pdf] [--top N]

For the experiment's latest sweep (or `--parent RUN_ID`), from its trial runs in MLflow:
    report.html          the comparison page: every trial in a table sortable by score and by
                         each searched value, with its status and where it stopped; the fid
                         curves with the real-vs-real baseline; the best trials' latest sample
                         grids with their audio playable beside them; parameter importance
                         (Optuna's, on the sweep's stored study); score against training speed.
                         Self-contained: images, audio and charts are inside it.
    fid_per_trial.FMT    each trial's score (its best fid, with its step) and final fid (the
                         study's Figure 16), trials the scheduler stopped marked, the baseline drawn
    fid_curves.FMT       fid against step for the best trials, one shared axis, the baseline drawn
    loss_curves.FMT      loss/D, loss/G (and the Wasserstein estimate of WGANs) per trial (Figures 3, 6-11)
    samples.FMT          the best trials' latest sample grids (Figures 12-15)
    score_vs_speed.FMT   every trial's score against its training throughput
    importance.FMT       the searched values' importance for the score (with tune.searcher: optuna)
written into --out and logged to the sweep's parent run under report/.

A trial's score is its best evaluated fid, the one verdict of the sweep's summary, results.csv
and platform.generate --experiment. Scales to any number of trials: the `--top` best are
drawn one by one (their media downloaded), the rest are summarised and listed in the table.
"""
import argparse
import logging
import math
import statistics
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from platform.driver import command, tracking

FIGURES = ("fid_per_trial", "fid_curves", "loss_curves", "samples", "score_vs_speed")
IMPORTANCE = "importance"
PAGE = "report.html"
FORMATS = ("png", "svg", "pdf")
TOP = 12      # trials drawn one by one, with their histories, sample grids and audio
TOP_MAX = 48  # past this a figure stops being readable at column width
TEXT_WIDTH_IN = 7.0    # a two-column paper's text width; labels stay readable at it
COLUMN_WIDTH_IN = 3.4  # one column
PNG_DPI = 200
# params that differ between trials but are bookkeeping, not settings
NOT_SETTINGS = ("dataset.segments",)


def _progress(message: str) -> None:
    print(f"report: {message}", file=sys.stderr, flush=True)


# ---------- the trials, from MLflow ----------

def _score(client, run) -> float:
    """The trial's best evaluated fid (inf when it has none)."""
    value = tracking.best_fid(client, run)
    return value if math.isfinite(value) else math.inf


def _varied(runs: list) -> list[str]:
    """The params whose values differ between trials: what the sweep searched (or its
    experiments set), in the order the trials' names give them."""
    keys = sorted({key for run in runs for key in run.data.params} - set(NOT_SETTINGS))
    return [key for key in keys if len({run.data.params.get(key) for run in runs}) > 1]


def _mos(metrics: dict) -> dict:
    """The listening test's score of a trial run, when it has ratings."""
    if "mos" not in metrics:
        return {}
    mos = {"mos": metrics["mos"], "mos_count": int(metrics.get("mos/count", 0))}
    if "mos/ci95_low" in metrics:
        mos["mos_ci"] = (metrics["mos/ci95_low"], metrics["mos/ci95_high"])
    return mos


def summaries(client, runs: list) -> list[dict]:
    """One small dict per trial, best first, from what the run search returned (no query per
    trial unless a run lacks `best/fid`): memory and time grow by a few hundred bytes and
    nothing else per trial."""
    varied = _varied(runs)
    trials = []
    for run in runs:
        metrics, tags = run.data.metrics, run.data.tags
        trials.append({"run_id": run.info.run_id, "name": run.info.run_name or run.info.run_id[:8],
                       "status": run.info.status, "stopped": tags.get("stopped", ""),
                       "stopped_step": tags.get("stopped.step", ""), "failure": tags.get("failure", ""),
                       "family": run.data.params.get("model.family", "?"),
                       "embedding": run.data.params.get("evaluation.embedding", ""),
                       "best_fid": _score(client, run), "best_step": None,
                       "final_fid": metrics.get("fid", math.nan), "final_step": metrics.get("step"),
                       "speed": metrics.get("throughput/img_s", math.nan),
                       "values": {key: run.data.params.get(key, "") for key in varied}, **_mos(metrics)})
    trials.sort(key=lambda t: (t["best_fid"], t["name"]))
    for rank, trial in enumerate(trials, 1):
        trial["rank"] = rank
    return trials


def _latest(client, run_id: str, folder: str, suffix: str) -> str | None:
    """The artifact of `folder` with the highest step in its name (step_000400...)."""
    found = sorted(a.path for a in client.list_artifacts(run_id, folder) if a.path.endswith(suffix))
    return found[-1] if found else None


def add_media(client, trials: list[dict], downloads: Path) -> None:
    """The histories, latest sample grid and first audio clip of `trials` (the best ones)."""
    from trainables.figures import LOSS_KEYS
    from trainables.mlflow_run import metric_history
    for i, trial in enumerate(trials, 1):
        _progress(f"trial {i}/{len(trials)}: {trial['name']}")
        run_id = trial["run_id"]
        trial["history"] = metric_history(client, run_id, ("fid",) + LOSS_KEYS)
        fids = trial["history"].get("fid", [])
        if fids:
            trial["best_step"] = min(fids, key=lambda point: point[1])[0]
            trial["final_step"], trial["final_fid"] = fids[-1]
        for key, folder, suffix in (("samples", "samples", ".png"), ("audio", "audio", ".wav")):
            path = _latest(client, run_id, folder, suffix)
            if path and suffix == ".wav":  # the first clip of the latest evaluation with audio
                step = path.rsplit("_", 2)[-2]
                path = min(a.path for a in client.list_artifacts(run_id, folder) if step in a.path)
            trial[key] = client.download_artifacts(run_id, path, str(downloads / run_id)) if path else None
            if path:
                trial[f"{key}_artifact"] = path


def importance(parent) -> tuple[dict[str, float] | None, str]:
    """Optuna's parameter importance (fANOVA) of the searched values for the score, on the
    sweep's stored study (platform/spec/tune_space.py), and a sentence saying what it is or why
    there is none."""
    storage, name = parent.data.tags.get("optuna.storage"), parent.data.tags.get("optuna.study")
    if not storage or not name:
        return None, "Parameter importance needs tune.searcher: optuna, whose study the sweep stores."
    import optuna
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = optuna.load_study(study_name=name, storage=storage)
        # the score, the best fid a trial was evaluated at: Ray gives Optuna every result but a
        # trial's last as an intermediate value and the last as the trial's value
        values = optuna.importance.get_param_importances(
            study, target=lambda t: min([*t.intermediate_values.values(), t.value]))
    except (KeyError, ValueError, RuntimeError, ImportError) as error:
        return None, f"No parameter importance from study {name!r} in {storage}: {str(error).splitlines()[0]}"
    except Exception as error:  # noqa: BLE001 - e.g. the study's SQLite file is not on this machine
        return None, f"No parameter importance: study {name!r} in {storage} could not be read ({type(error).__name__})."
    trials = len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)))
    return dict(values), (f"fANOVA importance of each searched value for the score, over the {trials} finished "
                          f"trials of Optuna study {name!r} ({storage}).")


# ---------- the figures ----------

def _style():
    """Labels readable at column width in a paper."""
    import matplotlib
    return matplotlib.rc_context({"font.size": 7, "axes.titlesize": 8, "axes.labelsize": 7, "legend.fontsize": 6,
                                  "xtick.labelsize": 6, "ytick.labelsize": 6, "figure.titlesize": 8,
                                  "svg.fonttype": "none", "pdf.fonttype": 42})


def _fid_label(embedding: str) -> str:
    return f"fid in {embedding} (lower is better)" if embedding else "fid (lower is better)"


def _baseline(ax, baseline: float | None, vertical: bool = False) -> None:
    if baseline is None:
        return
    draw = ax.axvline if vertical else ax.axhline
    draw(baseline, color="tab:green", linestyle="--", linewidth=1, label=f"real vs real {baseline:.3g}")


def _log_if_wide(values: list[float], set_scale) -> None:
    finite = [v for v in values if math.isfinite(v) and v > 0]
    if finite and max(finite) / min(finite) > 50:
        set_scale("log")


def _of_all(top: list[dict], trials: list[dict]) -> str:
    """The summary of the trials not drawn one by one."""
    if len(trials) <= len(top):
        return ""
    scores = [t["best_fid"] for t in trials if math.isfinite(t["best_fid"])]
    spread = (f"; scores of all: min {min(scores):.4g}, median {statistics.median(scores):.4g}, max {max(scores):.4g}"
              if scores else "")
    return f"\nbest {len(top)} of {len(trials)} trials{spread}"


def _stop_note(trial: dict) -> str:
    return f" [stopped: {trial['stopped']}]" if trial.get("stopped") else ""


def fid_figure(top: list[dict], trials: list[dict], baseline: float | None, embedding: str):
    from matplotlib.figure import Figure
    fig = Figure(figsize=(TEXT_WIDTH_IN, 0.9 + 0.24 * len(top)), layout="constrained")
    ax = fig.subplots()
    y = list(range(len(top)))[::-1]  # the best at the top
    best = [t["best_fid"] for t in top]
    final = [t["final_fid"] for t in top]
    stopped = [bool(t.get("stopped")) for t in top]
    ax.barh(y, best, height=0.6, color=["tab:orange" if s else "tab:blue" for s in stopped])
    ax.scatter(final, y, marker="|", s=120, color="black", zorder=3)
    for yi, t in zip(y, top):
        step = f" @ step {t['best_step']}" if t.get("best_step") is not None else ""
        mos = f", mos {t['mos']:.2f} (n={t['mos_count']})" if t.get("mos") is not None else ""
        stop = ", stopped early" if t.get("stopped") else ""
        if math.isfinite(t["best_fid"]):
            ax.annotate(f"{t['best_fid']:.4g}{step}{stop}{mos}", (t["best_fid"], yi), xytext=(3, 0),
                        textcoords="offset points", va="center", fontsize=5.5)
    ax.set_yticks(y, [t["name"] for t in top])
    _baseline(ax, baseline, vertical=True)
    _log_if_wide(best + final + ([baseline] if baseline else []), ax.set_xscale)
    ax.set_xlabel(_fid_label(embedding))
    ax.margins(x=0.45)
    ax.set_title("Score per trial" + _of_all(top, trials))
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch
    handles = [Patch(color="tab:blue", label="best fid (the score)"),
               Patch(color="tab:orange", label="best fid, trial stopped early by the scheduler"),
               Line2D([], [], marker="|", markersize=9, linestyle="", color="black", label="final fid"),
               *[line for line in ax.lines if line.get_label().startswith("real vs real")]]
    fig.legend(handles=handles, loc="outside lower center", ncol=4, frameon=False)
    ax.grid(axis="x", alpha=0.3)
    return fig


def fid_curves_figure(top: list[dict], trials: list[dict], baseline: float | None, embedding: str):
    from matplotlib.figure import Figure
    fig = Figure(figsize=(TEXT_WIDTH_IN, 3.4), layout="constrained")
    ax = fig.subplots()
    values = []
    for t in top:
        points = t.get("history", {}).get("fid", [])
        if not points:
            continue
        steps, fids = zip(*points)
        values += fids
        line, = ax.plot(steps, fids, marker=".", linewidth=1, label=t["name"])
        if t.get("stopped"):  # where the scheduler stopped it
            ax.plot(steps[-1], fids[-1], marker="x", markersize=7, color=line.get_color())
    _baseline(ax, baseline)
    _log_if_wide(values + ([baseline] if baseline else []), ax.set_yscale)
    ax.set_xlabel("generator step")
    ax.set_ylabel(_fid_label(embedding))
    ax.set_title("fid during training (x: where the scheduler stopped a trial)" + _of_all(top, trials))
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=5.5)
    return fig


def _grid(n: int, columns: int = 3):
    cols = max(1, min(columns, n))
    return math.ceil(n / cols), cols


def losses_figure(top: list[dict]):
    from matplotlib.figure import Figure
    from trainables.figures import draw_losses
    rows, cols = _grid(len(top))
    fig = Figure(figsize=(TEXT_WIDTH_IN, 1.9 * rows + 0.4), layout="constrained")
    # one y scale where the losses are alike (one family); BCE and Wasserstein losses are not
    share = len({t["family"] for t in top}) == 1
    axes = fig.subplots(rows, cols, squeeze=False, sharex=True, sharey=share)
    for ax, t in zip(axes.flat, top):
        # wrapped: three long names side by side would run into each other
        draw_losses(ax, t.get("history", {}), textwrap.fill(f"{t['name']}{_stop_note(t)}", 44))
        ax.title.set_fontsize(6)
    for ax in list(axes.flat)[len(top):]:
        ax.set_axis_off()
    fig.suptitle("Loss evolution per trial")
    return fig


def samples_figure(top: list[dict]):
    import matplotlib.image
    from matplotlib.figure import Figure
    rows, cols = _grid(len(top))
    fig = Figure(figsize=(TEXT_WIDTH_IN, 2.3 * rows + 0.3), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax, t in zip(axes.flat, top):
        ax.set_axis_off()
        ax.set_title(textwrap.fill(t["name"], 44) + (f"\n{t['samples_artifact']}" if t.get("samples_artifact") else ""),
                     fontsize=5.5)
        if t.get("samples"):
            ax.imshow(matplotlib.image.imread(t["samples"]))  # one grid at a time: memory stays bounded
        else:
            ax.text(0.5, 0.5, "no sample grid logged", ha="center", va="center", transform=ax.transAxes)
    for ax in list(axes.flat)[len(top):]:
        ax.set_axis_off()
    fig.suptitle("Generated mels: the latest sample grid of each trial")
    return fig


def speed_figure(top: list[dict], trials: list[dict], baseline: float | None, embedding: str):
    from matplotlib.figure import Figure
    fig = Figure(figsize=(COLUMN_WIDTH_IN, 2.6), layout="constrained")
    ax = fig.subplots()
    shown = [t for t in trials if math.isfinite(t["best_fid"]) and math.isfinite(t["speed"])]
    ax.scatter([t["speed"] for t in shown], [t["best_fid"] for t in shown], s=8, color="tab:gray",
               alpha=0.5 if len(shown) > 50 else 1, label="trials")
    for t in top:
        if t in shown:
            ax.annotate(t["name"].split(" ")[1] if " #" in t["name"] else t["name"][:10], (t["speed"], t["best_fid"]),
                        xytext=(2, 2), textcoords="offset points", fontsize=5)
    _baseline(ax, baseline)
    _log_if_wide([t["best_fid"] for t in shown] + ([baseline] if baseline else []), ax.set_yscale)
    ax.set_xlabel("training throughput (images/s, last iteration)")
    ax.set_ylabel(_fid_label(embedding).replace("fid", "best fid", 1))
    ax.set_title("Score against training speed")
    ax.grid(alpha=0.3)
    return fig


def importance_figure(values: dict[str, float]):
    from matplotlib.figure import Figure
    fig = Figure(figsize=(COLUMN_WIDTH_IN, 0.8 + 0.25 * len(values)), layout="constrained")
    ax = fig.subplots()
    names = list(values)[::-1]
    ax.barh(names, [values[n] for n in names], color="tab:purple")
    ax.set_xlabel("importance for the score (fANOVA, sums to 1)")
    ax.set_title("Parameter importance")
    ax.grid(axis="x", alpha=0.3)
    return fig


# ---------- the command ----------

def _baseline_of(parent) -> float | None:
    value = parent.data.tags.get("fid.real_vs_real")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def build(client, parent, runs: list, out: Path, fmt: str, top_n: int,
          started: float | None = None) -> tuple[list[Path], list[dict]]:
    """Write the figures and the page into `out`: (the files written, the trials).
    `started`: when the command began (time.monotonic), for its progress lines."""
    from platform.reporting import page as report_page
    started = started or time.monotonic()
    trials = summaries(client, runs)
    _progress(f"read {len(trials)} trial runs of sweep {parent.info.run_name} in {time.monotonic() - started:.1f} s")
    top = trials[:top_n]
    baseline = _baseline_of(parent)
    embedding = next((t["embedding"] for t in trials if t["embedding"]), "")
    weights, importance_note = importance(parent)
    written = []
    with tempfile.TemporaryDirectory(prefix="sweep-report-") as tmp:
        add_media(client, top, Path(tmp))
        figures = {"fid_per_trial": lambda: fid_figure(top, trials, baseline, embedding),
                   "fid_curves": lambda: fid_curves_figure(top, trials, baseline, embedding),
                   "loss_curves": lambda: losses_figure(top), "samples": lambda: samples_figure(top),
                   "score_vs_speed": lambda: speed_figure(top, trials, baseline, embedding)}
        if weights:
            figures[IMPORTANCE] = lambda: importance_figure(weights)
        charts = {}
        with _style():
            for name, draw in figures.items():
                _progress(f"drawing {name}.{fmt}")
                figure = draw()
                path = out / f"{name}.{fmt}"
                figure.savefig(path, dpi=PNG_DPI)
                written.append(path)
                if name != "samples":  # the page shows the grids themselves, with their sound
                    # the file itself where a browser shows it inline; a PDF is drawn again as SVG
                    charts[name] = report_page.chart(path) if fmt != "pdf" else report_page.chart_of(figure)
                del figure  # one figure in memory at a time
        _progress(f"writing {PAGE}")
        page = out / PAGE
        report_page.write(page, sweep=parent.info.run_name, parent_run_id=parent.info.run_id, trials=trials,
                          top=top, charts=charts, importance_note=importance_note, baseline=baseline,
                          embedding=embedding)
        written.append(page)
    _progress(f"done in {time.monotonic() - started:.1f} s")
    return written, trials


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m platform.report", description=__doc__.split("\n\n")[0])
    parser.add_argument("experiment", help="the MLflow experiment (a search space's name)")
    parser.add_argument("--parent", help="the sweep's parent run id (default: the experiment's latest sweep)")
    parser.add_argument("--out", default="report", help="output folder (default: report)")
    parser.add_argument("--format", default="png", choices=FORMATS,
                        help="the figures' format (default png at 200 dpi; svg and pdf for papers)")
    parser.add_argument("--top", type=int, default=TOP, metavar="N",
                        help=f"the N best trials are drawn one by one with their samples and audio, the rest "
                             f"summarised (default {TOP}, at most {TOP_MAX})")
    command.add_tracking_option(parser)
    parser.add_argument("--no-log", action="store_true", help="do not log the figures and the page to the parent run")
    args = parser.parse_args(argv)
    if Path(args.out).exists() and not Path(args.out).is_dir():
        return command.error(f"--out {args.out}: is a file, not a folder for the figures.")
    if not 1 <= args.top <= TOP_MAX:
        parser.error(f"--top: {args.top} is not between 1 and {TOP_MAX}")
    command.setup_logging(logging.WARNING)
    started = time.monotonic()
    try:
        _, client = command.tracking_client(args.tracking_uri)
        parent, runs = tracking.sweep_runs(client, args.experiment, args.parent)
    except tracking.RunLookupError as error:
        return command.error(error)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    written, trials = build(client, parent, runs, out, args.format, args.top, started)
    for t in trials:
        if t.get("mos") is not None:
            interval = " ({:.2f} to {:.2f})".format(*t["mos_ci"]) if "mos_ci" in t else ""
            print(f"{t['name']}: best fid {t['best_fid']:.4g}, mos {t['mos']:.2f}{interval} from {t['mos_count']} ratings")
    for path in written:
        if not args.no_log:
            client.log_artifact(parent.info.run_id, str(path), "report")
        print(path)
    print(f"{len(trials)} trials of sweep {parent.info.run_name} ({parent.info.run_id})"
          + ("" if args.no_log else f", logged to it under report/: open report/{PAGE} in its artifacts"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
