"""The function trainable: one Tune trial of any of the four GANs on a mel Parquet dataset.

The loop itself is `trainables.trainer.GANTrainer`; this file adds what a trial needs
around it: the dataset in device memory, FID at the end of every Tune iteration (so ASHA
can stop on `fid` at any rung), the trial's MLflow run, and checkpoints every
`checkpoint_every` iterations that hold the whole trainer state and the MLflow run id, so
a restored trial continues step for step in the same MLflow run.

A trial whose losses turn NaN or infinite raises `TrainingDiverged`: Tune records the
trial as errored with that message, its MLflow run ends FAILED with a `failure` tag, and
the sweep goes on with the other trials.
"""
import logging
import os
import tempfile
from dataclasses import dataclass

import ray
import torch
from ray import tune

from data.dataset import load_mels
from data.remote import local_path
from trainables.artifacts import TrialArtifacts
from trainables.config import TrialConfig, flatten
from trainables.evaluation import Evaluator
from trainables.mlflow_run import TrackingTarget, TrialRun, find_trial_run
from trainables.trainer import GANTrainer

CHECKPOINT_FILE = "state.pt"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrialContext:
    """What every trial of a sweep shares, beside its hyperparameters."""
    dataset_path: str  # a path every node sees, or a URI each node copies from (storage.datasets)
    dataset_fingerprint: str
    tracking: TrackingTarget
    threads: int = 1


def load_images(dataset_path: str, max_segments: int | None, device: torch.device,
                fraction: float = 1.0, batch_size: int = 1) -> torch.Tensor:
    """The dataset (or its seeded subset) as (segments, 1, n_mels, frames) float16 on `device`:
    260k 64 x 64 images take about 2 GB there; batches are cast up as they are drawn."""
    mels = load_mels(dataset_path, max_segments=max_segments, fraction=fraction, at_least=batch_size)
    if max_segments is not None and len(mels) < max_segments:
        log.warning("training.max_segments is %d but the dataset at %s has %d segments: training on all of them",
                    max_segments, dataset_path, len(mels))
    return torch.from_numpy(mels).unsqueeze(1).to(device)


# First in every report, so Tune's progress table shows them (it shows the first four).
PROGRESS_COLUMNS = ("fid", "loss/D", "loss/G", "throughput/img_s")


def _restore(trainer: GANTrainer) -> dict | None:
    """Load Tune's checkpoint into the trainer, if this trial has one; what else it saved."""
    checkpoint = tune.get_checkpoint()
    if not checkpoint:
        return None
    with checkpoint.as_directory() as path:
        # on the CPU: random generator states must stay CPU tensors; weights and optimiser
        # moments are copied onto the trainer's device by load_state_dict
        state = torch.load(os.path.join(path, CHECKPOINT_FILE), map_location="cpu", weights_only=False)
    trainer.load_state_dict(state["trainer"])
    return state


def _apply_learning_rates(trainer: GANTrainer) -> dict:
    """Use this trial's learning rates: under PBT the checkpoint comes from another trial,
    whose optimisers carry its rates. Returns the rates the checkpoint had."""
    before = {}
    for name, optimizer, lr in (("lr_g", trainer.opt_g, trainer.cfg.training.lr_g),
                                ("lr_d", trainer.opt_d, trainer.cfg.training.lr_d)):
        before[name] = optimizer.param_groups[0]["lr"]
        for group in optimizer.param_groups:
            group["lr"] = lr
    return before


def _record_exploit(run: TrialRun, trainer: GANTrainer, donor: str, before: dict) -> None:
    """PBT gave this trial another trial's weights and new rates: say so in its run, which
    goes on (params keep the first rates; the `lr/G`, `lr/D` metrics follow every change)."""
    count = int(run.tags().get("pbt.exploits", "0")) + 1
    now = trainer.cfg.training
    run.set_tags({"pbt.exploits": count,
                  f"pbt.exploit.{count}": f"at step {trainer.step}: weights of trial {donor}; "
                                          f"lr_g {before['lr_g']:.3g} -> {now.lr_g:.3g}, "
                                          f"lr_d {before['lr_d']:.3g} -> {now.lr_d:.3g}"})


