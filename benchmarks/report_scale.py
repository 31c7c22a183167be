"""platform.report on a sweep of many trials: time, peak memory and the largest figure, side by side.

    .venv/bin/python benchmarks/report_scale.py [--trials 100 1000]

Each size is a fresh MLflow store (SQLite, local artifacts) holding one sweep's parent run and
that many trial runs written with MLflow's log_batch, no training: the params a real trial
logs, 8 evaluations of fid and the losses, `best/fid`, and a sample grid and a WAV each. The
report then runs in its own process (`--no-log`, its peak resident memory read from
getrusage) and the ratios between the sizes are printed: time and memory should grow far
slower than the trial count, and no figure outgrow a page.
"""
import argparse
import io
import json
import math
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
import wave
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EVALUATIONS = 8
STEPS_PER_EVALUATION = 40


def _png(seed: int) -> bytes:
    import numpy as np
    from matplotlib.figure import Figure
    image = np.random.default_rng(seed).random((64, 64))
    fig = Figure(figsize=(2, 2))
    fig.subplots().imshow(image, cmap="magma")
    out = io.BytesIO()
    fig.savefig(out, format="png", dpi=50)
    return out.getvalue()


def _wav(seed: int, seconds: float = 0.5, rate: int = 22050) -> bytes:
    import numpy as np
    samples = (np.random.default_rng(seed).standard_normal(int(seconds * rate)) * 3000).astype("<i2")
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(rate)
        w.writeframes(samples.tobytes())
    return out.getvalue()


def logged_sweep(tracking_uri: str, experiment: str, trials: int, seed: int = 0, media: bool = True) -> str:
    """A sweep's parent run and `trials` trial runs as platform.sweep leaves them (names,
    params, fid and loss histories, best/fid, stopped tags, a grid and a clip); its run id."""
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param, RunTag
    client = MlflowClient(tracking_uri=tracking_uri)
    experiment_id = client.create_experiment(experiment)
    parent = client.create_run(experiment_id, run_name="sweep-bench", tags={
        "sweep": "parent", "fid.real_vs_real": "12.5"}).info.run_id
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory(prefix="report-bench-") as tmp:
        grid, clip = Path(tmp) / "step_000320.png", Path(tmp) / "step_000320_0.wav"
        if media:
            grid.write_bytes(_png(seed)), clip.write_bytes(_wav(seed))
        for n in range(trials):
            values = {"lr_g": 10 ** rng.uniform(-4.3, -3), "lr_d": 10 ** rng.uniform(-4.3, -3),
                      "beta1": rng.uniform(0.3, 0.7), "width": rng.choice([8, 16])}
            name = (f"dcgan1 #{n} lr_g={values['lr_g']:.1e} lr_d={values['lr_d']:.1e} beta1={values['beta1']:.2g} "
                    f"width={values['width']}")
            evaluations = rng.choice([2, 4, 8])  # ASHA's rungs
            stopped = evaluations < EVALUATIONS
            tags = {"mlflow.parentRunId": parent, "tune.trial_id": f"bench_{n:05d}"}
            if stopped:
                tags.update({"stopped": f"asha at iteration {evaluations} of {EVALUATIONS}",
                             "stopped.step": str(evaluations * STEPS_PER_EVALUATION)})
            run = client.create_run(experiment_id, run_name=name, tags=tags).info.run_id
            params = {"model.family": "dcgan1", "model.latent_dim": 64, "model.width": values["width"],
                      "training.lr_g": values["lr_g"], "training.lr_d": values["lr_d"],
                      "training.beta1": values["beta1"], "training.batch_size": 32,
                      "training.iterations": EVALUATIONS, "training.steps_per_iteration": STEPS_PER_EVALUATION,
                      "evaluation.embedding": "random-conv", "evaluation.samples": 128, "dataset.segments": 256}
            now, metrics, best = int(time.time() * 1000), [], math.inf
            level = rng.uniform(200, 900)
            for i in range(1, evaluations + 1):
                step = i * STEPS_PER_EVALUATION
                fid = level * (0.8 + 0.4 * rng.random()) / math.sqrt(i)
                best = min(best, fid)
                metrics += [Metric("fid", fid, now, step), Metric("best/fid", best, now, step),
                            Metric("loss/D", rng.uniform(0.5, 1.5), now, step),
                            Metric("loss/G", rng.uniform(0.5, 3), now, step),
                            Metric("throughput/img_s", rng.uniform(100, 400), now, step),
                            Metric("step", step, now, step)]
            client.log_batch(run, metrics=metrics, params=[Param(k, str(v)) for k, v in params.items()],
                             tags=[RunTag("mlflow.runName", name)])
            if media:
                client.log_artifact(run, str(grid), "samples")
                client.log_artifact(run, str(clip), "audio")
            client.set_terminated(run, "FINISHED")
    client.set_terminated(parent, "FINISHED")
    return parent


def _largest_figure(out: Path) -> tuple[int, int]:
    import matplotlib.image
    sizes = [matplotlib.image.imread(p).shape[:2] for p in out.glob("*.png")]
    return max(sizes, key=lambda s: s[0] * s[1]) if sizes else (0, 0)


def measure(trials: int, folder: Path) -> dict:
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    started = time.monotonic()
    logged_sweep(uri, "bench", trials)
    created = time.monotonic() - started
    out = folder / "report"
    script = ("import resource, sys; from platform import report; code = report.main(sys.argv[1:]); "
              "print('PEAK_KB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss); sys.exit(code)")
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-c", script, "bench", "--out", str(out), "--no-log", "--tracking-uri",
                             uri], cwd=ROOT, capture_output=True, text=True, timeout=900)
    seconds = time.monotonic() - started
    if result.returncode != 0:
        raise SystemExit(f"report failed on {trials} trials:\n{result.stderr[-3000:]}")
    peak_kb = int(next(line.split()[1] for line in result.stdout.splitlines() if line.startswith("PEAK_KB")))
    height, width = _largest_figure(out)
    return {"trials": trials, "create_s": created, "report_s": seconds, "peak_mb": peak_kb / 1024,
            "largest_png": f"{width} x {height}", "page_mb": (out / "report.html").stat().st_size / 1e6}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, nargs="+", default=[100, 1000])
    args = parser.parse_args()
    rows = []
    for trials in args.trials:
        with tempfile.TemporaryDirectory(prefix="report-scale-") as tmp:
            rows.append(measure(trials, Path(tmp)))
            print(json.dumps({k: round(v, 2) if isinstance(v, float) else v for k, v in rows[-1].items()}), flush=True)
    first, last = rows[0], rows[-1]
    print(f"{last['trials']} vs {first['trials']} trials ({last['trials'] / first['trials']:.0f}x): report time "
          f"{last['report_s'] / first['report_s']:.2f}x ({first['report_s']:.1f} s -> {last['report_s']:.1f} s), "
          f"peak memory {last['peak_mb'] / first['peak_mb']:.2f}x ({first['peak_mb']:.0f} -> {last['peak_mb']:.0f} MB), "
          f"largest figure {first['largest_png']} -> {last['largest_png']} px, page {first['page_mb']:.1f} -> "
          f"{last['page_mb']:.1f} MB")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    os.chdir(ROOT)
    sys.exit(main())
