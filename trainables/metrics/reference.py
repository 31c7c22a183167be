"""The reference set: which real images a trial's fakes are compared with, their cached
statistics, and the real-vs-real baseline a perfect generator would score against them.

One rule draws the reference, whether the images are read from the built dataset or held
in memory (a dataset without segments on disk): the rows `subset_indices(total, count,
seed)` of the dataset as `load_mels` orders it (`reference_rows`), visited in a seeded
shuffled order so the rows `FeatureStats` keeps (the first MAX_KEPT_ROWS) are a random
draw of them rather than the first tracks. So one cache key (fingerprint, embedding,
count, seed) names one set of images however they were read, and a trial that trains on
a subset (training.max_segments) is scored against the same reference as every other.

`real_vs_real` holds images the reference left out against it: the fid's real-data floor,
computed once per dataset by the sweep's driver and cached beside the statistics.
"""
import json
import os

import numpy as np
import torch

from data.dataset import load_mels, mels_at, segment_count, subset_indices
from trainables.metrics.embedding import Embedding
from trainables.metrics.feature_stats import FeatureStats, cache_path, cached, feature_stats, in_batches
from trainables.metrics.fid import fid


def reference_rows(total: int, count: int, seed: int) -> np.ndarray:
    """The rows of a dataset of `total` images that are its reference of (count, seed), ascending."""
    return subset_indices(total, count, seed)


def _shuffled(rows: np.ndarray, seed: int) -> torch.Tensor:
    rows = torch.from_numpy(rows)
    return rows[torch.randperm(len(rows), generator=torch.Generator().manual_seed(seed))]


def _reference(dataset_path: str | os.PathLike, count: int, seed: int, images: torch.Tensor | None,
               device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(images, order): the reference is images[order]. From disk only its rows are read
    (load_mels' max_segments draws them by `reference_rows`' rule), so they are all of `images`."""
    if images is None:
        images = torch.from_numpy(load_mels(dataset_path, max_segments=count, seed=seed)).unsqueeze(1).to(device)
        return images, _shuffled(np.arange(len(images)), seed)
    return images, _shuffled(reference_rows(len(images), count, seed), seed)


def _compute(images: torch.Tensor, order: torch.Tensor, embedding: Embedding) -> FeatureStats:
    # indexed a chunk at a time: the reference is never copied whole
    return feature_stats((images[chunk.to(images.device)] for chunk in order.split(256)), embedding)


def real_stats(dataset_path: str | os.PathLike, fingerprint: str, embedding: Embedding, count: int,
               seed: int = 0, images: torch.Tensor | None = None,
               device: torch.device = torch.device("cpu")) -> FeatureStats:
    """Statistics of the reference, from the cache next to the dataset. On a miss the images
    are read from the dataset on disk, or taken from `images` (the whole dataset, in memory)."""
    return cached(cache_path(dataset_path, fingerprint, embedding, count, seed),
                  lambda: _compute(*_reference(dataset_path, count, seed, images, device), embedding))


def _count(dataset_path: str | os.PathLike, images: torch.Tensor | None) -> int:
    return len(images) if images is not None else segment_count(dataset_path)


def _at(dataset_path: str | os.PathLike, images: torch.Tensor | None, rows: np.ndarray) -> torch.Tensor:
    """The images at these ascending rows; from disk only those rows are read."""
    if images is not None:
        return images[torch.from_numpy(rows)]
    return torch.from_numpy(mels_at(dataset_path, rows)).unsqueeze(1)


def _held_out_rows(total: int, count: int, seed: int) -> np.ndarray:
    """Up to `count` seeded rows that are not in the reference of (count, seed), ascending."""
    rest = np.setdiff1d(np.arange(total), reference_rows(total, count, seed))
    return np.sort(np.random.default_rng(seed + 1).permutation(rest)[:count])


def _floor_sets(dataset_path: str | os.PathLike, fingerprint: str, embedding: Embedding, count: int, seed: int,
                images: torch.Tensor | None, device: torch.device) -> tuple[FeatureStats, torch.Tensor]:
    """(statistics, images held out from them): the reference and images it left out, or
    where the reference takes (nearly) the whole dataset, two disjoint seeded halves of it.
    Only the rows these use are read, so the driver's memory is bounded by `count`, not by
    the dataset's size."""
    total = _count(dataset_path, images)
    held_out = _held_out_rows(total, count, seed)
    if len(held_out) >= count // 2 and len(held_out) >= 2:
        return (real_stats(dataset_path, fingerprint, embedding, count, seed, images=images, device=device),
                _at(dataset_path, images, held_out))
    # the reference is (nearly) the whole dataset, which is then at most about 2 x count rows
    every = images if images is not None else _at(dataset_path, None, np.arange(total))
    order = torch.randperm(total, generator=torch.Generator().manual_seed(seed))
    half = total // 2
    assert half >= 2, f"the dataset at {dataset_path} has too few segments for a real-vs-real baseline"
    return feature_stats(in_batches(every[order[:half]].to(device)), embedding), every[order[half:2 * half]]


def real_vs_real(dataset_path: str | os.PathLike, fingerprint: str, embedding: Embedding, count: int,
                 seed: int = 0, device: torch.device = torch.device("cpu"),
                 images: torch.Tensor | None = None) -> dict:
    """{"fid": held-out real images against the reference, "count": how many were held out}.

    The real-data floor of an fid: trials are scored against `real_stats(..., count, seed)`,
    and a generator as good as the data scores this. Fewer than `count` are held out when the
    dataset is smaller than twice `count` (FID grows as samples shrink, so the count is kept
    beside the value). Cached beside the reference, so each sweep of a dataset computes it once.
    """
    path = cache_path(dataset_path, fingerprint, embedding, count, seed).with_suffix(".real-vs-real.json")
    if path.exists():
        return json.loads(path.read_text())
    reference, held_out = _floor_sets(dataset_path, fingerprint, embedding, count, seed, images, device)
    stats = feature_stats(in_batches(held_out.to(device)), embedding)
    result = {"fid": fid(reference, stats, embedding.standardised), "count": len(held_out)}
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(result))
    os.replace(tmp, path)
    return result
