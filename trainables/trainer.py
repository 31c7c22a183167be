"""The training loop of one trial, without Tune or MLflow: a plain object tests can drive.

The dataset sits in device memory (float16) and batches are drawn there by index from a
seeded per-epoch permutation: no DataLoader, no host-device copy per step. Losses are
summed on the device and read once per iteration, so the host never waits on the GPU
mid-iteration. `state_dict()` holds everything a step depends on (networks, optimisers,
the sampler's position in its epoch, every random generator), so a trainer restored
from it continues with the very same losses as one that never stopped.
"""
import math
import random
import time
from contextlib import nullcontext

import numpy as np
import torch

from trainables import losses, models, trial_length
from trainables.config import WASSERSTEIN, TrialConfig
from trainables.native_precision import training_precision


class TrainingDiverged(FloatingPointError):
    """The losses became NaN or infinite; the message says when and which."""


class BatchSampler:
    """Seeded, per-epoch shuffled indices into the in-memory dataset; resumable."""

    def __init__(self, size: int, batch_size: int, seed: int, device: torch.device):
        self.size, self.batch_size, self.device = size, batch_size, device
        # drawn on the CPU so that the order is the same on every device
        self.generator = torch.Generator().manual_seed(seed)
        self.epoch, self.position = 0, 0
        self.order = self._shuffle()

    def _shuffle(self) -> torch.Tensor:
        return torch.randperm(self.size, generator=self.generator).to(self.device)

    @property
    def batches_per_epoch(self) -> int:
        return self.size // self.batch_size

    def next(self) -> torch.Tensor:
        if self.position + self.batch_size > self.size:  # drop the ragged tail, start a new epoch
            self.epoch += 1
            self.position = 0
            self.order = self._shuffle()
        batch = self.order[self.position:self.position + self.batch_size]
        self.position += self.batch_size
        return batch

    def epochs_done(self) -> float:
        return self.epoch + self.position / (self.batches_per_epoch * self.batch_size)

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "position": self.position, "order": self.order.cpu(),
                "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.position = state["epoch"], state["position"]
        self.order = state["order"].to(self.device)
        self.generator.set_state(state["generator"])


def _rng_state() -> dict:
    """Every generator's state as tensors and tuples of ints, which `torch.load(weights_only=True)`
    reads (trainables/checkpoint.py): numpy's key array would need a pickled ndarray."""
    name, keys, position, has_gauss, cached = np.random.get_state()
    return {"torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "python": random.getstate(),
            "numpy": (name, torch.from_numpy(keys.astype(np.int64)), int(position), int(has_gauss), float(cached))}


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    random.setstate(state["python"])
    name, keys, position, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), position, has_gauss, cached))


def _optimizer(params, lr: float, cfg) -> torch.optim.Optimizer:
    if cfg.optimizer == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr)
    # The same update in one fused kernel, several times faster than the per-tensor loop
    # (benchmarks/fused_adam.py; the figures are in docs/training.md)
    return torch.optim.Adam(params, lr=lr, betas=(cfg.beta1, cfg.beta2), fused=True)


