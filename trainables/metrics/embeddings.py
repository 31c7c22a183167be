"""Embeddings that FID and KID are measured in, registered by name (one file each).

- `random-conv` (offline, cheapest): a fixed, randomly initialised convolutional network
  whose weights come from a seeded numpy generator, so the same features come out on
  every machine and torch version with no download. Not the default: on real music it did
  not rank checkpoints like Inception FID or FAD (docs/fid.md).
- `mel-stats` (offline cross-check): hand-crafted per-band statistics of the mel image:
  level and spread over time, and the size of frame-to-frame changes.
- `inception`: the standard FID Inception-v3 from a TorchScript file on disk
  (`trainables/metrics/inception.py`); its values are comparable with published FIDs.
- `inception-fast` (default): the same network on smaller inputs, cheaper on a CPU; not
  comparable with published FIDs, it ranks checkpoints like `inception` on real music
  (docs/fid.md has both measurements).
- `fad-musicnn`: Fréchet Audio Distance: mel images back to audio by the project's
  inversion, embedded by the pretrained musicnn tagger whose weights ship in its wheel
  (`trainables/metrics/musicnn.py`).

The offline embeddings' features have arbitrary scales, so they are `standardised`: the
metrics are computed on features divided by the real data's per-feature spread (see
`trainables/metrics/fid.py`), which weighs every feature alike and makes values read well. Their
values rank models trained on the same dataset; they are not comparable with Inception FIDs.
"""

import dataclasses
import json
import threading
from collections import OrderedDict
from collections.abc import Callable

import torch

from data.spec import DatasetSpec
from trainables.metrics.embedding import Embedding
from trainables.metrics.mel_stats import MelStatsEmbedding
from trainables.metrics.random_conv import RandomConvEmbedding

__all__ = ["BUILDERS", "Embedding", "build", "clear_shared", "shared"]


def _inception(weights: str | None = None, spec: DatasetSpec | None = None, precision: str = "fp32") -> Embedding:
    from trainables.metrics.inception import InceptionEmbedding  # loads a large file: only when asked for
    return InceptionEmbedding(weights, precision=precision)


def _inception_fast(weights: str | None = None, spec: DatasetSpec | None = None, precision: str = "fp32") -> Embedding:
    from trainables.metrics.inception import FAST_SIZE, InceptionEmbedding
    return InceptionEmbedding(weights, size=FAST_SIZE, precision=precision)


def _musicnn(weights: str | None = None, spec: DatasetSpec | None = None, precision: str = "fp32") -> Embedding:
    from trainables.metrics.musicnn import MusicnnEmbedding  # reads a checkpoint: only when asked for
    return MusicnnEmbedding(spec)


# name -> builder(inception_weights, dataset spec, precision); the registry imports the embeddings, never the reverse
BUILDERS: dict[str, Callable[..., Embedding]] = {
    RandomConvEmbedding.name: lambda weights=None, spec=None, precision="fp32": RandomConvEmbedding(),
    MelStatsEmbedding.name: lambda weights=None, spec=None, precision="fp32": MelStatsEmbedding(),
    "inception": _inception,
    "inception-fast": _inception_fast,
    "fad-musicnn": _musicnn,
}


# the embeddings that run under autocast (`evaluation.precision`); the others are cheap in float32
REDUCED_PRECISION = ("inception", "inception-fast")


def build(name: str, inception_weights: str | None = None, spec: DatasetSpec | None = None,
          precision: str = "fp32") -> Embedding:
    """`spec`: the dataset's, for embeddings that turn mel images back into audio (its mel
    parameters and segment length); None: the project's default 64 x 64, 22,050 Hz, 5 s.
    `precision`: fp32, bf16 or fp16 for the Inception networks; the others ignore it."""
    assert name in BUILDERS, f"unknown embedding {name!r}"
    return BUILDERS[name](inception_weights, spec, precision if name in REDUCED_PRECISION else "fp32")


# The networks this process has built, by everything that defines one: a Tune worker that
# runs trial after trial (actor reuse) loads each once. Small: a trial uses its in-loop
# embedding and its final_metrics'.
SHARED_MAX = 4
_shared: OrderedDict[tuple, Embedding] = OrderedDict()
_shared_lock = threading.Lock()


def shared(name: str, inception_weights: str | None = None, spec: DatasetSpec | None = None,
           precision: str = "fp32", device: torch.device = torch.device("cpu")) -> Embedding:
    """`build(...)` on `device`, in eval mode, built once per process for the same name,
    weights file, dataset spec, precision and device. Safe to share between trials: an
    embedding is a fixed function, called under no_grad; what a trial owns (its latents,
    KID subsets, coverage radii) lives in its Evaluator, never here."""
    precision = precision if name in REDUCED_PRECISION else "fp32"
    key = (name, inception_weights or None, json.dumps(dataclasses.asdict(spec), sort_keys=True) if spec else None,
           precision, str(torch.device(device)))
    with _shared_lock:
        if key in _shared:
            _shared.move_to_end(key)
            return _shared[key]
        embedding = build(name, inception_weights, spec, precision).to(device).eval()
        _shared[key] = embedding
        while len(_shared) > SHARED_MAX:
            _shared.popitem(last=False)
        return embedding


def clear_shared() -> None:
    """Forget the networks `shared` built (a test, or a worker that must free their memory)."""
    with _shared_lock:
        _shared.clear()
