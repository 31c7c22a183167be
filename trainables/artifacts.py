"""What a trial leaves in its MLflow run beside params and metrics, and the figures of it.

Per evaluation (the first, every `evaluation.artifacts_every`, and always the trial's last):
    samples/step_000400.png      a grid of mels generated from the evaluator's fixed latents, in dB
    audio/step_000400_0.wav      the grid's first `audio_clips` mels through Griffin-Lim
Whenever they change:
    checkpoints/last/state.pt    the trial's state at its last checkpoint (as Tune's, plus the dataset's mel spec)
    checkpoints/best/state.pt    the state at its lowest fid so far
Once:
    dataset/manifest.json        the dataset's manifest: mel parameters and scaling, so a run explains its images
    loss_curves.png              at the trial's last evaluation or failure; for a trial the scheduler stopped, by the driver
    failure.txt                  a failed trial's traceback (by the trial, or by the driver from Ray's error)

The cost of each evaluation's artifacts is the metric `artifacts/seconds`; `best/fid` is the
lowest fid so far. The drawing functions are shared with `platform.generate` and
`platform.report`. Figures are drawn on `matplotlib.figure.Figure` objects, never pyplot,
so nothing global is touched in a reused worker.
"""
import logging
import math
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure

from data.dataset import read_manifest
from data.spec import DatasetSpec, MelParams, SegmentParams
from trainables.checkpoint import CHECKPOINT_FILE, Checkpoint

log = logging.getLogger(__name__)

CHECKPOINTS = {"last": "checkpoints/last", "best": "checkpoints/best"}
MANIFEST_ARTIFACT = "dataset/manifest.json"
LOSS_CURVES = "loss_curves.png"
FAILURE_ARTIFACT = "failure.txt"  # a failed trial's traceback; its `failure` tag holds the one-line reason
LOSS_KEYS = ("loss/D", "loss/G", "wasserstein", "loss/gp")
CMAP = "magma"


def sample_name(step: int) -> str:
    return f"samples/step_{step:06d}.png"


def audio_name(step: int, index: int) -> str:
    return f"audio/step_{step:06d}_{index}.wav"


# ---------- the dataset's mel parameters, as a run or a checkpoint carries them ----------

def dataset_info(manifest: dict) -> dict:
    """The part of a dataset's manifest that turns its images back into dB and sound."""
    return {"fingerprint": manifest["fingerprint"], "scaling": manifest["scaling"],
            "spec": {"mel": manifest["spec"]["mel"], "segment": manifest["spec"]["segment"]}}


def dataset_spec(info: dict) -> DatasetSpec:
    return DatasetSpec(mel=MelParams(**info["spec"]["mel"]), segment=SegmentParams(**info["spec"]["segment"]))


def to_db(images: np.ndarray, scaling: dict) -> np.ndarray:
    """Undo the manifest's `image = 2 * (db - db_min) / (db_max - db_min) - 1`."""
    low, high = scaling["db_min"], scaling["db_max"]
    return (np.clip(images, -1, 1) + 1) / 2 * (high - low) + low


# ---------- drawing ----------

def mel_figure(images: np.ndarray, info: dict, columns: int = 4, title: str | None = None) -> Figure:
    """Mels (N, n_mels, frames) in [-1, 1] as a grid in dB: time (s) across, mel bands up
    (ticks at their centre frequencies), one colour bar."""
    import librosa
    spec, scaling = dataset_spec(info), info["scaling"]
    db = to_db(np.asarray(images, dtype=np.float32), scaling)
    n, n_mels = len(db), db.shape[1]
    cols = max(1, min(columns, n))
    rows = math.ceil(n / cols)
    fig = Figure(figsize=(max(4.8, 2.4 * cols + 1.2), 2.0 * rows + 0.8), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False, sharex=True, sharey=True)
    centres = librosa.mel_frequencies(n_mels + 2, fmin=spec.mel.fmin, fmax=spec.mel.sample_rate / 2)[1:-1]
    ticks = np.linspace(0, n_mels - 1, 4).round().astype(int)
    shown = None
    for i, ax in enumerate(axes.flat):
        if i >= n:
            ax.set_axis_off()
            continue
        shown = ax.imshow(db[i], origin="lower", aspect="auto", cmap=CMAP, interpolation="nearest",
                          vmin=scaling["db_min"], vmax=scaling["db_max"],
                          extent=(0, spec.segment.seconds, -0.5, n_mels - 0.5))
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
        fig.suptitle(title)
    return fig


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


# ---------- generating and rendering ----------

@torch.no_grad()
def generate(generator: torch.nn.Module, z: torch.Tensor) -> np.ndarray:
    """(N, latent) -> (N, n_mels, frames) float32 in [-1, 1]; the generator's mode is kept."""
    was_training = generator.training
    generator.eval()
    try:
        return generator(z).float().cpu().numpy()[:, 0]
    finally:
        generator.train(was_training)


def write_wav(path: str | os.PathLike, image: np.ndarray, info: dict, n_iter: int) -> None:
    import soundfile
    from data import mel
    spec = dataset_spec(info)
    soundfile.write(path, mel.to_audio(image, spec, n_iter=n_iter), spec.mel.sample_rate, subtype="PCM_16")


