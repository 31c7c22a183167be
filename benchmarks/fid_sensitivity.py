"""How FID, KID and coverage respond to what goes wrong in generated mels, per embedding.

Real-looking mels from seeded synthetic techno are split by track into two disjoint
halves; one half is the reference, the other is scored as it is, with added noise, with
blur, and collapsed onto a few segments. A useful embedding gives the real halves a small
value, grows strictly with noise and blur, and scores collapse far worse than real. The
metrics are computed as the trainer's Evaluator computes them (standardised features for
the offline embeddings).

    .venv/bin/python benchmarks/fid_sensitivity.py [--tracks 48] [--inception-weights FILE]
"""
import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import platform  # noqa: E402,F401  (the repo's shim, before torch)

import numpy as np  # noqa: E402
import torch  # noqa: E402

from benchmarks import probes as fid_probes  # noqa: E402
from trainables.metrics import embeddings, fid  # noqa: E402
from trainables.metrics.feature_stats import feature_stats, in_batches  # noqa: E402
from trainables.metrics.coverage import density_coverage  # noqa: E402
from trainables.metrics.kid import kernel_inception_distance  # noqa: E402


def table(embedding, real: torch.Tensor, other: torch.Tensor) -> None:
    real_stats = feature_stats(in_batches(real, 64), embedding)
    centre, scale = real_stats.standardiser() if embedding.standardised else (0.0, 1.0)
    real_rows = (real_stats.sample - centre) / scale
    print(f"\n{embedding.name} ({embedding.dim} features)")
    print(f"  {'case':14s} {'FID':>10s} {'x halves':>9s} {'KID':>10s} {'coverage':>9s}")
    base = None
    for name, images in fid_probes.cases(other).items():
        stats = feature_stats(in_batches(images, 64), embedding)
        value = fid.fid(real_stats, stats, embedding.standardised)
        base = base or value
        rows = (stats.sample - centre) / scale
        kid = kernel_inception_distance(real_rows, rows)
        _, coverage = density_coverage(real_rows, rows)
        print(f"  {name:14s} {value:10.4g} {value / base:9.1f} {kid:10.4g} {coverage:9.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracks", type=int, default=48, help="synthetic tracks of 30 s (6 segments each)")
    parser.add_argument("--inception-weights", default="", help="a FID Inception TorchScript file")
    parser.add_argument("--embeddings", nargs="+", default=["random-conv", "mel-stats", "inception"],
                        choices=sorted(embeddings.BUILDERS))
    args = parser.parse_args()
    started = time.perf_counter()
    real, other = fid_probes.halves(*fid_probes.synthetic_mels(tracks=args.tracks))
    print(f"{len(real)} reference and {len(other)} scored segments (disjoint tracks), "
          f"rendered in {time.perf_counter() - started:.1f} s")
    for name in args.embeddings:
        try:
            embedding = embeddings.build(name, args.inception_weights or None)
        except FileNotFoundError as error:
            print(f"\n{name} left out: {error}")
            continue
        table(embedding, real, other)


if __name__ == "__main__":
    np.set_printoptions(precision=4)
    main()
