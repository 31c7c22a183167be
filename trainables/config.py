"""The hyperparameters of one trial, as typed dataclasses.

A trial's Tune config is `{"model": {...}, "training": {...}, "evaluation": {...}}`; every field below is in
it and so in MLflow. Constructing these from that dict rejects unknown and missing keys,
so a search-space key that names nothing fails loudly instead of training on a default.

This module imports nothing of the training stack (torch, scipy, the embeddings): the
driver and `--dry-run` validate search-space files against these same dataclasses, and
that must not cost torch's import.

Defaults are the study's DCGAN 1 (batch 64, Adam 2e-4, beta1 0.5, latent 100, 64 x 64).
Fields that only one family reads (dropouts for dcgan2, clip_value for wgan_clip,
gp_lambda for wgan_gp) carry that family's value; `search_spaces/<family>.yaml` sets the
rest of each family's study settings explicitly (RMSprop, 5 critic steps, layer norm).
"""
import os
from dataclasses import dataclass, field
from typing import Literal, get_args

from data.spec import DatasetSpec

# The model families, named here only: FAMILIES and trainables/models.py's tables derive from it.
Family = Literal["dcgan1", "dcgan2", "wgan_clip", "wgan_gp"]
FAMILIES = get_args(Family)
WASSERSTEIN = ("wgan_clip", "wgan_gp")
# The feature spaces of trainables/metrics/embeddings.py, by name
EmbeddingName = Literal["random-conv", "mel-stats", "inception", "inception-fast", "fad-musicnn"]
Vocoder = Literal["griffin-lim", "hifigan"]  # trainables/vocoder.py
VOCODERS = get_args(Vocoder)
IMAGE_SIZES = (64, 128)  # the square sizes; a [bands, frames] pair takes sides that are multiples of 16


@dataclass(frozen=True)
class ModelConfig:
    family: Family = "dcgan1"
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
    # a trial's length (trainables/trial_length.py): `epochs` passes over its segments, or
    # `iterations` Tune iterations (None: 10); a file sets one of the two
    epochs: float | None = None
    max_segments: int | None = None  # a seeded random subset of the dataset (the study's 60k, 30k)
    # the same, as a share of the dataset: 0.23 is the study's 60k of 260k at any dataset size
    data_fraction: float = 1.0
    # How a trial holds the mels (trainables/dataset_share.py): every trial on a node maps one
    # shared copy; uint8 halves it (255 steps over the mel's dB range: 0.31 dB for the study's).
    data_dtype: Literal["float16", "uint8"] = "float16"
    # on a GPU the trial's rows are copied there when they take at most this share of its
    # memory, else batches come from the shared host copy through pinned memory (0: never)
    data_device_share: float = 0.15
    iterations: int | None = None
    steps_per_iteration: int = 100  # generator steps per iteration
    checkpoint_every: int = 1      # iterations between checkpoints
    seed: int = 0
    precision: Literal["auto", "fp32", "bf16"] = "auto"  # auto: bf16 autocast where native (trainables/native_precision.py)
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
            if getattr(self, name) is not None and not 1 <= getattr(self, name) <= most:
                raise ValueError(f"{name} must lie between 1 and {most}")
        if self.epochs is not None and not 0 < self.epochs <= 10**6:
            raise ValueError("epochs must lie in (0, 1000000]")
        if self.epochs is not None and self.iterations is not None:
            raise ValueError("epochs and iterations both set a trial's length: set one of them")
        if not 0 <= self.seed < 2**32:
            raise ValueError("seed must lie between 0 and 2**32 - 1")
        if not 0 < self.data_fraction <= 1:
            raise ValueError("data_fraction must lie in (0, 1]")
        if not 0 <= self.data_device_share <= 1:
            raise ValueError("data_device_share must lie in [0, 1]")
        if self.max_segments is not None and not self.batch_size <= self.max_segments <= 10**9:
            raise ValueError("max_segments must lie between batch_size and 10**9")


