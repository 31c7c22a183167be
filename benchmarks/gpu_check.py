"""The prepared GPU check: one run on a lent GPU machine, one Markdown report, under 8 minutes.

    .venv/bin/python benchmarks/gpu_check.py [--out runs/gpu_check.md] [--budget 480] [--tiny]

Stages, each timed; one that fails or runs out of time is reported as such and the next runs:
 1. environment: Python, torch and its CUDA, the card, bf16 support, CPU cores;
 2. the quickstart sweep on the GPU (search_spaces/quickstart.yaml, two trials sharing the
    card), in a scratch folder: wall time, lines printed, its winner, and the evaluation
    share of trial time read back from MLflow (eval/seconds and artifacts/seconds);
 3. DCGAN 1 at 64 x 64, the trainable's images per second against a bare PyTorch loop on the
    same card (benchmarks/trainer_throughput.py);
 4. aggregate images per second with 1, 2 and 4 trials sharing the card (that many training
    processes at once, as Tune runs trials asking for a fraction of a GPU);
 5. the evaluation share at search_spaces/dcgan2.yaml's own settings, component by
    component, now and as it was (benchmarks/fid_cost.py on the card);
 6. Inception (the study's FID network) images per second in fp32 and bf16, and the drift of
    FID values between them;
 7. the HiFi-GAN vocoder's real-time factor on the card and on the CPU.
`--tiny` runs every stage at toy sizes on whatever device there is (the test suite does, on
CPU, so the script cannot rot); its numbers mean nothing.
"""
import argparse
import contextlib
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import platform  # noqa: E402,F401  (the repo's shim, before torch)

import torch  # noqa: E402


def _device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _python(args: list[str], timeout: float, cwd: Path = ROOT, env: dict | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT), **(env or {}))
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


# ---------- stages: each returns Markdown lines ----------

def environment(tiny: bool, left: float) -> list[str]:
    lines = [f"- Python {sys.version.split()[0]}, torch {torch.__version__} (CUDA {torch.version.cuda or 'none'}), "
             f"{os.cpu_count()} CPU cores"]
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        lines.append(f"- GPU: {props.name}, {props.total_memory / 2**30:.0f} GiB, {torch.cuda.device_count()} card(s), "
                     f"bf16 {'yes' if torch.cuda.is_bf16_supported() else 'no'}")
    else:
        lines.append("- GPU: none (torch sees no CUDA device): every stage below ran on the CPU")
    return lines


# the dataset is the test suite's TINY_DATASET, so its test reuses the session's build
QUICKSTART_TINY = ["dataset.synthetic.tracks=3", "dataset.synthetic.seconds=11", "dataset.synthetic.seed=7",
                   "dataset.mel.sample_rate=16000", "tune.num_samples=2",
                   "training.batch_size=4", "model.latent_dim=8",
                   "training.iterations=2", "training.steps_per_iteration=2", "evaluation.samples=16",
                   "evaluation.embedding=random-conv", "tune.scheduler.grace_period=1"]


def quickstart(tiny: bool, left: float) -> list[str]:
    sets = [f"tune.resources_per_trial.gpu={0.5 if torch.cuda.is_available() else 0}"]
    sets += QUICKSTART_TINY if tiny else []
    with tempfile.TemporaryDirectory(prefix="gpu-check-quickstart-") as tmp:
        args = ["-m", "platform.sweep", str(ROOT / "search_spaces" / "quickstart.yaml")]
        for s in sets:
            args += ["--set", s]
        started = time.perf_counter()
        done = _python(args, timeout=left, cwd=Path(tmp))
        wall = time.perf_counter() - started
        printed = (done.stdout + done.stderr).strip().splitlines()
        if done.returncode != 0:
            return [f"- failed (exit {done.returncode}) after {wall:.0f} s; its last lines:", "```",
                    *printed[-15:], "```"]
        best = next((line.strip() for line in printed if line.startswith("Best trial")), "no 'Best trial' line")
        return [f"- `platform.sweep search_spaces/quickstart.yaml --set {' --set '.join(sets)}`: "
                f"{wall:.0f} s, {len(printed)} lines printed", f"- {best}",
                f"- {evaluation_share(Path(tmp) / 'mlflow.db')}"]


