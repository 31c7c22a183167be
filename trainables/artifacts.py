"""What a trial leaves in its MLflow run beside params and metrics, and the figures of it.

Per evaluated iteration only (its first; each that lowers the trial's best fid, so its
score's step has them; every `evaluation.artifacts_every`-th; and always the trial's last):
    samples/step_000400.png      a grid of mels generated from the evaluator's fixed latents, in dB
    audio/step_000400_0.wav      the grid's first `audio_clips` mels through `evaluation.vocoder`
Checkpoints, each a Tune checkpoint's state plus the dataset's mel spec:
    checkpoints/best/state.pt    at each evaluation that lowers the trial's best fid (overwritten)
    checkpoints/last/state.pt    once, at the trial's last iteration: a trial stopped before its
                                 end (ASHA, its health) or failed has none; its best stands in
                                 (platform/driver/tracking.py: end_checkpoint)
Tune keeps its own checkpoints every `training.checkpoint_every` iterations (for restores and
PBT, under storage.tune): the run holds no second copy of those.
Once:
    dataset/manifest.json        the dataset's manifest: mel parameters and scaling, so a run explains its images
    loss_curves.png              at the trial's last evaluation or failure; for a trial the scheduler stopped, by the driver
    failure.txt                  a failed trial's traceback (by the trial, or by the driver from Ray's error)

The cost of each evaluation's artifacts is the metric `artifacts/seconds`; `best/fid` is the
lowest fid so far. The figures are drawn by trainables/figures.py.
"""
import logging
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from data.dataset import read_manifest, spec_of
from trainables import verdict
from trainables.checkpoint import CHECKPOINT_FILE, Checkpoint
from trainables.figures import LOSS_KEYS, loss_figure, mel_figure
from trainables.models import inference

log = logging.getLogger(__name__)

CHECKPOINTS = {"last": "checkpoints/last", "best": "checkpoints/best"}
MANIFEST_ARTIFACT = "dataset/manifest.json"
LOSS_CURVES = "loss_curves.png"
FAILURE_ARTIFACT = "failure.txt"  # a failed trial's traceback; its `failure` tag holds the one-line reason


def sample_name(step: int) -> str:
    return f"samples/step_{step:06d}.png"


def audio_name(step: int, index: int) -> str:
    return f"audio/step_{step:06d}_{index}.wav"


# ---------- the dataset's mel parameters, as a run or a checkpoint carries them ----------

def dataset_info(manifest: dict) -> dict:
    """The part of a dataset's manifest that turns its images back into dB and sound."""
    return {"fingerprint": manifest["fingerprint"], "scaling": manifest["scaling"],
            "spec": {"mel": manifest["spec"]["mel"], "segment": manifest["spec"]["segment"]}}


# ---------- generating and rendering ----------

def generate(generator: torch.nn.Module, z: torch.Tensor) -> np.ndarray:
    """(N, latent) -> (N, n_mels, frames) float32 in [-1, 1]; the generator's mode is kept."""
    with inference(generator):
        return generator(z).float().cpu().numpy()[:, 0]


_voiced_by: set[str] = set()  # the vocoders this process has voiced a mel with


def warm_up_voice(info: dict, vocoder: str) -> None:
    """Voice one silent mel and drop it, once per process and vocoder: the imports behind the
    first WAV (librosa's spectrum module and scipy.signal: seconds) and HiFi-GAN's weights
    then sit in a worker's start-up, so its first evaluation's `artifacts/seconds` is what
    every later one costs. Seeded: torch's and NumPy's global generators are left alone."""
    if vocoder in _voiced_by:
        return
    import soundfile  # noqa: F401  (write_wav's)
    from data import mel
    from trainables.vocoder import hifigan
    spec = spec_of(info, "the dataset information")
    image = np.zeros((spec.mel.n_mels, spec.mel.frames), dtype=np.float32)
    hifigan(image, spec) if vocoder == "hifigan" else mel.to_audio(image, spec, n_iter=1, seed=0)
    _voiced_by.add(vocoder)


def write_wav(path: str | os.PathLike, image: np.ndarray, info: dict, n_iter: int,
              vocoder: str = "griffin-lim") -> None:
    """One mel image as a 16-bit WAV, voiced by `vocoder` (trainables/vocoder.py)."""
    import soundfile
    from trainables.vocoder import render
    spec = spec_of(info, "the dataset information")
    soundfile.write(path, render(image, spec, vocoder, n_iter), spec.mel.sample_rate, subtype="PCM_16")


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
        self.saved = {"samples": None, "curves": None}  # the step each was last logged at
        self.best = None  # the trial's score so far (trainables/verdict.py)
        self.evaluations = 0  # in this attempt: a restored trial logs samples at its first again
        self.trial_id = run.tags().get("tune.trial_id")
        if resumed:  # a restored trial: its best so far is in its history
            self.best = verdict.score(run.metric_history(["fid"]).get("fid", []))
        else:
            run.log_dict(manifest, MANIFEST_ARTIFACT)
        if self.eval.audio_clips:
            warm_up_voice(self.dataset, self.eval.vocoder)

    def after_iteration(self, trainer, metrics: dict, config: dict) -> dict:
        """Log what this iteration (its `metrics`, not logged yet) calls for; returns
        `best/fid` (once there is one) and `artifacts/seconds`.

        The best checkpoint and the sample artifacts need an fid, so they come with the
        evaluated iterations only; the last checkpoint with the trial's last iteration (Tune
        keeps the periodic ones). A trial's last iteration draws its loss curves here, before
        its last report: Tune does not wait for a trial's code after that report (ASHA's
        max_t stops it there), and the end of a sweep kills what is still running."""
        started = time.perf_counter()
        fid = metrics.get("fid")
        improved = fid is not None and verdict.improves(fid, self.best)  # this step becomes the trial's score
        due = []
        if self.eval.checkpoint_artifacts:
            if improved:
                due.append("best")
            if trainer.finished:
                due.append("last")
        if fid is not None:
            if improved:
                self.best = verdict.Score(fid, trainer.step)
            self.evaluations += 1
        self._checkpoint(trainer, config, due)
        # at every new best fid, so the report shows the samples of the step a trial is scored
        # at (the first evaluation is one: a trial ASHA stops early still shows what it made)
        if fid is not None and (improved or trainer.finished or self.evaluations == 1
                                or self.evaluations % self.eval.artifacts_every == 0):
            self._samples(trainer)
        if trainer.finished:
            self._loss_curves(trainer, metrics)
        best = {"best/fid": self.best.fid} if self.best else {}
        return {**best, "artifacts/seconds": time.perf_counter() - started}

    def finish(self, trainer, status: str) -> None:
        """The end of the trial: a failed trial draws its loss curves here. Nothing else
        does, on purpose: Tune gives a trial it stops (ASHA) 2 s to end
        (TUNE_FUNCTION_THREAD_TIMEOUT_S) before it reuses its actor, and a slower end fails
        the next trial ("reset_config() ... return True"). The driver draws the loss curves
        of stopped trials (platform/driver/tracking.py). Never raises."""
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
                write_wav(wav, images[i], self.dataset, self.eval.griffin_lim_iters, self.eval.vocoder)
                self.run.log_artifact(wav, "audio")
        self.saved["samples"] = step
