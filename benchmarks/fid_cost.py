"""What evaluation costs in a quickstart trial, and how fast each embedding runs on CPU.

Side by side in one run, on the quickstart's sizes (search_spaces/quickstart.yaml: a
256-segment synthetic set, 256 evaluation samples, one CPU thread per trial):
  1. the share of a trial iteration's wall time spent in evaluation (target: at most 10%),
     with the real trainer (trainables/trainer.py) and the real Evaluator;
  2. each embedding's throughput in images per second on CPU.

    .venv/bin/python benchmarks/fid_cost.py [--iterations 4] [--inception-weights FILE]
"""
import argparse
import dataclasses
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import platform  # noqa: E402,F401  (the repo's shim, before torch)

import torch  # noqa: E402

from platform import spaces  # noqa: E402
from trainables.metrics import embeddings, probes as fid_probes  # noqa: E402
from trainables.config import TrialConfig  # noqa: E402
from trainables.evaluation import Evaluator  # noqa: E402
from trainables.trainer import GANTrainer  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def quickstart_images(spec) -> torch.Tensor:
    src, mel = spec.dataset.synthetic, spec.dataset.mel
    images, _ = fid_probes.synthetic_mels(tracks=src.tracks, seconds=src.seconds, seed=src.seed,
                                          sample_rate=mel.sample_rate)
    return torch.from_numpy(images.copy()).half()


def trial_share(spec, images: torch.Tensor, iterations: int, embedding: str, weights: str) -> dict:
    evaluation = dataclasses.replace(spec.evaluation, embedding=embedding, inception_weights=weights)
    cfg = TrialConfig(model=spec.model, training=spec.training, evaluation=evaluation)
    device = torch.device("cpu")
    trainer = GANTrainer(cfg, images, device)
    with tempfile.TemporaryDirectory() as dataset:
        started = time.perf_counter()
        evaluate = Evaluator(cfg.evaluation, dataset, images, cfg.model.latent_dim, device, fingerprint="bench")
        setup = time.perf_counter() - started
        train_s = eval_s = 0.0
        for _ in range(iterations):
            started = time.perf_counter()
            trainer.run_iteration()
            train_s += time.perf_counter() - started
            metrics = evaluate(trainer.G)
            eval_s += metrics["eval/seconds"]
    return {"setup_s": setup, "train_s": train_s / iterations, "eval_s": eval_s / iterations,
            "share": eval_s / (train_s + eval_s)}


def throughput(name: str, weights: str, images: torch.Tensor, rounds: int = 3) -> float:
    embedding = embeddings.build(name, weights or None)
    batch = images[:32 if name.startswith("inception") else 256].float()  # Inception: tens of ms an image on a CPU
    embedding(batch[:8])  # first call pays one-time costs
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        embedding(batch)
        best = min(best, time.perf_counter() - started)
    return len(batch) / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=4)
    parser.add_argument("--inception-weights", default="", help="a FID Inception TorchScript file")
    parser.add_argument("--skip", nargs="*", default=[], help="embeddings to leave out")
    args = parser.parse_args()
    spec = spaces.load(ROOT / "search_spaces" / "quickstart.yaml")
    torch.set_num_threads(int(spec.tune.resources_per_trial.cpu))  # as a trial does
    images = quickstart_images(spec)
    print(f"quickstart: {len(images)} segments, {spec.training.steps_per_iteration} steps x batch "
          f"{spec.training.batch_size} per iteration, {spec.evaluation.samples} evaluation samples, "
          f"{torch.get_num_threads()} thread(s)")

    names = [n for n in ("random-conv", "mel-stats") if n not in args.skip]
    try:
        for name in ("inception-fast", "inception"):  # the default, and the standard network
            if name not in args.skip:
                embeddings.build(name, args.inception_weights or None)
                names.append(name)
    except FileNotFoundError as error:
        print(f"inception left out: {error}")

    print(f"\n{'embedding':14s} {'train s/iter':>12s} {'eval s/iter':>11s} {'eval share':>10s} {'real stats s':>12s}")
    for name in names:
        row = trial_share(spec, images, args.iterations, name, args.inception_weights)
        print(f"{name:14s} {row['train_s']:12.3f} {row['eval_s']:11.3f} {row['share']:10.1%} {row['setup_s']:12.2f}")

    print(f"\n{'embedding':14s} {'img/s (CPU, ' + str(torch.get_num_threads()) + ' thread)':>24s}")
    for name in names:
        print(f"{name:14s} {throughput(name, args.inception_weights, images):24.0f}")


if __name__ == "__main__":
    main()
