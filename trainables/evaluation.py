"""Evaluation of a generator during training: FID on a fixed latent batch.

`EvaluationConfig` is the trial's `evaluation` section; `Evaluator` is built once per
trial (real statistics from the cache next to the dataset, a seeded latent batch) and
called at the end of every Tune iteration, returning flat metrics for the report.
"""
import time
from dataclasses import dataclass
from typing import Literal

import torch

from trainables import embeddings, fid


@dataclass(frozen=True)
class EvaluationConfig:
    samples: int = 512  # generated and real images per evaluation
    embedding: Literal["random-conv"] = "random-conv"  # the feature space FID is measured in
    seed: int = 0       # fixes the latent batch and the real subset

    def __post_init__(self):
        if self.samples < 16:
            raise ValueError("samples must be at least 16")


class Evaluator:
    def __init__(self, cfg: EvaluationConfig, dataset_path: str, images: torch.Tensor, latent_dim: int,
                 device: torch.device, batch_size: int = 256):
        self.cfg, self.batch_size = cfg, batch_size
        self.embedding = embeddings.build(cfg.embedding).to(device)
        self.real_mu, self.real_sigma = fid.real_stats(dataset_path, images, self.embedding, cfg.samples, cfg.seed)
        self.fixed_z = torch.randn(cfg.samples, latent_dim, device=device,
                                   generator=torch.Generator(device=device).manual_seed(cfg.seed))

    @torch.no_grad()
    def __call__(self, generator: torch.nn.Module) -> dict:
        started = time.perf_counter()
        was_training = generator.training
        generator.eval()
        fakes = torch.cat([generator(self.fixed_z[i:i + self.batch_size])
                           for i in range(0, len(self.fixed_z), self.batch_size)])
        generator.train(was_training)
        mu, sigma = fid.feature_stats(fakes, self.embedding)
        score = fid.frechet_distance(mu, sigma, self.real_mu, self.real_sigma)
        return {"fid": score, "eval/seconds": time.perf_counter() - started}
