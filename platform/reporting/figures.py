"""The report's figures (matplotlib, one at a time): each trial's score, the best trials'
fid curves, losses and sample grids, score against speed, and parameter importance; sized
for a two-column paper, the real-vs-real baseline drawn where fid is."""
import math
import statistics
import textwrap

TEXT_WIDTH_IN = 7.0    # a two-column paper's text width; labels stay readable at it
COLUMN_WIDTH_IN = 3.4  # one column


def style():
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
