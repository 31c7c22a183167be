"""Trial start-up in a reused Tune worker, before and after the worker's caches, side by side.

    .venv/bin/python benchmarks/warm_workers.py [--trials 7] [--root /tmp/warm-workers]

Runs the quickstart (search_spaces/quickstart.yaml: its dataset, inception-fast on 64
samples) as one sweep through platform.sweep with one slot, FIFO and 2 iterations a trial,
each evaluated, so every trial after the first runs in the first one's worker (Tune's actor
reuse). Trials alternate: "before" trials first empty the worker's network and statistics
caches, as every trial did before the caches
(trainables/metrics/embeddings.shared, feature_stats), "after" trials find them. Prints,
per trial, the worker's pid, its start-up (train_gan's entry to its first training step),
each evaluation's seconds and each evaluation's artifacts/seconds; then the ratio of the
mean start-ups. Wall time on a shared machine: read the ratios, not the seconds.
"""
import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def timed_trial(config, context, out):
    """train_gan, timed from its entry to its first training step; 'before' trials (odd
    numbers) first drop what the worker kept from earlier trials."""
    from ray import tune

    import trainables.train as train_module
    from trainables.evaluation import Evaluator
    from trainables.metrics import embeddings, feature_stats
    from trainables.trainer import GANTrainer
    trial = tune.get_context().get_trial_id()
    number = int(trial.rsplit("_", 1)[-1])
    mode = "first" if number == 0 else "before" if number % 2 else "after"
    if mode == "before":
        embeddings.clear_shared()
        feature_stats._read.cache_clear()
    row = {"trial": trial, "pid": os.getpid(), "mode": mode, "evals": []}
    started = time.perf_counter()
    run_iteration, call = GANTrainer.run_iteration, Evaluator.__call__

    def first_step(self):
        row.setdefault("startup", time.perf_counter() - started)
        return run_iteration(self)

    def evaluation(self, generator):
        metrics = call(self, generator)
        row["evals"].append(metrics["eval/seconds"])
        return metrics
    GANTrainer.run_iteration, Evaluator.__call__ = first_step, evaluation
    try:
        return train_module.train_gan(config, context)
    finally:
        GANTrainer.run_iteration, Evaluator.__call__ = run_iteration, call
        with open(out, "a") as file:
            file.write(json.dumps(row) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=7)
    parser.add_argument("--root", type=Path, default=Path("/tmp/warm-workers"))
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from mlflow import MlflowClient
    from ray import tune

    import platform.sweep as sweep
    args.root.mkdir(parents=True, exist_ok=True)
    out = args.root / f"trials-{int(time.time())}.jsonl"
    sweep._trainable = lambda spec, context: tune.with_resources(
        tune.with_parameters(timed_trial, context=context, out=str(out)), spec.tune.resources_per_trial.to_tune())
    spec = yaml.safe_load((ROOT / "search_spaces" / "quickstart.yaml").read_text())
    name = f"warm-workers-{int(time.time())}"
    spec.update(name=name, storage={"root": str(args.root / "runs")},
                mlflow={"tracking_uri": f"sqlite:///{args.root / 'mlflow.db'}"})
    spec["training"].update(iterations=2, steps_per_iteration=20)
    spec["evaluation"].update(every=1)
    spec["tune"].update(searcher="random", scheduler={"name": "fifo"}, num_samples=args.trials, max_concurrent=1)
    path = args.root / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    if sweep.main([str(path)]) != 0:
        return 1
    client = MlflowClient(spec["mlflow"]["tracking_uri"])
    experiment = client.get_experiment_by_name(name)
    artifacts = {r.data.tags["tune.trial_id"]: [m.value for m in sorted(
        client.get_metric_history(r.info.run_id, "artifacts/seconds"), key=lambda m: m.step)]
        for r in client.search_runs([experiment.experiment_id], "tags.mlflow.parentRunId != ''")}
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    print(f"{'trial':<14}{'pid':>8}  {'mode':<7}{'start-up s':>11}  eval/seconds   artifacts/seconds")
    for r in rows:
        print(f"{r['trial']:<14}{r['pid']:>8}  {r['mode']:<7}{r['startup']:>11.3f}  "
              + " ".join(f"{e:.2f}" for e in r["evals"]) + "      "
              + " ".join(f"{a:.2f}" for a in artifacts.get(r["trial"], [])))
    means = {mode: statistics.mean(r["startup"] for r in rows if r["mode"] == mode) for mode in ("before", "after")}
    print(f"workers: {len({r['pid'] for r in rows})} for {len(rows)} trials; start-up of a trial in a reused worker, "
          f"before / after: {means['before'] / means['after']:.2f}x; the worker's first trial / after: "
          f"{rows[0]['startup'] / means['after']:.1f}x (load average {os.getloadavg()[0]:.1f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
