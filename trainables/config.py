"""The hyperparameters of one trial, as typed dataclasses.

A trial's Tune config is `{"model": {...}, "training": {...}, "evaluation": {...}}`; every field below is in
it and so in MLflow. Constructing these from that dict rejects unknown and missing keys,
so a search-space key that names nothing fails loudly instead of training on a default.
"""
from dataclasses import dataclass
from typing import Literal

from trainables.evaluation import EvaluationConfig


@dataclass(frozen=True)
class ModelConfig:
    family: Literal["dcgan1"] = "dcgan1"
    latent_dim: int = 100
    width: int = 64  # feature maps of the widest-but-one layer, as in the PyTorch DCGAN

    def __post_init__(self):
        if self.latent_dim < 1 or self.width < 1:
            raise ValueError("latent_dim and width must be at least 1")


@dataclass(frozen=True)
class TrainingConfig:
    batch_size: int = 64
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    iterations: int = 10           # Tune iterations; each ends with an evaluation
    steps_per_iteration: int = 100  # optimiser steps of both networks per iteration
    checkpoint_every: int = 1      # iterations between checkpoints
    seed: int = 0

    def __post_init__(self):
        if self.batch_size < 2:
            raise ValueError("batch_size must be at least 2")
        for name in ("lr_g", "lr_d"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")
        for name in ("beta1", "beta2"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"{name} must lie in [0, 1)")
        for name in ("iterations", "steps_per_iteration", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")


# The sections of a trial's config, each a dataclass of its own.
SECTIONS = {"model": ModelConfig, "training": TrainingConfig, "evaluation": EvaluationConfig}


@dataclass(frozen=True)
class TrialConfig:
    model: ModelConfig
    training: TrainingConfig
    evaluation: EvaluationConfig

    @classmethod
    def from_tune(cls, config: dict) -> "TrialConfig":
        if set(config) != set(SECTIONS):
            raise ValueError(f"a trial config has the sections {sorted(SECTIONS)}, got {sorted(config)}")
        return cls(**{name: SECTIONS[name](**config[name]) for name in SECTIONS})


def flatten(config: dict, prefix: str = "") -> dict:
    """{"model": {"width": 8}} -> {"model.width": 8}: MLflow params line up by these names."""
    flat = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat
