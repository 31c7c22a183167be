"""The trainer's Adam as one fused kernel against PyTorch's per-tensor loop, side by side:
milliseconds per optimizer step on a generator's parameters, and their ratio.

    .venv/bin/python benchmarks/fused_adam.py [--family dcgan1] [--width 64] [--threads 1]

One thread by default, as a trial on a shared CPU node has. Repeats alternate the two so
that noise from other processes hits both alike; each figure is the best of its repeats.
"""
import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from trainables import models  # noqa: E402
from trainables.config import ModelConfig  # noqa: E402


def step_ms(optimizer: torch.optim.Optimizer, steps: int) -> float:
    for _ in range(3):  # warm-up: state allocation
        optimizer.step()
    started = time.perf_counter()
    for _ in range(steps):
        optimizer.step()
    return (time.perf_counter() - started) / steps * 1000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--family", default="dcgan1")
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    norm = "layer" if args.family == "wgan_gp" else "batch"
    generator, _ = models.build(ModelConfig(family=args.family, width=args.width, critic_norm=norm))
    params = list(generator.parameters())
    for p in params:
        p.grad = torch.randn_like(p)
    best = {"fused": float("inf"), "per-tensor loop": float("inf")}
    for _ in range(args.repeats):
        for name, options in (("fused", {"fused": True}), ("per-tensor loop", {"foreach": False})):
            optimizer = torch.optim.Adam(params, lr=2e-4, betas=(0.5, 0.999), **options)
            best[name] = min(best[name], step_ms(optimizer, args.steps))
    print(f"{args.family} generator, width {args.width}: {sum(p.numel() for p in params) / 1e6:.2f}M parameters, "
          f"{args.threads} thread(s)")
    for name, ms in best.items():
        print(f"  {name:16s} {ms:6.2f} ms a step")
    print(f"  ratio (loop / fused): {best['per-tensor loop'] / best['fused']:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
