"""The report's figures (matplotlib, one at a time): each trial's score, the best trials'
fid curves, losses and sample grids, score against speed, and parameter importance; sized
for a two-column paper (the full text width, or one column for the two small ones), the
real-vs-real baseline drawn where fid is. Labels beside points are moved apart until their
boxes, as matplotlib draws them, do not overlap (`separate`)."""
import math
import statistics
import textwrap

TEXT_WIDTH_IN = 7.0    # a two-column paper's text width; labels stay readable at it
COLUMN_WIDTH_IN = 3.4  # one column
MARKERS = "osD^vP*Xph<>"


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


def trial_number(trial: dict) -> str:
    """The trial's number in its sweep as its name gives it ("#3"): a trial, never a rank."""
    parts = trial["name"].split(" ")
    return parts[1] if len(parts) > 1 and parts[1].startswith("#") else trial["name"][:10]


def separate(fig, texts: list, pad_pt: float = 1.0) -> None:
    """Move `texts` (annotations with offsets in points) up, the lowest first, until no two
    of their boxes overlap; then the figure's layout is frozen so saving it does not move
    the axes under them again."""
    if not texts:
        return
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    renderer = FigureCanvasAgg(fig).get_renderer()
    fig.draw(renderer)  # the layout, and so where each text lands
    to_px = fig.dpi / 72
    placed = []
    for text in sorted(texts, key=lambda t: (t.get_window_extent(renderer).y0, t.get_window_extent(renderer).x0)):
        box = text.get_window_extent(renderer)
        for _ in range(len(texts) + 1):
            hit = [b for b in placed if b.x0 < box.x1 and box.x0 < b.x1 and b.y0 < box.y1 + pad_pt * to_px
                   and box.y0 < b.y1 + pad_pt * to_px]
            if not hit:
                break
            rise = (max(b.y1 for b in hit) + pad_pt * to_px - box.y0) / to_px
            x, y = text.xyann
            text.xyann = (x, y + rise)
            box = text.get_window_extent(renderer)
        placed.append(box)
    fig.set_layout_engine("none")


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
    ticks = ax.scatter(final, y, marker="|", s=120, color="black", zorder=3)
    tick_half_pt = math.sqrt(float(ticks.get_sizes()[0])) / 2
    for yi, t in zip(y, top):
        step = f" @ step {t['best_step']}" if t.get("best_step") is not None else ""
        mos = f", mos {t['mos']:.2f} (n={t['mos_count']})" if t.get("mos") is not None else ""
        stop = ", stopped early" if t.get("stopped") else ""
        if math.isfinite(t["best_fid"]):
            # right of the bar and of the final-fid tick, which would cut through it
            end = max(t["best_fid"], t["final_fid"]) if math.isfinite(t["final_fid"]) else t["best_fid"]
            ax.annotate(f"{t['best_fid']:.4g}{step}{stop}{mos}", (end, yi), xytext=(tick_half_pt + 2, 0),
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
    for i, t in enumerate(top):
        points = t.get("history", {}).get("fid", [])
        if not points:
            continue
        steps, fids = zip(*points)
        values += fids
        # hollow markers of their own shape, larger for the better trials drawn first: trials
        # that stopped at the same step with the same fid stay visible as nested shapes
        line, = ax.plot(steps, fids, marker=MARKERS[i % len(MARKERS)], markerfacecolor="none",
                        markersize=3 + 5 * (len(top) - i) / len(top), linewidth=1, label=t["name"])
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
    fig.suptitle("Generated mels: each trial's sample grid at the step of its score")
    return fig


def speed_figure(top: list[dict], trials: list[dict], baseline: float | None, embedding: str):
    from matplotlib.figure import Figure
    fig = Figure(figsize=(COLUMN_WIDTH_IN, 2.6), layout="constrained")
    ax = fig.subplots()
    shown = [t for t in trials if math.isfinite(t["best_fid"]) and math.isfinite(t["speed"])]
    ax.scatter([t["speed"] for t in shown], [t["best_fid"] for t in shown], s=8, color="tab:gray",
               alpha=0.5 if len(shown) > 50 else 1, label="trials")
    at = {}  # trials on one point share one label
    for t in top:
        if t in shown:
            at.setdefault((t["speed"], t["best_fid"]), []).append(trial_number(t))
    labels = [ax.annotate(", ".join(numbers), point, xytext=(2, 2), textcoords="offset points", fontsize=5)
              for point, numbers in at.items()]
    _baseline(ax, baseline)
    _log_if_wide([t["best_fid"] for t in shown] + ([baseline] if baseline else []), ax.set_yscale)
    ax.set_xlabel("training throughput (images/s, last iteration)")
    ax.set_ylabel(_fid_label(embedding).replace("fid", "best fid", 1))
    ax.set_title("Score against training speed (labels: trial numbers)")
    ax.grid(alpha=0.3)
    ax.margins(x=0.1, y=0.15)  # room right of and above the outer points for their labels
    separate(fig, labels)
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