# ---------- the trial's artifacts ----------

class TrialArtifacts:
    """Called by the trainable after each evaluation and once at the end."""

    def __init__(self, run, cfg, dataset_path: str, fixed_z: torch.Tensor, resumed: bool):
        """`run`: the trial's TrialRun; `cfg`: its TrialConfig; `fixed_z`: the evaluator's latents."""
        self.run, self.cfg = run, cfg
        self.eval = cfg.evaluation
        manifest = read_manifest(dataset_path)
        self.dataset = dataset_info(manifest)
        self.z = fixed_z[:max(self.eval.grid_images, self.eval.audio_clips)]
        self.saved = {"last": None, "samples": None, "curves": None}  # the step each was last logged at
        self.best_fid = math.inf
        self.trial_id = run.tags().get("tune.trial_id")
        if resumed:  # a restored trial: its best so far is in its history
            fids = [value for _, value in run.metric_history(["fid"]).get("fid", [])]
            self.best_fid = min(fids, default=math.inf)
        else:
            run.log_dict(manifest, MANIFEST_ARTIFACT)

    def after_evaluation(self, trainer, metrics: dict, config: dict) -> dict:
        """Log what this evaluation (its `metrics`, not logged yet) calls for; returns
        `best/fid` and `artifacts/seconds`.

        A trial's last evaluation draws its loss curves here, before its last report: Tune
        does not wait for a trial's code after that report (ASHA's max_t stops it there),
        and the end of a sweep kills what is still running."""
        started = time.perf_counter()
        fid = metrics["fid"]
        due = []
        if self.eval.checkpoint_artifacts:
            if fid < self.best_fid:
                due.append("best")
            if trainer.iteration % self.cfg.training.checkpoint_every == 0 or trainer.finished:
                due.append("last")
        self.best_fid = min(self.best_fid, fid)
        self._checkpoint(trainer, config, due)
        # the first evaluation too, so a trial ASHA stops early still shows what it made
        if trainer.iteration == 1 or trainer.iteration % self.eval.artifacts_every == 0 or trainer.finished:
            self._samples(trainer)
        if trainer.finished:
            self._loss_curves(trainer, metrics)
        return {"best/fid": self.best_fid, "artifacts/seconds": time.perf_counter() - started}

    def finish(self, trainer, status: str) -> None:
        """The end of the trial: a failed trial draws its loss curves here. Nothing else
        does, on purpose: Tune gives a trial it stops (ASHA) 2 s to end
        (TUNE_FUNCTION_THREAD_TIMEOUT_S) before it reuses its actor, and a slower end fails
        the next trial ("reset_config() ... return True"). The driver draws the loss curves
        of stopped trials (platform/tracking.py). Never raises."""
        if status != "FAILED" or self.saved["curves"] == trainer.step:
            return
        try:
            self._loss_curves(trainer)
        except Exception:
            log.warning("the loss curves of failed run %s could not be logged", self.run.run_id, exc_info=True)

    def _loss_curves(self, trainer, metrics: dict | None = None) -> None:
        history = self.run.metric_history(("fid",) + LOSS_KEYS)
        for key, value in (metrics or {}).items():  # this evaluation's, not logged yet
            if key == "fid" or key in LOSS_KEYS:
                history[key] = [p for p in history.get(key, []) if p[0] != trainer.step] + [(trainer.step, value)]
        if history:
            self.run.log_figure(loss_figure(history, f"{self.run.run_name} ({self.cfg.model.family})"), LOSS_CURVES)
        self.saved["curves"] = trainer.step

    def _checkpoint(self, trainer, config: dict, which: list[str]) -> None:
        if not which:
            return
        with tempfile.TemporaryDirectory(prefix="gan-artifact-") as tmp:
            path = Path(tmp) / CHECKPOINT_FILE
            # Tune's checkpoint plus the dataset's mel spec: enough to generate and listen without the dataset
            Checkpoint(trainer.state_dict(), config, self.run.run_id, trial_id=self.trial_id,
                       dataset=self.dataset).save(path)
            for name in which:  # the same artifact path again overwrites it
                self.run.log_artifact(path, CHECKPOINTS[name])
        if "last" in which:
            self.saved["last"] = trainer.step

    def _samples(self, trainer) -> None:
        if not len(self.z):
            return
        images = generate(trainer.G, self.z)
        step = trainer.step
        with tempfile.TemporaryDirectory(prefix="gan-samples-") as tmp:
            if self.eval.grid_images:
                fig = mel_figure(images[:self.eval.grid_images], self.dataset,
                                 title=f"{self.run.run_name}, step {step}")
                png = Path(tmp) / Path(sample_name(step)).name
                fig.savefig(png, dpi=72)
                self.run.log_artifact(png, "samples")
            for i in range(self.eval.audio_clips):
                wav = Path(tmp) / Path(audio_name(step, i)).name
                write_wav(wav, images[i], self.dataset, self.eval.griffin_lim_iters)
                self.run.log_artifact(wav, "audio")
        self.saved["samples"] = step
