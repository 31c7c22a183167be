"""The function trainable: one Tune trial of a GAN on a mel Parquet dataset.

The dataset is loaded once into device memory and batches are drawn there by index (no
DataLoader on the hot path). A Tune iteration is `steps_per_iteration` optimiser steps
ending in an FID evaluation on a fixed latent batch, so every report carries `fid` and
the losses and ASHA can stop on FID at any rung. Losses are summed on the device and read
once per iteration, so logging never stalls the steps.
"""
import math
import os
import tempfile
import time
from dataclasses import dataclass

import torch
from ray import tune
from torch.nn import functional as F

from data.dataset import load_mels
from trainables import models
from trainables.config import TrialConfig, flatten
from trainables.evaluation import Evaluator
from trainables.mlflow_run import TrackingTarget, TrialRun

CHECKPOINT_FILE = "state.pt"


@dataclass(frozen=True)
class TrialContext:
    """What every trial of a sweep shares, beside its hyperparameters."""
    dataset_path: str
    dataset_fingerprint: str
    tracking: TrackingTarget
    threads: int = 1


class BatchSampler:
    """Seeded, per-epoch shuffled indices into the in-memory dataset; resumable."""

    def __init__(self, size: int, batch_size: int, seed: int, device: torch.device):
        self.size, self.batch_size, self.device = size, batch_size, device
        self.generator = torch.Generator().manual_seed(seed)
        self.epoch, self.position = 0, 0
        self.order = torch.randperm(size, generator=self.generator)

    def next(self) -> torch.Tensor:
        if self.position + self.batch_size > self.size:  # drop the ragged tail, start a new epoch
            self.epoch += 1
            self.position = 0
            self.order = torch.randperm(self.size, generator=self.generator)
        batch = self.order[self.position:self.position + self.batch_size]
        self.position += self.batch_size
        return batch.to(self.device)

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "position": self.position, "order": self.order,
                "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.position, self.order = state["epoch"], state["position"], state["order"]
        self.generator.set_state(state["generator"])


def _gan_step(G, D, opt_g, opt_d, real, z):
    """One discriminator and one generator step of the non-saturating BCE GAN."""
    ones = torch.ones(len(real), device=real.device)
    zeros = torch.zeros(len(real), device=real.device)
    fake = G(z)
    loss_d = (F.binary_cross_entropy_with_logits(D(real), ones)
              + F.binary_cross_entropy_with_logits(D(fake.detach()), zeros))
    opt_d.zero_grad(set_to_none=True)
    loss_d.backward()
    opt_d.step()
    loss_g = F.binary_cross_entropy_with_logits(D(fake), ones)
    opt_g.zero_grad(set_to_none=True)
    loss_g.backward()
    opt_g.step()
    return loss_d.detach(), loss_g.detach()


def train_gan(config: dict, context: TrialContext) -> None:
    cfg = TrialConfig.from_tune(config)
    train = cfg.training
    torch.set_num_threads(context.threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(train.seed)

    # float16 keeps 260k 64x64 images near 2 GB of device memory; batches are cast up.
    images = torch.from_numpy(load_mels(context.dataset_path)).unsqueeze(1).to(device)
    if len(images) < train.batch_size:
        raise ValueError(f"the dataset has {len(images)} segments, fewer than batch_size={train.batch_size}")

    G, D = (net.to(device) for net in models.build(cfg.model))
    opt_g = torch.optim.Adam(G.parameters(), lr=train.lr_g, betas=(train.beta1, train.beta2))
    opt_d = torch.optim.Adam(D.parameters(), lr=train.lr_d, betas=(train.beta1, train.beta2))
    sampler = BatchSampler(len(images), train.batch_size, train.seed, device)
    noise = torch.Generator(device=device).manual_seed(train.seed + 1)

    evaluate = Evaluator(cfg.evaluation, context.dataset_path, images, cfg.model.latent_dim, device)

    iteration, step, run_id = 0, 0, None
    checkpoint = tune.get_checkpoint()
    if checkpoint:
        with checkpoint.as_directory() as path:
            state = torch.load(os.path.join(path, CHECKPOINT_FILE), map_location=device, weights_only=False)
        G.load_state_dict(state["G"])
        D.load_state_dict(state["D"])
        opt_g.load_state_dict(state["opt_g"])
        opt_d.load_state_dict(state["opt_d"])
        sampler.load_state_dict(state["sampler"])
        noise.set_state(state["noise"])
        iteration, step, run_id = state["iteration"], state["step"], state["mlflow_run_id"]

    context_ = tune.get_context()
    run = TrialRun(context.tracking, run_name=context_.get_trial_name(), run_id=run_id,
                   tags={"tune.trial_id": context_.get_trial_id(),
                         "dataset.fingerprint": context.dataset_fingerprint,
                         "fid.embedding": cfg.evaluation.embedding})
    if run_id is None:
        run.log_params(flatten(config))

    status = "FAILED"
    try:
        while iteration < train.iterations:
            started = time.perf_counter()
            sum_d = torch.zeros((), device=device)
            sum_g = torch.zeros((), device=device)
            for _ in range(train.steps_per_iteration):
                real = images[sampler.next()].float()
                z = torch.randn(train.batch_size, cfg.model.latent_dim, generator=noise, device=device)
                loss_d, loss_g = _gan_step(G, D, opt_g, opt_d, real, z)
                sum_d += loss_d
                sum_g += loss_g
            step += train.steps_per_iteration
            iteration += 1
            loss_d = sum_d.item() / train.steps_per_iteration
            loss_g = sum_g.item() / train.steps_per_iteration
            train_seconds = time.perf_counter() - started
            if not (math.isfinite(loss_d) and math.isfinite(loss_g)):
                run.set_tags({"failure": f"losses not finite at step {step}: loss/D={loss_d}, loss/G={loss_g}"})
                raise FloatingPointError(f"training diverged: loss/D={loss_d}, loss/G={loss_g} at step {step}")

            metrics = {**evaluate(G), "loss/D": loss_d, "loss/G": loss_g, "step": step,
                       "epoch": sampler.epoch,
                       "throughput/img_s": train.steps_per_iteration * train.batch_size / train_seconds}
            run.log_metrics(metrics, step=step)

            if iteration % train.checkpoint_every == 0 or iteration == train.iterations:
                with tempfile.TemporaryDirectory(prefix="gan-ckpt-") as saved:
                    torch.save({"G": G.state_dict(), "D": D.state_dict(), "opt_g": opt_g.state_dict(),
                                "opt_d": opt_d.state_dict(), "sampler": sampler.state_dict(),
                                "noise": noise.get_state(), "iteration": iteration, "step": step,
                                "mlflow_run_id": run.run_id, "config": config},
                               os.path.join(saved, CHECKPOINT_FILE))
                    tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(saved))
            else:
                tune.report(metrics)
        status = "FINISHED"
    except SystemExit:
        # Tune stops a trial (ASHA, the end of the sweep) by raising SystemExit in report
        status = "FINISHED"
        raise
    finally:
        run.end(status)