def _report(trainer: GANTrainer, metrics: dict, run: TrialRun, config: dict) -> None:
    every = trainer.cfg.training.checkpoint_every
    if trainer.iteration % every and not trainer.finished:
        tune.report(metrics)
        return
    with tempfile.TemporaryDirectory(prefix="gan-ckpt-") as saved:
        torch.save({"trainer": trainer.state_dict(), "mlflow_run_id": run.run_id, "config": config,
                    "trial_id": tune.get_context().get_trial_id()},
                   os.path.join(saved, CHECKPOINT_FILE))
        tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(saved))


def _open_run(context: TrialContext, config: dict, segments: int, tags: dict) -> tuple[TrialRun, bool]:
    """This trial's MLflow run, found by its Tune trial id: a retry or a resumed sweep
    reopens it, and under PBT the checkpoint may be another trial's. True if reopened."""
    trial = tune.get_context()
    run_id = find_trial_run(context.tracking, trial.get_trial_id())
    experiment = config.get("experiment")  # one of a sweep's fixed settings (paper.yaml)
    name = f"{experiment}-{trial.get_trial_name()}" if experiment else trial.get_trial_name()
    run = TrialRun(context.tracking, run_name=name, run_id=run_id,
                   tags={"tune.trial_id": trial.get_trial_id(), **({"experiment": experiment} if experiment else {}),
                         "dataset.fingerprint": context.dataset_fingerprint,
                         # which node trained it: a multi-node sweep can be checked from MLflow
                         "ray.node_id": ray.get_runtime_context().get_node_id(), **tags})
    if run_id is None:
        run.log_params({**flatten(config), "dataset.segments": segments})
    return run, run_id is not None


def train_gan(config: dict, context: TrialContext) -> None:
    cfg = TrialConfig.from_tune(config)
    torch.set_num_threads(context.threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")

    dataset_path = local_path(context.dataset_path)  # a URI: this node's copy, downloaded once
    images = load_images(dataset_path, cfg.training.max_segments, device,
                         cfg.training.data_fraction, cfg.training.batch_size)
    trainer = GANTrainer(cfg, images, device)
    evaluate = Evaluator(cfg.evaluation, dataset_path, images, cfg.model.latent_dim, device)
    # after the evaluator, which may draw random numbers: the checkpoint's generators win
    restored = _restore(trainer)
    before = _apply_learning_rates(trainer) if restored else {}

    run, reopened = _open_run(context, config, len(images), evaluate.tags)
    own_id = tune.get_context().get_trial_id()
    if restored and restored.get("trial_id", own_id) != own_id:
        _record_exploit(run, trainer, restored["trial_id"], before)
    # sample grids, audio, last/best checkpoints, loss curves (trainables/artifacts.py)
    artifacts = TrialArtifacts(run, cfg, dataset_path, evaluate.fixed_z, resumed=reopened)

    status = "FAILED"
    try:
        while not trainer.finished:
            metrics = trainer.run_iteration()
            metrics.update(evaluate(trainer.G))
            metrics.update({"lr/G": trainer.cfg.training.lr_g, "lr/D": trainer.cfg.training.lr_d})
            metrics.update(artifacts.after_evaluation(trainer, metrics, config))
            if trainer.finished:  # evaluation.final_metrics, before the last report (where Tune may stop it)
                metrics.update(evaluate.final(trainer.G))
            metrics = {**{k: metrics[k] for k in PROGRESS_COLUMNS}, **metrics}
            run.log_metrics(metrics, step=trainer.step)
            _report(trainer, metrics, run, config)
        status = "FINISHED"
    except SystemExit:
        # Tune stops a trial (ASHA, the end of the sweep) by raising SystemExit in report
        status = "FINISHED"
        raise
    except Exception as error:
        run.set_tags({"failure": f"{type(error).__name__}: {error}"})
        raise
    finally:
        artifacts.finish(trainer, status)
        run.end(status)
