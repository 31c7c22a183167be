"""The hyperparameters of one trial, as typed dataclasses.

A trial's Tune config is `{"model": {...}, "training": {...}, "evaluation": {...}}`; every field below is in
it and so in MLflow. Constructing these from that dict rejects unknown and missing keys,
so a search-space key that names nothing fails loudly instead of training on a default.

Defaults are the study's DCGAN 1 (batch 64, Adam 2e-4, beta1 0.5, latent 100, 64 x 64).
Fields that only one family reads (dropouts for dcgan2, clip_value for wgan_clip,
gp_lambda for wgan_gp) carry that family's value; `search_spaces/<family>.yaml` sets the
rest of each family's study settings explicitly (RMSprop, 5 critic steps, layer norm).
"""
from dataclasses import dataclass
from typing import Literal

from trainables.evaluation import EvaluationConfig

FAMILIES = ("dcgan1", "dcgan2", "wgan_clip", "wgan_gp")
WASSERSTEIN = ("wgan_clip", "wgan_gp")
IMAGE_SIZES = (64, 128)  # the square sizes; a [bands, frames] pair takes sides that are multiples of 16


@dataclass(frozen=True)
class ModelConfig:
    family: Literal["dcgan1", "dcgan2", "wgan_clip", "wgan_gp"] = "dcgan1"
    latent_dim: int = 100
    width: int = 64        # feature maps of the first critic layer / last generator hidden layer
    # the mel image: 64 (64 x 64) or 128, or [bands, frames] such as [80, 432] for the HiFi-GAN
    # preset; it must equal the dataset's n_mels and frames
    image_size: int | list[int] = 64
    dropout_g: float = 0.5  # dcgan2: rate of both generator dropouts
    dropout_d: float = 0.3  # dcgan2: rate of the discriminator dropout
    # Normalisation between critic layers. The gradient penalty is a per-sample quantity,
    # so wgan_gp must not use batch norm there (Gulrajani et al. use layer norm).
    critic_norm: Literal["batch", "layer", "none"] = "batch"

    def __post_init__(self):
        if not 1 <= self.latent_dim <= 4096 or not 1 <= self.width <= 4096:
            raise ValueError("latent_dim and width must lie between 1 and 4096")
        if isinstance(self.image_size, (list, tuple)):
            object.__setattr__(self, "image_size", tuple(self.image_size))  # hashable, as a frozen dataclass is
            if len(self.image_size) != 2 or any(not isinstance(side, int) or not 64 <= side <= 1024 or side % 16
                                                for side in self.image_size):
                raise ValueError(f"image_size as [bands, frames] needs two sides, each a multiple of 16, at "
                                 f"least 64 and at most 1024, got {list(self.image_size)}")
        elif self.image_size not in IMAGE_SIZES:
            raise ValueError(f"image_size must be one of {IMAGE_SIZES} or a [bands, frames] pair, got {self.image_size}")
        for name in ("dropout_g", "dropout_d"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"{name} must lie in [0, 1)")
        if self.family == "wgan_gp" and self.critic_norm == "batch":
            raise ValueError("wgan_gp's gradient penalty is per sample, so its critic cannot use batch norm: "
                             "set critic_norm to layer or none")

    @property
    def shape(self) -> tuple[int, int]:
        """(bands, frames) of the mel image."""
        if isinstance(self.image_size, tuple):
            return self.image_size
        return (self.image_size, self.image_size)


@dataclass(frozen=True)
class TrainingConfig:
    batch_size: int = 64
    optimizer: Literal["adam", "rmsprop"] = "adam"  # the study: Adam, but RMSprop for wgan_clip
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    beta1: float = 0.5     # Adam only
    beta2: float = 0.999   # Adam only
    critic_steps: int = 1  # discriminator steps per generator step (WGAN papers: 5)
    clip_value: float = 0.01  # wgan_clip: every critic weight is clamped to [-c, c]
    gp_lambda: float = 10.0   # wgan_gp: weight of the gradient penalty
    epochs: float | None = None      # stop after this many passes over the data (None: iterations decide)
    max_segments: int | None = None  # a seeded random subset of the dataset (the study's 60k, 30k)
    # the same, as a share of the dataset: 0.23 is the study's 60k of 260k at any dataset size
    data_fraction: float = 1.0
    # How a trial holds the mels (trainables/dataset_share.py): every trial on a node maps one
    # shared copy; uint8 halves it (255 steps over the mel's dB range: 0.31 dB for the study's).
    data_dtype: Literal["float16", "uint8"] = "float16"
    # on a GPU the trial's rows are copied there when they take at most this share of its
    # memory, else batches come from the shared host copy through pinned memory (0: never)
    data_device_share: float = 0.15
    iterations: int = 10           # Tune iterations; each ends with an evaluation
    steps_per_iteration: int = 100  # generator steps per iteration
    checkpoint_every: int = 1      # iterations between checkpoints
    seed: int = 0
    precision: Literal["auto", "fp32", "bf16"] = "auto"  # auto: bf16 autocast on a GPU that has it
    memory_format: Literal["auto", "channels_last", "contiguous"] = "auto"  # auto: channels_last (measured faster on CPU)
    deterministic: bool = False  # torch.use_deterministic_algorithms: bitwise repeatable, slower on GPU
    stop_on_collapse: bool = False  # end the trial at an iteration whose health is not ok (trainables/health.py)

    def __post_init__(self):
        if not 2 <= self.batch_size <= 65536:
            raise ValueError("batch_size must lie between 2 and 65536")
        for name in ("lr_g", "lr_d", "clip_value"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")
        if self.gp_lambda < 0:
            raise ValueError("gp_lambda must not be negative")
        for name in ("beta1", "beta2"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"{name} must lie in [0, 1)")
        for name, most in (("iterations", 10**6), ("steps_per_iteration", 10**6), ("checkpoint_every", 10**6),
                           ("critic_steps", 100)):
            if not 1 <= getattr(self, name) <= most:
                raise ValueError(f"{name} must lie between 1 and {most}")
        if self.epochs is not None and not 0 < self.epochs <= 10**6:
            raise ValueError("epochs must lie in (0, 1000000]")
        if not 0 <= self.seed < 2**32:
            raise ValueError("seed must lie between 0 and 2**32 - 1")
        if not 0 < self.data_fraction <= 1:
            raise ValueError("data_fraction must lie in (0, 1]")
        if not 0 <= self.data_device_share <= 1:
            raise ValueError("data_device_share must lie in [0, 1]")
        if self.max_segments is not None and not self.batch_size <= self.max_segments <= 10**9:
            raise ValueError("max_segments must lie between batch_size and 10**9")


# The sections of a trial's config, each a dataclass of its own.
SECTIONS = {"model": ModelConfig, "training": TrainingConfig, "evaluation": EvaluationConfig}


@dataclass(frozen=True)
class TrialConfig:
    model: ModelConfig
    training: TrainingConfig
    evaluation: EvaluationConfig

    @classmethod
    def from_tune(cls, config: dict) -> "TrialConfig":
        # "experiment" names which of a sweep's fixed settings this trial runs (platform/spec/spaces.py)
        if set(config) - {"experiment"} != set(SECTIONS):
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
