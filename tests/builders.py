"""Tiny trial configs, images and a checkpoint's round trip, shared by the tests of the
networks, the trainer, health and checkpoints (on CPU, at widths that train in milliseconds)."""
import io

import torch

from tests.helpers import CHEAP_EMBEDDING
from trainables.config import ModelConfig, TrainingConfig, TrialConfig
from trainables.evaluation import EvaluationConfig


def model_config(family: str, **overrides) -> ModelConfig:
    norm = "layer" if family == "wgan_gp" else "batch"
    return ModelConfig(**{"family": family, "latent_dim": 8, "width": 4, "critic_norm": norm, **overrides})


def trial_config(family: str, image_size: int = 64, **training) -> TrialConfig:
    study = {"wgan_clip": {"optimizer": "rmsprop", "critic_steps": 2}, "wgan_gp": {"critic_steps": 2}}
    train = {"batch_size": 4, "iterations": 2, "steps_per_iteration": 2, **study.get(family, {}), **training}
    return TrialConfig(model_config(family, image_size=image_size), TrainingConfig(**train),
                       EvaluationConfig(samples=16, embedding=CHEAP_EMBEDDING))


def images(count: int = 12, size: int = 64, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(count, 1, size, size, generator=g) * 2 - 1).half()


def saved_and_loaded(state: dict) -> dict:
    """Through bytes, as a checkpoint file is: nothing may survive only as a live object."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)  # as trainables.checkpoint reads it