def evaluation_share(db: Path) -> str:
    """The share of the trials' run time spent evaluating (eval/seconds + artifacts/seconds)."""
    from mlflow import MlflowClient
    client = MlflowClient(tracking_uri=f"sqlite:///{db}")
    judged = trained = 0.0
    for experiment in client.search_experiments():
        for run in client.search_runs([experiment.experiment_id], "tags.`mlflow.parentRunId` != ''"):
            if not run.info.end_time:
                continue
            judged += sum(m.value for key in ("eval/seconds", "artifacts/seconds")
                          for m in client.get_metric_history(run.info.run_id, key))
            trained += (run.info.end_time - run.info.start_time) / 1000
    return (f"evaluation (metrics and artifacts) {judged:.1f} s of {trained:.1f} s of trial time: "
            f"{judged / trained:.1%}" if trained else "no finished trial run to read")


def throughput(tiny: bool, left: float) -> list[str]:
    size = ["--width", "8", "--batch", "8", "--segments", "64", "--steps", "2", "--repeats", "2", "--workers", "0"] \
        if tiny else \
        ["--steps", "20", "--repeats", "5"]
    done = _python(["benchmarks/trainer_throughput.py", "--family", "dcgan1", *size], timeout=left)
    if done.returncode != 0:
        return [f"- failed (exit {done.returncode}):", "```", *done.stderr.strip().splitlines()[-10:], "```"]
    keep = [line.strip() for line in done.stdout.splitlines() if "img/s median" in line or line.startswith(("ratio", "device"))]
    return ["```", *keep, "```"]


def _train_worker(seconds: float, width: int, batch: int) -> None:
    """One trial's training loop for `seconds`: prints its images per second (stage 4)."""
    from trainables.config import EvaluationConfig, ModelConfig, TrainingConfig, TrialConfig
    from trainables.trainer import GANTrainer
    device = _device()
    images = (torch.rand(64 * batch, 1, 64, 64) * 2 - 1).half().to(device)  # 4,096 at the study's batch
    cfg = TrialConfig(ModelConfig(family="dcgan1", width=width),
                      TrainingConfig(batch_size=batch, steps_per_iteration=10, iterations=10**6), EvaluationConfig())
    trainer = GANTrainer(cfg, images, device)
    trainer.run_iteration()  # warm-up
    _sync()
    started, steps = time.perf_counter(), 0
    while time.perf_counter() - started < seconds:
        trainer.run_iteration()
        steps += cfg.training.steps_per_iteration
    _sync()
    print(json.dumps({"img_s": steps * cfg.training.batch_size / (time.perf_counter() - started)}))


def sharing(tiny: bool, left: float) -> list[str]:
    seconds, width, batch = (0.5, 8, 8) if tiny else (25, 64, 64)
    lines = ["| trials on the card | img/s each | img/s together | vs 1 trial |", "|---|---|---|---|"]
    alone = None
    for count in (1, 2) if tiny else (1, 2, 4):
        workers = [subprocess.Popen([sys.executable, __file__, "--train-worker", str(seconds), "--width", str(width),
                                     "--batch", str(batch)],
                                    cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)),
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(count)]
        rates = [json.loads(w.communicate(timeout=left)[0].strip().splitlines()[-1])["img_s"] for w in workers]
        together = sum(rates)
        alone = alone or together
        lines.append(f"| {count} | {', '.join(f'{r:.0f}' for r in rates)} | {together:.0f} | {together / alone:.2f}x |")
    return lines


def evaluation_cost(tiny: bool, left: float) -> list[str]:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import fid_cost
    sets = {"evaluation.samples": 32, "evaluation.embedding": "random-conv", "evaluation.kid_subset_size": 16,
            "evaluation.coverage_k": 3, "model.width": 8, "search.model.width": "{choice: [8]}"} if tiny else {}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        fid_cost.report(fid_cost.file_costs("dcgan2", 2 if tiny else 10, 16 if tiny else 256, _device(), sets))
    return ["```", *out.getvalue().strip().splitlines(), "```"]