@dataclass(frozen=True)
class EvaluationConfig:
    samples: int = 512  # generated and real images per evaluation
    # iterations between evaluations, besides those where the scheduler reads fid and the
    # trial's last (EvaluationSchedule); 0: an eighth of the trial's length, so its fid curve
    # has about eight points (trainables/evaluation_schedule.py); 1: every iteration
    every: int = 0
    # the embedding's arithmetic (Inception only): auto is bf16 where the device has it
    # natively (a GPU, a CPU with AMX or AVX512-BF16), else fp32; see docs/fid.md for its drift
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    # the feature space the metrics are measured in (trainables/metrics/embeddings.py):
    # inception-fast ranked checkpoints of real music like Inception FID (docs/fid.md)
    embedding: EmbeddingName = "inception-fast"
    # scored once more at a trial's end, logged as final/<name> (fad-musicnn: Fréchet Audio Distance)
    final_metrics: list[EmbeddingName] = field(default_factory=list)
    seed: int = 0       # fixes the latent batch, the real subset and KID's subsets
    inception_weights: str = ""  # a TorchScript file; empty: look in the usual places
    kid: bool = True
    kid_subsets: int = 100
    kid_subset_size: int = 1000
    coverage: bool = True  # density and coverage, with k nearest real neighbours
    coverage_k: int = 5
    # what an evaluation leaves in the trial's MLflow run (trainables/artifacts.py)
    grid_images: int = 16       # generated mels (the first of the latent batch) in samples/step_N.png; 0: none
    audio_clips: int = 2        # of those, rendered to audio/step_N_i.wav by `vocoder`; 0: none
    griffin_lim_iters: int = 32
    # hifigan: the pretrained neural vocoder (trainables/vocoder.py), for a dataset.mel.kind hifigan
    vocoder: Vocoder = "griffin-lim"
    artifacts_every: int = 4    # evaluations between sample artifacts; a trial's first, last and each new best fid always have them
    checkpoint_artifacts: bool = True  # the last and the best (lowest fid) checkpoint as run artifacts

    def __post_init__(self):
        if not 16 <= self.samples <= 10**6:
            raise ValueError("samples must lie between 16 and 1000000")
        if not 0 <= self.every <= 10**6:
            raise ValueError("every must lie between 0 (an eighth of the trial's length) and 1000000")
        if not 0 <= self.seed < 2**32 or self.kid_subsets > 10**4:
            raise ValueError("seed must lie between 0 and 2**32 - 1, kid_subsets at most 10000")
        if not 0 <= self.grid_images <= self.samples or not 0 <= self.audio_clips <= self.samples:
            raise ValueError("grid_images and audio_clips must lie between 0 and samples")
        if self.griffin_lim_iters < 1 or self.artifacts_every < 1:
            raise ValueError("griffin_lim_iters and artifacts_every must be at least 1")
        if self.kid_subsets < 1 or self.kid_subset_size < 2:
            raise ValueError("kid_subsets must be at least 1 and kid_subset_size at least 2")
        if not 1 <= self.coverage_k < self.samples:
            raise ValueError("coverage_k must be at least 1 and below samples")
        if self.inception_weights and not os.path.isfile(self.inception_weights):  # missing, a folder, /dev/zero
            raise ValueError(f"inception_weights {self.inception_weights!r} is not a file (give a TorchScript "
                             "Inception-v3 file, or leave it empty for the usual places)")


def hifigan_mismatch(spec: DatasetSpec) -> str | None:
    """Why `spec`'s mel cannot be voiced by HiFi-GAN, or None: `evaluation.vocoder: hifigan`
    is checked against the dataset when a spec loads, before any torch is imported."""
    if spec.mel.kind != "hifigan":
        return (f"the dataset's mel is kind {spec.mel.kind!r} ({spec.mel.n_mels} bands, hop {spec.hop_length()}), "
                "not HiFi-GAN's; build it with dataset.mel.kind: hifigan (see search_spaces/hifigan.yaml)")
    return None


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
