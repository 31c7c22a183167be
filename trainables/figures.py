"""Figures of mel images and training curves, shared by the trial's artifacts
(trainables/artifacts.py), `platform.generate`, `platform.report` and `platform.driver.tracking`.
Figures are drawn on `matplotlib.figure.Figure` objects, never pyplot, so nothing global is
touched in a reused worker.
"""
import math

import numpy as np
from matplotlib.figure import Figure

from data.spec import HIFIGAN_FMAX

LOSS_KEYS = ("loss/D", "loss/G", "wasserstein", "loss/gp")
CMAP = "magma"


def to_db(images: np.ndarray, scaling: dict) -> np.ndarray:
    """Undo the manifest's `image = 2 * (db - db_min) / (db_max - db_min) - 1`."""
    low, high = scaling["db_min"], scaling["db_max"]
    return (np.clip(images, -1, 1) + 1) / 2 * (high - low) + low


def mel_figure(images: np.ndarray, info: dict, columns: int = 4, title: str | None = None) -> Figure:
    """Mels (N, n_mels, frames) in [-1, 1] as a grid in dB: time (s) across, mel bands up
    (ticks at their centre frequencies), one colour bar."""
    import librosa
    mel, seconds, scaling = info["spec"]["mel"], info["spec"]["segment"]["seconds"], info["scaling"]
    db = to_db(np.asarray(images, dtype=np.float32), scaling)
    n, n_mels = len(db), db.shape[1]
    cols = max(1, min(columns, n))
    rows = math.ceil(n / cols)
    fig = Figure(figsize=(max(4.8, 2.4 * cols + 1.2), 2.0 * rows + 0.8), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False, sharex=True, sharey=True)
    fmax = HIFIGAN_FMAX if mel.get("kind") == "hifigan" else mel["sample_rate"] / 2
    centres = librosa.mel_frequencies(n_mels + 2, fmin=mel["fmin"], fmax=fmax)[1:-1]
    ticks = np.linspace(0, n_mels - 1, 4).round().astype(int)
    shown = None
    for i, ax in enumerate(axes.flat):
        if i >= n:
            ax.set_axis_off()
            continue
        shown = ax.imshow(db[i], origin="lower", aspect="auto", cmap=CMAP, interpolation="nearest",
                          vmin=scaling["db_min"], vmax=scaling["db_max"],
                          extent=(0, seconds, -0.5, n_mels - 0.5))
        ax.set_title(f"#{i}", fontsize="small", loc="left")
        ax.set_yticks(ticks, [f"{centres[t] / 1000:.1f}k" if centres[t] >= 1000 else f"{centres[t]:.0f}"
                              for t in ticks])
        ax.tick_params(labelsize="small")
    for ax in axes[-1]:
        ax.set_xlabel("time (s)")
    for ax in axes[:, 0]:
        ax.set_ylabel("mel band (Hz)")
    fig.colorbar(shown, ax=axes, label=f"dB re {scaling.get('db_reference', 'reference')}", shrink=0.9)
    if title:
        fig.suptitle(fitted(title, fig.get_figwidth()))
    return fig


def fitted(title: str, width_in: float, size_pt: float = 12.0) -> str:
    """`title` wrapped into lines that fit a figure `width_in` wide at `size_pt` (a character
    of matplotlib's default sans-serif is at most about 0.6 of its size wide)."""
    import textwrap
    return textwrap.fill(title, max(16, int(width_in * 72 / (0.6 * size_pt))), break_long_words=False)


def draw_losses(ax, history: dict, title: str | None = None) -> None:
    """Losses (and the Wasserstein estimate) against generator steps on one axes."""
    for key in LOSS_KEYS:
        if history.get(key):
            steps, values = zip(*history[key])
            ax.plot(steps, values, label=key, marker="." if len(steps) < 30 else None)
    ax.set_xlabel("generator step")
    ax.set_ylabel("loss")
    ax.grid(alpha=0.3)
    if ax.lines:
        ax.legend(fontsize="small")
    if title:
        ax.set_title(title, fontsize="small")


def loss_figure(history: dict, title: str | None = None) -> Figure:
    """The study's loss-evolution figure (losses against steps) beside the fid history."""
    fig = Figure(figsize=(10, 3.6), layout="constrained")
    losses, scores = fig.subplots(1, 2)
    draw_losses(losses, history, "losses")
    if history.get("fid"):
        steps, values = zip(*history["fid"])
        scores.plot(steps, values, marker=".", color="black", label="fid")
        scores.legend(fontsize="small")
    scores.set_xlabel("generator step")
    scores.set_ylabel("fid (lower is better)")
    scores.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    return fig
