"""Evaluation of a generator during training: FID, KID, density and coverage; at a
trial's end, `final_metrics` in other embeddings (say FAD beside the in-loop FID).

`Evaluator` reads the trial's `evaluation` section (trainables/config.py), is built once
per trial (real statistics from the cache next to the dataset, a seeded latent batch) and
called at the iterations `EvaluationSchedule` (trainables/evaluation_schedule.py) names:
where the sweep's scheduler reads `fid` (ASHA's rungs, PBT's perturbations), every
`evaluation.every` iterations and a trial's last. The fakes are generated and embedded batch by batch, so only their
statistics (and a bounded sample of feature rows) are held; KID, density and coverage
run in torch on the evaluation device.
"""
import logging
import time
from pathlib import Path

import torch

from data.dataset import MANIFEST, SEGMENTS, DatasetError, read_manifest, read_spec
from data.spec import DatasetSpec
from trainables.config import EvaluationConfig
from trainables.metrics import embeddings, reference
from trainables.metrics.embedding import Embedding
from trainables.metrics.feature_stats import FeatureStats, cache_path, feature_stats
from trainables.metrics.fid import fid
from trainables.metrics.coverage import density_coverage, real_radii
from trainables.metrics.kid import kernel_inception_distance
from trainables.models import inference

log = logging.getLogger(__name__)


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


def precision(cfg: EvaluationConfig, device: torch.device) -> str:
    """`evaluation.precision` on `device`: auto resolved to what the device does natively."""
    if cfg.precision != "auto":
        return cfg.precision
    from trainables.native_precision import native_reduced_precision
    return native_reduced_precision(device)


def _embedding(cfg: EvaluationConfig, name: str, dataset_path: str, device: torch.device,
               kept: bool = True) -> Embedding:
    """The network; `kept`: built once per worker process (embeddings.shared), so a reused Tune
    actor's next trial finds it loaded. The driver's one-off uses do not keep it."""
    args = (name, cfg.inception_weights or None, dataset_spec(dataset_path), precision(cfg, device))
    return embeddings.shared(*args, device) if kept else embeddings.build(*args).to(device).eval()


def real_vs_real(cfg: EvaluationConfig, dataset_path: str, name: str | None = None,
                 device: torch.device = torch.device("cpu")) -> dict:
    """The fid of held-out real images against the trials' reference ({"fid", "count"}):
    what a perfect generator would score, computed once per dataset, embedding and sample
    count (cached beside the real statistics)."""
    embedding = _embedding(cfg, name or cfg.embedding, dataset_path, device, kept=False)
    return reference.real_vs_real(dataset_path, _fingerprint(dataset_path), embedding, cfg.samples, cfg.seed, device)


def prepare_reference(cfg: EvaluationConfig, dataset_path: str, device: torch.device = torch.device("cpu")) -> Path:
    """Compute (or find) the real-data statistics a sweep's trials will read, before they
    start: a driver that calls this surfaces missing Inception weights early, and every
    trial finds the cache warm."""
    embedding = _embedding(cfg, cfg.embedding, dataset_path, device, kept=False)
    fingerprint = _fingerprint(dataset_path)
    reference.real_stats(dataset_path, fingerprint, embedding, cfg.samples, cfg.seed, device=device)
    return cache_path(dataset_path, fingerprint, embedding, cfg.samples, cfg.seed)


class Evaluator:
    """One trial's evaluation. Its embedding network and real statistics may be another
    trial's too (the worker's, read-only); its latents, KID seed and coverage radii are its own."""

    def __init__(self, cfg: EvaluationConfig, dataset_path: str, images: torch.Tensor, latent_dim: int,
                 device: torch.device, batch_size: int = 256, fingerprint: str | None = None):
        self.cfg, self.batch_size, self.dataset_path, self.device = cfg, batch_size, dataset_path, device
        fingerprint = self.fingerprint = fingerprint or _fingerprint(dataset_path)
        self.embedding = _embedding(cfg, cfg.embedding, dataset_path, device)
        # The reference is read from the built dataset, not from `images`, which may be a
        # trial's training subset; `images` serves only where no segments are on disk.
        on_disk = (Path(dataset_path) / SEGMENTS).exists()
        self.images = None if on_disk else images
        self.real = reference.real_stats(dataset_path, fingerprint, self.embedding, cfg.samples, cfg.seed,
                                         images=self.images, device=device)
        self.fixed_z = torch.randn(cfg.samples, latent_dim, device=device,
                                   generator=torch.Generator(device=device).manual_seed(cfg.seed))
        # KID, density and coverage in float64 on the device, rows standardised as FID is
        centre, scale = self.real.standardiser() if self.embedding.standardised else (0.0, 1.0)
        centre, scale = (torch.tensor(v, dtype=torch.float64, device=device) for v in (centre, scale))
        self._standardise = lambda rows: (torch.tensor(rows, dtype=torch.float64, device=device) - centre) / scale
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

    def _fake_stats(self, generator: torch.nn.Module, embedding: Embedding) -> FeatureStats:
        """Statistics of the generator's images from the fixed latents, generated batch by batch."""
        with inference(generator):
            return feature_stats((generator(z) for z in self.fixed_z.split(self.batch_size)), embedding)

    @torch.no_grad()
    def __call__(self, generator: torch.nn.Module) -> dict:
        started = time.perf_counter()
        fake = self._fake_stats(generator, self.embedding)
        metrics = {"fid": fid(self.real, fake, self.embedding.standardised)}
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
            real = reference.real_stats(self.dataset_path, self.fingerprint, embedding, self.cfg.samples,
                                        self.cfg.seed, images=self.images, device=self.device)
            metrics[f"final/{name}"] = fid(real, self._fake_stats(generator, embedding), embedding.standardised)
        return metrics