class GANTrainer:
    def __init__(self, cfg: TrialConfig, images: torch.Tensor, device: torch.device):
        """`images`: (segments, 1, bands, frames) in [-1, 1], any float dtype, already on `device`."""
        self.cfg, self.images, self.device = cfg, images, device
        model, train = cfg.model, cfg.training
        if tuple(images.shape[-2:]) != model.shape:
            raise ValueError(f"the dataset's mel images are {images.shape[-2]} x {images.shape[-1]} "
                             f"(n_mels x frames) but model.image_size is {model.image_size}: "
                             f"build a dataset with n_mels and frames equal to image_size, or change image_size")
        if len(images) < train.batch_size:
            raise ValueError(f"the dataset has {len(images)} segments, fewer than batch_size={train.batch_size}")

        # only when it changes: setting it imports torch's compiler stack, seconds of a fresh
        # worker's start-up (a reused worker may hold the previous trial's True)
        if train.deterministic != torch.are_deterministic_algorithms_enabled():
            torch.use_deterministic_algorithms(train.deterministic)
        torch.backends.cudnn.benchmark = not train.deterministic  # fixed shapes: let cuDNN pick its kernels
        torch.manual_seed(train.seed)
        self.wasserstein = model.family in WASSERSTEIN
        # auto: bf16 autocast where the device does it natively and the family trains as well
        self.precision = training_precision(train.precision, model.family, device)
        self.autocast = ((lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if self.precision == "bf16"
                         else nullcontext)
        # channels_last measured faster on CPU too (benchmarks/trainer_throughput.py): auto uses it everywhere
        self.memory_format = (torch.contiguous_format if train.memory_format == "contiguous"
                              else torch.channels_last)

        self.G, self.D = (net.to(device, memory_format=self.memory_format) for net in models.build(model))
        self.opt_g = _optimizer(self.G.parameters(), train.lr_g, train)
        self.opt_d = _optimizer(self.D.parameters(), train.lr_d, train)
        self.sampler = BatchSampler(len(images), train.batch_size, train.seed, device)
        # latents and gradient-penalty mixing weights: their own stream, saved in checkpoints
        self.noise = torch.Generator(device=device).manual_seed(train.seed + 1)
        self.loss_ranges = {}  # the last iteration's max - min of each loss over its steps
        self.step = 0       # generator steps done
        self.iteration = 0  # Tune iterations done
        # the trial's length (trainables/trial_length.py), as the driver resolved it for the sweep
        self.total_steps = trial_length.steps(train, len(images))
        self.length = trial_length.iterations(train, len(images))  # in Tune iterations

    @property
    def finished(self) -> bool:
        return self.step >= self.total_steps

    def _real_batch(self) -> torch.Tensor:
        return self.images[self.sampler.next()].float().contiguous(memory_format=self.memory_format)

    def _latents(self) -> torch.Tensor:
        return torch.randn(self.cfg.training.batch_size, self.cfg.model.latent_dim,
                           device=self.device, generator=self.noise)

    def _critic_loss(self, real, fake) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(loss, Wasserstein estimate, gradient penalty); the last two are 0 for BCE."""
        zero = torch.zeros((), device=self.device)
        if not self.wasserstein:
            return losses.bce_critic_loss(self.D, real, fake), zero, zero
        estimate = losses.wasserstein_estimate(self.D, real, fake)
        if self.cfg.model.family != "wgan_gp":
            return -estimate, estimate, zero
        penalty = losses.gradient_penalty(self.D, real, fake, self.noise)
        return -estimate + self.cfg.training.gp_lambda * penalty, estimate, penalty

    def train_step(self) -> torch.Tensor:
        """`critic_steps` discriminator steps then one generator step; returns the summed
        (loss/D, loss/G, wasserstein, penalty) on the device, never read here."""
        train = self.cfg.training
        sums = torch.zeros(4, device=self.device)
        for k in range(train.critic_steps):
            real, z = self._real_batch(), self._latents()
            last = k == train.critic_steps - 1
            with self.autocast():
                # only the last fake batch feeds the generator step: the others need no graph
                with nullcontext() if last else torch.no_grad():
                    fake = self.G(z)
                loss_d, estimate, penalty = self._critic_loss(real, fake.detach())
            self.opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            self.opt_d.step()
            if self.cfg.model.family == "wgan_clip":
                losses.clip_weights(self.D, train.clip_value)
            sums[0] += loss_d.detach()
            sums[2] += estimate.detach()
            sums[3] += penalty.detach()
        sums /= train.critic_steps  # critic terms as means over the critic steps
        with self.autocast():
            loss_g = (losses.wasserstein_generator_loss(self.D, fake) if self.wasserstein
                      else losses.bce_generator_loss(self.D, fake))
        self.opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        self.opt_g.step()
        sums[1] += loss_g.detach()
        self.step += 1
        return sums

    def run_iteration(self) -> dict:
        """One Tune iteration of training (no evaluation): the metrics of its steps."""
        assert not self.finished, "the trainer has done all its steps"
        steps = min(self.cfg.training.steps_per_iteration, self.total_steps - self.step)
        self.G.train()
        self.D.train()
        started = time.perf_counter()
        sums = torch.zeros(4, device=self.device)
        low = torch.full((2,), math.inf, device=self.device)  # per-step extremes of loss/D, loss/G
        high = torch.full((2,), -math.inf, device=self.device)
        for _ in range(steps):
            step = self.train_step()
            sums += step
            low, high = torch.minimum(low, step[:2]), torch.maximum(high, step[:2])
        read = torch.cat([sums / steps, high - low]).tolist()  # the one device read
        loss_d, loss_g, estimate, penalty = read[:4]
        # how far each loss moved within the iteration: 0 when training is stuck (trainables/health.py)
        self.loss_ranges = {"loss/D": read[4], "loss/G": read[5]} if steps > 1 else {}
        seconds = time.perf_counter() - started
        self.iteration += 1
        if not (math.isfinite(loss_d) and math.isfinite(loss_g)):
            raise TrainingDiverged(f"losses are not finite in the {steps} steps up to step {self.step} "
                                   f"(loss/D={loss_d}, loss/G={loss_g})")
        metrics = {"loss/D": loss_d, "loss/G": loss_g, "step": self.step, "epoch": self.sampler.epochs_done(),
                   "throughput/img_s": steps * self.cfg.training.critic_steps * self.cfg.training.batch_size / seconds}
        if self.wasserstein:
            metrics["wasserstein"] = estimate
        if self.cfg.model.family == "wgan_gp":
            metrics["loss/gp"] = penalty
        return metrics

    def state_dict(self) -> dict:
        return {"G": self.G.state_dict(), "D": self.D.state_dict(),
                "opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict(),
                "sampler": self.sampler.state_dict(), "noise": self.noise.get_state(),
                "rng": _rng_state(), "step": self.step, "iteration": self.iteration}

    def load_state_dict(self, state: dict) -> dict:
        """Continue from `state`, with this trainer's learning rates: under PBT the state
        comes from another trial, whose optimisers carry its rates. Returns the rates the
        state had, {"lr_g": ..., "lr_d": ...}, read before they are replaced."""
        self.G.load_state_dict(state["G"])
        self.D.load_state_dict(state["D"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        before = {}
        rates = self.cfg.training
        for name, opt, lr in (("lr_g", self.opt_g, rates.lr_g), ("lr_d", self.opt_d, rates.lr_d)):
            before[name] = opt.param_groups[0]["lr"]
            for group in opt.param_groups:
                group["lr"] = lr
        self.sampler.load_state_dict(state["sampler"])
        self.noise.set_state(state["noise"])
        _set_rng_state(state["rng"])
        self.step, self.iteration = state["step"], state["iteration"]
        return before