def inception_precision(tiny: bool, left: float) -> list[str]:
    from trainables.metrics import embeddings, fid
    from trainables.metrics.feature_stats import feature_stats, in_batches
    from benchmarks.probes import synthetic_mels
    device = _device()
    name, count = ("inception-fast", 16) if tiny else ("inception", 512)
    real, _ = synthetic_mels(tracks=4 if tiny else 64, seconds=20, seed=0, sample_rate=22050)
    real = torch.from_numpy(real[:count].copy()).float()  # (n, 1, 64, 64)
    fake = (real + 0.3 * torch.randn_like(real)).clamp(-1, 1)
    lines = [f"{name} on {device}, {len(real)} images of {tuple(real.shape[-2:])}:"]
    values = {}
    for prec in ("fp32", "bf16"):
        embedding = embeddings.build(name, precision=prec).to(device)
        embedding(real[:8].to(device))
        _sync()
        started = time.perf_counter()
        stats = [feature_stats(in_batches(images.to(device), 64), embedding) for images in (real, fake)]
        _sync()
        rate = 2 * len(real) / (time.perf_counter() - started)
        values[prec] = fid.fid(stats[0], stats[1], embedding.standardised)
        lines.append(f"- {prec}: {rate:.0f} img/s, FID (noisy vs clean) {values[prec]:.4g}")
    lines.append(f"- FID drift bf16 vs fp32: {values['bf16'] / values['fp32'] - 1:+.2%}")
    return lines


def vocoder_rtf(tiny: bool, left: float) -> list[str]:
    from trainables import vocoder
    net = vocoder.load()
    clips = 1 if tiny else 8
    logs = torch.randn(clips, 80, 432) - 5  # the HiFi-GAN preset's 5 s mel, in HiFi-GAN's log range
    lines = []
    for device in ["cpu"] + (["cuda"] if torch.cuda.is_available() else []):
        model = net.to(device)
        with torch.no_grad():
            model(logs[:1].to(device))
            _sync()
            started = time.perf_counter()
            for clip in logs:
                model(clip[None].to(device))
            _sync()
        rtf = (time.perf_counter() - started) / (5.0 * clips)
        lines.append(f"- HiFi-GAN on {device}: real-time factor {rtf:.4f} ({1 / rtf:.1f} s of audio per second), "
                     f"{clips} clip(s) of 5 s")
    net.to("cpu")
    return lines


STAGES = [("Environment", environment), ("Quickstart on the GPU", quickstart),
          ("DCGAN 1 64 x 64: trainable vs a bare PyTorch loop", throughput),
          ("Trials sharing the card", sharing), ("Evaluation share at dcgan2.yaml's settings", evaluation_cost),
          ("Inception in fp32 and bf16", inception_precision), ("HiFi-GAN real-time factor", vocoder_rtf)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "gpu_check.md")
    parser.add_argument("--budget", type=float, default=480, help="seconds for the whole check")
    parser.add_argument("--tiny", action="store_true", help="toy sizes on any device (the test suite's mode)")
    parser.add_argument("--train-worker", type=float, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--width", type=int, default=64, help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, default=64, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.train_worker is not None:
        _train_worker(args.train_worker, args.width, args.batch)
        return 0
    deadline = time.monotonic() + args.budget
    report = [f"# GPU check, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
              + (" (tiny mode: toy sizes, the numbers mean nothing)" if args.tiny else ""), ""]
    failed = 0
    for title, stage in STAGES:
        left = deadline - time.monotonic()
        started = time.perf_counter()
        if left < 5:
            lines, failed = ["- skipped: the check's time budget was spent"], failed + 1
        else:
            try:
                lines = stage(args.tiny, left)
            except Exception as error:  # one stage's failure is part of the report, not its end
                lines, failed = [f"- failed: {type(error).__name__}: {str(error).strip().splitlines()[0] if str(error).strip() else ''}"], failed + 1
        report += [f"## {title} ({time.perf_counter() - started:.0f} s)", "", *lines, ""]
        print(f"{title}: done in {time.perf_counter() - started:.0f} s", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(report))
    print("\n".join(report))
    print(f"report written to {args.out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
