"""Images per second: the trainable's inner loop against a bare PyTorch DCGAN loop, side by side.

    .venv/bin/python benchmarks/trainer_throughput.py [--family dcgan1] [--width 64] [--batch 64]

Both train the same networks (trainables.models), on the same data, batch, device and
thread count. The bare loop is the one the PyTorch DCGAN tutorial teaches: a DataLoader
over the images (shuffled, `--workers` worker processes, the tutorial's 2 by default),
a D step on real then fake, a G step reusing the fake batch, and `.item()` on both losses
every step for the loss curves. The trainable's loop (`GANTrainer.run_iteration`) draws
batches by index from the float16 dataset already in device memory and reads the losses
once per iteration. The DataLoader's iterator is created once and kept across repeats,
so its worker start-up is paid in the warm-up only, as it is amortised over a real epoch.
Repeats alternate the loops so that noise from other processes hits all alike; the main
figure is the median over repeats of each repeat's ratio. Target: ratio >= 1.0.
"""
import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from trainables import models  # noqa: E402
from trainables.config import EvaluationConfig, ModelConfig, TrainingConfig, TrialConfig  # noqa: E402
from trainables.trainer import GANTrainer  # noqa: E402


def bare_loop(cfg: TrialConfig, images: torch.Tensor, device: torch.device, workers: int):
    """The PyTorch DCGAN tutorial's training loop; returns run(steps) -> seconds."""
    torch.manual_seed(cfg.training.seed)
    netG, netD = (net.to(device) for net in models.build(cfg.model))
    t = cfg.training
    optG = torch.optim.Adam(netG.parameters(), lr=t.lr_g, betas=(t.beta1, t.beta2))
    optD = torch.optim.Adam(netD.parameters(), lr=t.lr_d, betas=(t.beta1, t.beta2))
    loader = DataLoader(TensorDataset(images.float()), batch_size=t.batch_size, shuffle=True,
                        num_workers=workers, drop_last=True, persistent_workers=workers > 0)
    batches = iter(loader)
    G_losses, D_losses = [], []

    def next_batch():
        nonlocal batches
        try:
            return next(batches)
        except StopIteration:  # a new epoch
            batches = iter(loader)
            return next(batches)

    def run(steps: int) -> float:
        started = time.perf_counter()
        for _ in range(steps):
            real = next_batch()[0].to(device)
            b = real.size(0)
            netD.zero_grad()
            label = torch.full((b,), 1.0, device=device)
            errD_real = F.binary_cross_entropy_with_logits(netD(real).view(-1), label)
            errD_real.backward()
            fake = netG(torch.randn(b, cfg.model.latent_dim, device=device))
            label.fill_(0.0)
            errD_fake = F.binary_cross_entropy_with_logits(netD(fake.detach()).view(-1), label)
            errD_fake.backward()
            optD.step()
            netG.zero_grad()
            label.fill_(1.0)
            errG = F.binary_cross_entropy_with_logits(netD(fake).view(-1), label)
            errG.backward()
            optG.step()
            G_losses.append(errG.item())
            D_losses.append((errD_real + errD_fake).item())
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - started

    return run


def trainable_loop(cfg: TrialConfig, images: torch.Tensor, device: torch.device):
    trainer = GANTrainer(cfg, images.to(device), device)

    def run(steps: int) -> float:
        started = time.perf_counter()
        trainer.run_iteration()  # steps_per_iteration == steps; ends with its one device read
        return time.perf_counter() - started

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--family", choices=["dcgan1", "dcgan2"], default="dcgan1",
                        help="a BCE family: the tutorial's loop is a BCE loop")
    parser.add_argument("--width", type=int, default=64, help="the study's width is 64")
    parser.add_argument("--latent", type=int, default=100)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--segments", type=int, default=4096, help="images in the dataset")
    parser.add_argument("--steps", type=int, default=4, help="steps per timed repeat")
    parser.add_argument("--repeats", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers (the tutorial's 2)")
    parser.add_argument("--precision", default="auto",
                        help="the trainable's training.precision, or a comma list to compare "
                             "(auto: bf16 where the device does it natively, trainables/native_precision.py)")
    parser.add_argument("--memory-format", default="auto",
                        help="the trainable's training.memory_format, or a comma list to compare "
                             "(auto: channels_last on a GPU)")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    # mel-like data in [-1, 1], stored as the dataset stores it (float16)
    images = (torch.rand(args.segments, 1, 64, 64, generator=torch.Generator().manual_seed(0)) * 2 - 1).half()
    loops = {}
    for precision in args.precision.split(","):
        for memory_format in args.memory_format.split(","):
            cfg = TrialConfig(ModelConfig(family=args.family, latent_dim=args.latent, width=args.width),
                              TrainingConfig(batch_size=args.batch, steps_per_iteration=args.steps,
                                             iterations=args.repeats + 1, precision=precision,
                                             memory_format=memory_format),
                              EvaluationConfig())
            loops[f"trainable[{precision},{memory_format}]"] = trainable_loop(cfg, images, device)
            loops[f"trainable[{precision},{memory_format}]"](args.steps)  # warm-up: one whole iteration
    loops["bare"] = bare_loop(cfg, images, device, args.workers)
    loops["bare"](min(3, args.steps))  # warm-up: first kernels, the allocator, the DataLoader's workers
    rates = {name: [] for name in loops}
    for repeat in range(args.repeats):
        for name, run in loops.items():
            rates[name].append(args.steps * args.batch / run(args.steps))
        print(f"repeat {repeat + 1}: " + ", ".join(f"{name} {r[-1]:.1f}" for name, r in rates.items()), flush=True)
    median = {name: statistics.median(r) for name, r in rates.items()}
    print(f"device {device}, threads {args.threads}, {args.family} width {args.width}, batch {args.batch}, "
          f"{args.steps} steps x {args.repeats} repeats, DataLoader workers {args.workers}")
    for name, r in rates.items():
        print(f"  {name:32s} img/s median {median[name]:8.1f}   runs: {', '.join(f'{x:.1f}' for x in r)}")
    # Paired: each repeat's ratio compares runs a few seconds apart, so load from other
    # processes on a shared machine cancels out far better than in a ratio of medians.
    for name in loops:
        if name != "bare":
            paired = statistics.median(a / b for a, b in zip(rates[name], rates["bare"]))
            print(f"ratio {name} / bare: paired median {paired:.3f}, "
                  f"ratio of medians {median[name] / median['bare']:.3f}")

if __name__ == "__main__":
    main()
