"""Evaluation of a generator during training: FID, KID, density and coverage; at a
trial's end, `final_metrics` in other embeddings (say FAD beside the in-loop FID).

`EvaluationConfig` is the trial's `evaluation` section; `Evaluator` is built once per
trial (real statistics from the cache next to the dataset, a seeded latent batch) and
called at the iterations `EvaluationSchedule` names: where the sweep's scheduler reads
`fid` (ASHA's rungs, PBT's perturbations), every `evaluation.every` iterations and a
trial's last. The fakes are generated and embedded batch by batch, so only their
statistics (and a bounded sample of feature rows) are held; KID, density and coverage
run in torch on the evaluation device.
"""
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch

from data.dataset import MANIFEST, SEGMENTS, DatasetError, read_manifest, read_spec
from data.spec import DatasetSpec
from trainables.metrics import embeddings, fid
from trainables.metrics.coverage import density_coverage, real_radii
from trainables.metrics.kid import kernel_inception_distance

log = logging.getLogger(__name__)
EmbeddingName = Literal["random-conv", "mel-stats", "inception", "inception-fast", "fad-musicnn"]


@dataclass(frozen=True)
class EvaluationConfig:
    samples: int = 512  # generated and real images per evaluation
    # iterations between evaluations, besides those where the scheduler reads fid and the
    # trial's last (EvaluationSchedule); 0: a quarter of training.iterations, so a FIFO
    # trial is judged about four times; 1: every iteration (every point of the fid curve)
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
    vocoder: Literal["griffin-lim", "hifigan"] = "griffin-lim"
    artifacts_every: int = 4    # evaluations between sample artifacts; a trial's first and last always have them
    checkpoint_artifacts: bool = True  # the last and the best (lowest fid) checkpoint as run artifacts

    def __post_init__(self):
        if not 16 <= self.samples <= 10**6:
            raise ValueError("samples must lie between 16 and 1000000")
        if not 0 <= self.every <= 10**6:
            raise ValueError("every must lie between 0 (a quarter of the iterations) and 1000000")
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


def _fingerprint(dataset_path: str) -> str:
    try:
        return read_manifest(dataset_path)["fingerprint"]
    except FileNotFoundError:
        raise FileNotFoundError(f"{dataset_path} has no {MANIFEST}, whose fingerprint keys the cached "
                                "real-data FID statistics: point the trial at a built dataset") from None


def dataset_spec(dataset_path: str) -> DatasetSpec | None:
    """The mel and segment parameters a dataset was built with (for embeddings that turn
    mels back into audio), or None where it has no manifest or records none."""
    try:
        return read_spec(dataset_path)
    except (FileNotFoundError, DatasetError):
        return None


@dataclass(frozen=True)
class EvaluationSchedule:
    """The iterations whose results carry `fid`: where the sweep's scheduler reads it, every
    `evaluation.every` and a trial's last. Tune's ASHA and PBT skip results without their
    metric (platform/spec/tune_space.py says which iterations they act on), so evaluating only
    here leaves every decision as it was and spends the rest of the trial training."""
    at: tuple[int, ...] = ()  # ASHA's rungs: the first iteration at or past each milestone
    period: int = 0           # PBT's perturbation interval: every multiple of it

    def due(self, iteration: int, finished: bool, cfg: EvaluationConfig, iterations: int) -> bool:
        every = cfg.every or max(1, math.ceil(iterations / 4))
        return (finished or iteration % every == 0 or iteration in self.at
                or bool(self.period) and iteration % self.period == 0)


def precision(cfg: EvaluationConfig, device: torch.device) -> str:
    """`evaluation.precision` on `device`: auto resolved to what the device does natively."""
    if cfg.precision != "auto":
        return cfg.precision
    from trainables.metrics.inception import native_reduced_precision
    return native_reduced_precision(device)


def _embedding(cfg: EvaluationConfig, name: str, dataset_path: str, device: torch.device):
    return embeddings.build(name, cfg.inception_weights or None, dataset_spec(dataset_path),
                            precision(cfg, device)).to(device)


def real_vs_real(cfg: EvaluationConfig, dataset_path: str, name: str | None = None,
                 device: torch.device = torch.device("cpu")) -> dict:
    """The fid of held-out real images against the trials' reference ({"fid", "count"}):
    what a perfect generator would score, computed once per dataset, embedding and sample
    count (cached beside the real statistics)."""
    embedding = _embedding(cfg, name or cfg.embedding, dataset_path, device)
    return fid.real_vs_real(dataset_path, _fingerprint(dataset_path), embedding, cfg.samples, cfg.seed, device)


