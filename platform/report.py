"""A sweep's report: python -m platform.report EXPERIMENT [--out DIR] [--format png|svg|pdf] [--top N]

For the experiment's latest sweep (or `--parent RUN_ID`), from its trial runs in MLflow:
    report.html          the comparison page: every trial in a table sortable by score and by
                         each searched value, with its status and where it stopped; the fid
                         curves with the real-vs-real baseline; the best trials' latest sample
                         grids with their audio playable beside them; parameter importance
                         (Optuna's, on the study the sweep recorded under its storage root,
                         `--root`; never one a tag points at); score against training speed.
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
import os
import sys
import tempfile
import time
from pathlib import Path

from platform.driver import command, tracking
from platform.reporting.trials import add_media, importance, progress, summaries

FIGURES = ("fid_per_trial", "fid_curves", "loss_curves", "samples", "score_vs_speed")
IMPORTANCE = "importance"
PAGE = "report.html"
FORMATS = ("png", "svg", "pdf")
TOP = 12      # trials drawn one by one, with their histories, sample grids and audio
TOP_MAX = 48  # past this a figure stops being readable at column width
PNG_DPI = 200


def _baseline_of(parent) -> float | None:
    value = parent.data.tags.get("fid.real_vs_real")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def recorded_study(parent, root: str | Path) -> tuple | str:
    """The sweep's Optuna study as (storage, name, where), opened from the record the sweep
    wrote under the storage root `root` (platform.spec.study_storage), never from a location
    in a tag; or the one sentence saying why there is none (printed as a warning too)."""
    from platform.spec import study_storage
    name = parent.data.tags.get("optuna.study")
    if not name:
        return "Parameter importance needs tune.searcher: optuna, whose study the sweep stores."
    try:
        storage, where = study_storage.recorded(Path(root).resolve(), name, parent.info.run_id,
                                                tagged=parent.data.tags.get("optuna.storage"))
    except study_storage.StudyRecordError as error:
        print(f"warning: no parameter importance: {error}", file=sys.stderr)
        return f"No parameter importance: {error}"
    return storage, name, where


def build(client, parent, runs: list, out: Path, fmt: str, top_n: int,
          started: float | None = None, root: str | Path = "runs") -> tuple[list[Path], list[dict]]:
    """Write the figures and the page into `out`: (the files written, the trials).
    `started`: when the command began (time.monotonic), for its progress lines; `root`: the
    storage root the sweep recorded its Optuna study under."""
    from platform.reporting import page as report_page
    from platform.reporting.figures import (fid_curves_figure, fid_figure, importance_figure, losses_figure,
                                            samples_figure, speed_figure, style)
    started = started or time.monotonic()
    trials = summaries(client, runs)
    progress(f"read {len(trials)} trial runs of sweep {parent.info.run_name} in {time.monotonic() - started:.1f} s")
    top = trials[:top_n]
    baseline = _baseline_of(parent)
    embedding = next((t["embedding"] for t in trials if t["embedding"]), "")
    weights, importance_note = importance(recorded_study(parent, root))
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
        with style():
            for name, draw in figures.items():
                progress(f"drawing {name}.{fmt}")
                figure = draw()
                path = out / f"{name}.{fmt}"
                figure.savefig(path, dpi=PNG_DPI)
                written.append(path)
                if name != "samples":  # the page shows the grids themselves, with their sound
                    # the file itself where a browser shows it inline; a PDF is drawn again as SVG
                    charts[name] = report_page.chart(path) if fmt != "pdf" else report_page.chart_of(figure)
                del figure  # one figure in memory at a time
        progress(f"writing {PAGE}")
        page = out / PAGE
        report_page.write(page, sweep=parent.info.run_name, parent_run_id=parent.info.run_id, trials=trials,
                          top=top, charts=charts, importance_note=importance_note, baseline=baseline,
                          embedding=embedding)
        written.append(page)
    progress(f"done in {time.monotonic() - started:.1f} s")
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
    parser.add_argument("--root", default=None,
                        help="the sweep's storage root, where it recorded its Optuna study (default: "
                             "$PLATFORM_STORAGE_ROOT, else ./runs, as for the sweep)")
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
    root = args.root or os.environ.get("PLATFORM_STORAGE_ROOT") or "runs"
    written, trials = build(client, parent, runs, out, args.format, args.top, started, root)
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
