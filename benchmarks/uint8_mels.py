"""uint8 mels (training.data_dtype: uint8) against float16: the step in dB, FID and training.

    .venv/bin/python benchmarks/uint8_mels.py [--tracks 48] [--steps 300] [--samples 256]

On synthetic techno (data/synthetic.py, the per-track step of the pipeline, no Ray):
1. the quantisation step and the largest error it makes, in dB;
2. FID of the real images quantised against the same images in float16, beside the FID of
   one half of the real images against the other (what FID reads as "no difference");
3. the same DCGAN 1 trained from the same seed on float16 and on uint8 images, and once more
   in float16 from another seed (the spread a seed alone gives), iterations alternating so
   that machine noise hits all alike: the last iteration's losses and the FID of each
   generator's samples against the float16 images. The embedding is the trials' default,
   inception-fast. "Not hurt" reads as: the uint8 run's FID differs from the float16 run's
   by less than the other seed's does.
"""
import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from data import dataset, mel, node_cache, sources, tracks  # noqa: E402
from data.spec import DatasetSpec, SyntheticSource  # noqa: E402
from trainables.config import TrialConfig  # noqa: E402
from trainables.dataset_share import shared_images  # noqa: E402
from trainables.metrics import embeddings, fid  # noqa: E402
from trainables.metrics.feature_stats import feature_stats, in_batches  # noqa: E402
from trainables.trainer import GANTrainer  # noqa: E402


def build(folder: Path, n_tracks: int) -> Path:
    spec = DatasetSpec(synthetic=SyntheticSource(tracks=n_tracks, seconds=30.0, seed=11))
    (folder / dataset.SEGMENTS).mkdir(parents=True)
    for track in sources.resolve(spec)[0]:
        tracks.process(track, spec, folder / dataset.SEGMENTS)
    (folder / dataset.MANIFEST).write_text(json.dumps({"shape": [64, 64], "scaling": mel.scaling(spec)}))
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tracks", type=int, default=48, help="synthetic tracks of 30 s (6 segments each)")
    parser.add_argument("--steps", type=int, default=300, help="generator steps per training run")
    parser.add_argument("--samples", type=int, default=256, help="generated images per FID")
    args = parser.parse_args()
    torch.set_num_threads(2)
    cpu = torch.device("cpu")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="uint8-mels-") as tmp:
        path = build(Path(tmp) / "ds", args.tracks)
        real = dataset.load_mels(path).astype(np.float32)
        levels = node_cache.mel_array(path, "uint8")
        step_db = dataset.uint8_step_db(path)
        error_db = np.abs(dataset.dequantise(levels) - real).max() * step_db * 255 / 2
        print(f"{len(real)} segments of 64 x 64. uint8 step: {step_db:.3f} dB "
              f"(the mel's {255 * step_db:.0f} dB in 255 steps); largest error measured: {error_db:.3f} dB")

        embedding = embeddings.build("inception-fast")
        stats = lambda images: feature_stats(in_batches(torch.from_numpy(images).unsqueeze(1)), embedding)
        reference = stats(real)
        order = np.random.default_rng(0).permutation(len(real))
        halves = [stats(real[order[:len(real) // 2]]), stats(real[order[len(real) // 2:]])]
        quantised = stats(dataset.dequantise(np.asarray(levels)))
        print(f"FID, inception-fast: quantised vs float16 (same images) {fid.fid(reference, quantised, embedding.standardised):.4f}; "
              f"one half of the real images vs the other {fid.fid(halves[0], halves[1], embedding.standardised):.4f}")

        runs = {"float16 seed 0": ("float16", 0), "uint8 seed 0": ("uint8", 0), "float16 seed 1": ("float16", 1)}
        trainers = {}
        for name, (dtype, seed) in runs.items():
            cfg = TrialConfig.from_tune({"model": {"width": 16, "latent_dim": 64}, "evaluation": {},
                                         "training": {"batch_size": 32, "seed": seed, "iterations": 1,
                                                      "steps_per_iteration": args.steps}})
            trainers[name] = GANTrainer(cfg, shared_images(str(path), None, cpu, batch_size=32, dtype=dtype), cpu)
        chunk = 25
        last = {}
        for _ in range(0, args.steps, chunk):  # alternate in chunks of steps
            for name, trainer in trainers.items():
                trainer.total_steps = min(args.steps, trainer.step + chunk)
                last[name] = trainer.run_iteration()
        z = torch.randn(args.samples, 64, generator=torch.Generator().manual_seed(7))
        print(f"DCGAN 1 (width 16), {args.steps} steps of batch 32 each; FID of {args.samples} samples vs the float16 images:")
        scores = {}
        for name, trainer in trainers.items():
            trainer.G.eval()
            with torch.no_grad():
                fake = feature_stats((trainer.G(part) for part in z.split(64)), embedding)
            scores[name] = fid.fid(reference, fake, embedding.standardised)
            print(f"  {name:<15} fid {scores[name]:8.3f}   loss/D {last[name]['loss/D']:.3f}   "
                  f"loss/G {last[name]['loss/G']:.3f}")
        dtype_gap = abs(scores["uint8 seed 0"] - scores["float16 seed 0"])
        seed_gap = abs(scores["float16 seed 1"] - scores["float16 seed 0"])
        print(f"|uint8 - float16| at the same seed: {dtype_gap:.3f}; |seed 1 - seed 0| in float16: {seed_gap:.3f}; "
              f"ratio {dtype_gap / seed_gap:.2f}" if seed_gap else "")
    print(f"({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