def prepare_reference(cfg: EvaluationConfig, dataset_path: str, device: torch.device = torch.device("cpu")) -> Path:
    """Compute (or find) the real-data statistics a sweep's trials will read, before they
    start: a driver that calls this surfaces missing Inception weights early, and every
    trial finds the cache warm."""
    embedding = _embedding(cfg, cfg.embedding, dataset_path, device)
    fingerprint = _fingerprint(dataset_path)
    fid.real_stats(dataset_path, fingerprint, embedding, cfg.samples, cfg.seed, device=device)
    return fid.cache_path(dataset_path, fingerprint, embedding, cfg.samples, cfg.seed)


class Evaluator:
    def __init__(self, cfg: EvaluationConfig, dataset_path: str, images: torch.Tensor, latent_dim: int,
                 device: torch.device, batch_size: int = 256, fingerprint: str | None = None):
        self.cfg, self.batch_size, self.dataset_path, self.device = cfg, batch_size, dataset_path, device
        fingerprint = self.fingerprint = fingerprint or _fingerprint(dataset_path)
        self.embedding = _embedding(cfg, cfg.embedding, dataset_path, device)
        # The reference is read from the built dataset, not from `images`, which may be a
        # trial's training subset; `images` serves only where no segments are on disk.
        on_disk = (Path(dataset_path) / SEGMENTS).exists()
        self.images = None if on_disk else images
        self.real = fid.real_stats(dataset_path, fingerprint, self.embedding, cfg.samples, cfg.seed,
                                   images=self.images, device=device)
        self.fixed_z = torch.randn(cfg.samples, latent_dim, device=device,
                                   generator=torch.Generator(device=device).manual_seed(cfg.seed))
        # KID, density and coverage in float64 on the device, rows standardised as FID is
        centre, scale = self.real.standardiser() if self.embedding.standardised else (0.0, 1.0)
        centre, scale = (torch.as_tensor(v, dtype=torch.float64, device=device) for v in (centre, scale))
        self._standardise = lambda rows: (torch.as_tensor(rows, device=device).double() - centre) / scale
        self.real_rows = self._standardise(self.real.sample)
        self.radii = None  # the real neighbourhoods of density and coverage: the same every call
        if cfg.coverage and len(self.real_rows) <= cfg.coverage_k:
            log.warning("density and coverage left out: %d real images are too few for coverage_k=%d",
                        len(self.real_rows), cfg.coverage_k)
        elif cfg.coverage:
            self.radii = real_radii(self.real_rows, cfg.coverage_k)

    @property
    def tags(self) -> dict:
        """What identifies the feature space, for the trial's run."""
        return {"fid.embedding": self.embedding.name, "fid.embedding_key": self.embedding.cache_key}

    @torch.no_grad()
    def __call__(self, generator: torch.nn.Module) -> dict:
        started = time.perf_counter()
        was_training = generator.training
        generator.eval()
        try:
            fake = fid.feature_stats((generator(z) for z in self.fixed_z.split(self.batch_size)), self.embedding)
        finally:
            generator.train(was_training)
        metrics = {"fid": fid.fid(self.real, fake, self.embedding.standardised)}
        fake_rows = self._standardise(fake.sample)
        if self.cfg.kid:
            metrics["kid"] = kernel_inception_distance(self.real_rows, fake_rows, self.cfg.kid_subsets,
                                                       self.cfg.kid_subset_size, self.cfg.seed)
        if self.radii is not None:
            metrics["density"], metrics["coverage"] = density_coverage(self.real_rows, fake_rows,
                                                                       self.cfg.coverage_k, self.radii)
        metrics["eval/seconds"] = time.perf_counter() - started
        return metrics

    @torch.no_grad()
    def final(self, generator: torch.nn.Module) -> dict:
        """`final_metrics` of the generator: {"final/<embedding>": fid in that embedding}."""
        metrics = {}
        for name in self.cfg.final_metrics:
            embedding = _embedding(self.cfg, name, self.dataset_path, self.device)
            real = fid.real_stats(self.dataset_path, self.fingerprint, embedding, self.cfg.samples, self.cfg.seed,
                                  images=self.images, device=self.device)
            was_training = generator.training
            generator.eval()
            try:
                fake = fid.feature_stats((generator(z) for z in self.fixed_z.split(self.batch_size)), embedding)
            finally:
                generator.train(was_training)
            metrics[f"final/{name}"] = fid.fid(real, fake, embedding.standardised)
        return metrics
