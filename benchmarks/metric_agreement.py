"""Do the embeddings rank real GANs trained on real music like Inception FID and FAD do?

    .venv/bin/python benchmarks/metric_agreement.py FOLDER [--work DIR] [--checkpoints 4]
        [--steps 50] [--samples 128] [--families dcgan1 dcgan2 wgan_clip wgan_gp]
        [--in-loop EMBEDDING] [--embeddings ...] [--audio-samples 128]

1. Builds a dataset from FOLDER with the project's Ray Data pipeline (data.pipeline.build).
2. Trains each family at two learning rates with GANTrainer inside real Ray Tune trials,
   FIFO, evaluating the in-loop metric (`--in-loop`, default: the code's default
   embedding; trainables.evaluation.Evaluator) at every checkpoint and keeping the generator (weights and the samples of a fixed latent batch)
   at each checkpoint along each run.
3. Runs the same trials again under ASHA on the in-loop metric (Tune's
   AsyncHyperBandScheduler) and counts the generator steps each scheduler spent.
4. Scores every checkpoint's samples with every embedding against one real reference, and
   a disjoint real half against it (the real-vs-real baseline), and prints: Spearman rho of
   each embedding against Inception FID and against FAD over all checkpoints, the mean rho
   within trajectories, the final models' ordering by each metric, which trial successive
   halving keeps under each metric, FIFO against ASHA (best reference FID, trial-steps) on
   the in-loop metric and, replayed on the recorded trajectories, on every metric, and
   whether checkpoints whose samples collapsed score worse than varied ones under each.

ASHA's trials are the FIFO trials cut short: the same config and seed give the same
weights (the script checks that the in-loop values match), so ASHA's reference scores are
read from the FIFO trial's checkpoint at the iteration ASHA stopped it.
`--score-only` re-scores a finished work folder (for instance after adding an embedding).
"""
import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import platform  # noqa: E402,F401  (the repo's shim, before torch)

import numpy as np  # noqa: E402
import torch  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
REFERENCE, AUDIO = "inception", "fad-musicnn"
COLLAPSED = 0.5  # samples' spread (median pairwise distance) below half the real data's: collapsed
CHEAP = ("random-conv", "mel-stats")  # fast enough in the loop: their KID is reported too
# each family's study settings (search_spaces/<family>.yaml), two learning rates each;
# the WGANs take 2 critic steps instead of 5 to fit the budget
FAMILY_SETTINGS = {
    "dcgan1": ({}, {}, (2e-4, 1e-3)),
    "dcgan2": ({"dropout_g": 0.5, "dropout_d": 0.3}, {}, (2e-4, 1e-3)),
    "wgan_clip": ({"critic_norm": "batch"}, {"optimizer": "rmsprop", "critic_steps": 2, "clip_value": 0.01},
                  (5e-5, 3e-4)),
    "wgan_gp": ({"critic_norm": "layer"}, {"critic_steps": 2, "gp_lambda": 10.0}, (1e-4, 5e-4)),
}


def build_dataset(folder: str, work: Path) -> tuple[str, int]:
    from data import pipeline
    from data.spec import DatasetSpec, SegmentParams
    spec = DatasetSpec(folders=[str(Path(folder).resolve())], segment=SegmentParams(seconds=5.0, hop_seconds=2.5))
    built = pipeline.build(spec, work / "storage")
    return str(built.path), built.segments


def trial_configs(families, width: int, steps: int, checkpoints: int, samples: int, batch: int,
                  in_loop: str) -> list[dict]:
    configs = []
    for family in families:
        model, training, rates = FAMILY_SETTINGS[family]
        for lr in rates:
            configs.append({
                "name": f"{family}-lr{lr:g}",
                "model": {"family": family, "width": width, **model},
                "training": {"batch_size": batch, "lr_g": lr, "lr_d": lr, "iterations": checkpoints, "steps_per_iteration": steps,
                             "checkpoint_every": 1, "seed": 0, **training},
                "evaluation": {"samples": samples, "embedding": in_loop, "grid_images": 0, "audio_clips": 0},
            })
    return configs


def gan_trial(config: dict, dataset: str, out: str) -> None:
    """One Tune trial: GANTrainer, the default metric each iteration, a checkpoint each iteration."""
    from ray import tune

    from trainables.config import TrialConfig
    from trainables.evaluation import Evaluator
    from trainables.models import inference
    from trainables.train import load_images
    from trainables.trainer import GANTrainer
    torch.set_num_threads(1)
    config = config["trial"]
    name = config["name"]
    cfg = TrialConfig.from_tune({k: config[k] for k in ("model", "training", "evaluation")})
    device = torch.device("cpu")
    images = load_images(dataset, None, device)
    trainer = GANTrainer(cfg, images, device)
    evaluate = Evaluator(cfg.evaluation, dataset, images, cfg.model.latent_dim, device)
    folder = Path(out) / name
    folder.mkdir(parents=True, exist_ok=True)
    while not trainer.finished:
        metrics = trainer.run_iteration()
        metrics.update(evaluate(trainer.G))
        with inference(trainer.G):
            fakes = torch.cat([trainer.G(z) for z in evaluate.fixed_z.split(256)])
        np.save(folder / f"samples_{trainer.iteration}.npy", fakes[:, 0].numpy().astype(np.float16))
        torch.save(trainer.G.state_dict(), folder / f"generator_{trainer.iteration}.pt")
        tune.report({"fid": metrics["fid"], "coverage": metrics.get("coverage", float("nan")),
                     "g_steps": trainer.step, "name": name})


def run_tune(scheduler_name: str, configs: list[dict], dataset: str, work: Path, checkpoints: int) -> dict:
    """{trial name: [in-loop fid per iteration it reached]}, and the generator steps spent."""
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler
    out = work / f"trials-{scheduler_name}"
    scheduler = (ASHAScheduler(time_attr="training_iteration", max_t=checkpoints, grace_period=1,
                               reduction_factor=2)
                 if scheduler_name == "asha" else FIFOScheduler())
    tuner = tune.Tuner(
        tune.with_resources(tune.with_parameters(gan_trial, dataset=dataset, out=str(out)), {"cpu": 1}),
        param_space={"trial": tune.grid_search(configs)},
        tune_config=tune.TuneConfig(metric="fid", mode="min", scheduler=scheduler, max_concurrent_trials=2),
        run_config=tune.RunConfig(storage_path=str(work / "ray"), name=f"agreement-{scheduler_name}",
                                  verbose=0))
    results = tuner.fit()
    if results.errors:
        raise SystemExit(f"error: {len(results.errors)} {scheduler_name} trials failed, the first: {results.errors[0]}")
    curves, steps = {}, 0
    for result in results:
        history = result.metrics_dataframe
        name = result.config["trial"]["name"]
        curves[name] = [float(v) for v in history["fid"]]
        steps += int(history["g_steps"].iloc[-1])
    return {"curves": curves, "steps": steps}


def tune_results_on_disk(work: Path, scheduler_name: str) -> dict:
    """run_tune's answer, read back from Tune's result files (a run that was stopped early)."""
    curves, steps = {}, 0
    for path in sorted((work / "ray" / f"agreement-{scheduler_name}").glob("*/result.json")):
        reports = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        if reports:
            curves[reports[0]["config"]["trial"]["name"]] = [r["fid"] for r in reports]
            steps += reports[-1]["g_steps"]
    return {"curves": curves, "steps": steps}


def replay_asha(curves: dict[str, list[float]], checkpoints: int, steps: int, concurrency: int = 2) -> dict:
    """Tune's own ASHAScheduler fed the recorded FIFO trajectories, trials started in grid
    order `concurrency` at a time and one iteration each per tick: the trials ASHA would have
    stopped, without training them again (same config and seed, same weights)."""
    from types import SimpleNamespace

    from ray.tune.schedulers import ASHAScheduler, TrialScheduler
    np.random.seed(0)  # ASHA draws a bracket per trial (one bracket here)
    scheduler = ASHAScheduler(time_attr="training_iteration", metric="fid", mode="min", max_t=checkpoints,
                              grace_period=1, reduction_factor=2)
    pending, running, reached = list(curves), [], {}
    while pending or running:
        while pending and len(running) < concurrency:
            name = pending.pop(0)
            scheduler.on_trial_add(None, SimpleNamespace(trial_id=name))
            running.append(name)
            reached[name] = []
        for name in list(running):
            reached[name].append(curves[name][len(reached[name])])
            result = {"training_iteration": len(reached[name]), "fid": reached[name][-1]}
            trial = SimpleNamespace(trial_id=name)
            if len(reached[name]) == len(curves[name]):
                scheduler.on_trial_complete(None, trial, result)
                running.remove(name)
            elif scheduler.on_trial_result(None, trial, result) == TrialScheduler.STOP:
                scheduler.on_trial_remove(None, trial)
                running.remove(name)
    return {"curves": reached, "steps": steps * sum(len(c) for c in reached.values()), "replayed": True}


def real_halves(dataset: str, samples: int) -> tuple[np.ndarray, np.ndarray]:
    """Two disjoint seeded halves of the real data, `samples` each."""
    from data.dataset import load_mels
    mels = load_mels(dataset, max_segments=2 * samples, seed=1).astype(np.float32)
    order = np.random.default_rng(1).permutation(len(mels))
    return mels[order[:samples]], mels[order[samples:2 * samples]]


class Scorer:
    """Every embedding's distance of a set of mel images to the real reference. Each value
    is kept in its own file under `cache`, so a re-score (or a second scorer running beside
    the training) computes only what is missing."""

    def __init__(self, names: list[str], reference: np.ndarray, cache: Path, audio_samples: int | None = None):
        from trainables.metrics import feature_stats, fid
        self.fid, self.feature_stats, self.names, self.cache = fid, feature_stats, names, cache
        self.audio_samples = audio_samples  # FAD on the first N of each set only: 0.5 s of CPU a clip
        cache.mkdir(parents=True, exist_ok=True)
        self.embeddings, self.real, self.reference = {}, {}, reference
        self.cached_only = False  # True: a value not computed yet makes the call answer None

    def _embedding(self, name: str):
        if name not in self.embeddings:
            from trainables.metrics import embeddings
            base, _, precision = name.partition("@")  # inception-fast@bf16: under bf16 autocast
            if base.startswith("inception-") and base.split("-")[1].isdigit():  # Inception at other sizes
                from trainables.metrics.inception import InceptionEmbedding
                self.embeddings[name] = InceptionEmbedding(size=int(base.split("-")[1]), precision=precision or "fp32")
            else:
                self.embeddings[name] = embeddings.build(base, precision=precision or "fp32")
            self.real[name] = self._stats(self.embeddings[name], self._rows(name, self.reference))
        return self.embeddings[name]

    def _rows(self, name: str, mels: np.ndarray) -> np.ndarray:
        return mels[:self.audio_samples] if name == AUDIO and self.audio_samples else mels

    def _stats(self, embedding, mels: np.ndarray):
        images = torch.from_numpy(np.ascontiguousarray(mels, dtype=np.float32)).unsqueeze(1)
        return self.feature_stats.feature_stats(self.feature_stats.in_batches(images, 32), embedding)

    def __call__(self, key: str, mels) -> dict[str, float]:
        """`mels`: the images, or a function that loads them (called only on a cache miss).
        The cheap embeddings also give their KID (`<name>-kid`): unbiased at small counts."""
        from trainables.metrics.kid import kernel_inception_distance
        scores = {}
        for name in self.names:
            paths = {name: self.cache / f"{key.replace('/', '__')}__{name}.json"}
            if name in CHEAP:
                paths[f"{name}-kid"] = self.cache / f"{key.replace('/', '__')}__{name}-kid.json"
            if not all(p.exists() for p in paths.values()):
                if self.cached_only:
                    return None
                mels = mels() if callable(mels) else mels
                embedding = self._embedding(name)
                stats = self._stats(embedding, self._rows(name, mels))
                values = {name: self.fid.fid(self.real[name], stats, embedding.standardised)}
                if name in CHEAP:
                    centre, scale = self.real[name].standardiser()
                    values[f"{name}-kid"] = kernel_inception_distance((self.real[name].sample - centre) / scale,
                                                                      (stats.sample - centre) / scale)
                for metric, path in paths.items():
                    tmp = path.with_name(f".{path.name}.{os.getpid()}")
                    tmp.write_text(json.dumps(values[metric]))
                    os.replace(tmp, path)
            scores.update({metric: json.loads(path.read_text()) for metric, path in paths.items()})
        return scores


def spread(mels: np.ndarray, pairs: int = 2000) -> float:
    """Median distance between two random samples of a set: near 0 when they are all alike."""
    rng = np.random.default_rng(0)
    flat = mels.reshape(len(mels), -1).astype(np.float32)
    i, j = rng.integers(0, len(flat), (2, pairs))
    keep = i != j
    return float(np.median(np.linalg.norm(flat[i[keep]] - flat[j[keep]], axis=1)))


def spearman(a, b) -> float:
    from scipy.stats import spearmanr
    return float(spearmanr(a, b).statistic)


def rho_interval(a, b, rounds: int = 1000) -> tuple[float, float]:
    """A bootstrap interval of Spearman's rho: how much of a rho is the sample of checkpoints."""
    a, b = np.asarray(a), np.asarray(b)
    picks = np.random.default_rng(0).integers(0, len(a), (rounds, len(a)))
    values = [spearman(a[i], b[i]) for i in picks]
    return tuple(np.nanpercentile(values, [2.5, 97.5]))


def halving_survivor(scores: dict[str, dict[int, float]]) -> str:
    """Synchronous successive halving (ASHA's rule, rungs 1, 2, 4, ..., reduction 2) on the
    scores {trial: {iteration: value}}; a rung reads the latest scored checkpoint up to it."""
    alive, rung = list(scores), 1

    def at(name: str) -> float:
        upto = [i for i in scores[name] if i <= rung] or [min(scores[name])]
        return scores[name][max(upto)]
    while len(alive) > 1:
        alive = sorted(alive, key=at)[:max(1, len(alive) // 2)]
        rung *= 2
    return alive[0]


def report(table: dict, names: list[str], baseline: dict, fifo: dict, asha: dict, in_loop: str, steps: int,
           checkpoints: int) -> None:
    """`table`: {trial: {iteration: {metric: value}}}, the checkpoints scored in every metric,
    each with its samples' `spread` relative to the real data's."""
    trials = sorted(t for t in table if table[t])
    points = [(t, i) for t in trials for i in sorted(table[t])]
    refs = [m for m in (REFERENCE, AUDIO) if m in names]
    print(f"\ncheckpoints scored: {len(points)} ({len(trials)} trials)")
    print("real-vs-real baseline: " + ", ".join(f"{n} {baseline[n]:.4g}" for n in names))
    print("\nSpearman rho over all checkpoints")
    print(f"{'embedding':16s}" + "".join(f"{'vs ' + r:>18s}" for r in refs)
          + "".join(f"{'within ' + r:>20s}" for r in refs))
    for name in names:
        row = f"{name:16s}"
        for r in refs:
            row += f"{spearman([table[t][i][name] for t, i in points], [table[t][i][r] for t, i in points]):18.3f}"
        for r in refs:  # trajectories with at least three scored checkpoints
            within = [spearman([s[name] for s in table[t].values()], [s[r] for s in table[t].values()])
                      for t in trials if len(table[t]) > 2]
            within = [w for w in within if np.isfinite(w)]
            row += f"{np.mean(within) if within else float('nan'):20.3f}"
        print(row)
    if refs and len(points) > 3:
        print(f"  95% interval of rho vs {refs[0]} (checkpoints resampled with replacement, 1000 times): " + ", ".join(
            f"{name} {low:.2f}..{high:.2f}" for name in names if name != refs[0]
            for low, high in [rho_interval([table[t][i][name] for t, i in points],
                                           [table[t][i][refs[0]] for t, i in points])]))
    for name in names:  # an embedding under reduced precision against itself in float32: the drift of its values
        base = name.partition("@")[0]
        if name != base and base in names:
            drift = [abs(table[t][i][name] / table[t][i][base] - 1) for t, i in points]
            print(f"  {name} vs {base}: rho {spearman([table[t][i][name] for t, i in points], [table[t][i][base] for t, i in points]):.4f}, "
                  f"FID drift median {np.median(drift):.2%}, largest {max(drift):.2%}")
    finals = [t for t in trials if len(fifo["curves"].get(t, [])) in table[t]]  # last checkpoint scored
    print(f"\nfinal models ({len(finals)}), best first, by each metric (value = x real-vs-real; KID as it is)")

    def shown(name: str, value: float) -> str:
        return f"{value / baseline[name]:.1f}x" if baseline[name] > 0 and not name.endswith("-kid") else f"{value:.4g}"

    def last(t: str) -> dict:
        return table[t][len(fifo["curves"][t])]
    for name in names:
        order = sorted(finals, key=lambda t: last(t)[name])
        print(f"  {name:16s} " + "  ".join(f"{t} {shown(name, last(t)[name])}" for t in order))
    print("\ntrial successive halving (rungs 1, 2, 4; reduction 2) keeps, under each metric")
    for name in names:
        print(f"  {name:16s} {halving_survivor({t: {i: s[name] for i, s in table[t].items()} for t in finals})}")
    if REFERENCE in names:
        def reached(curves):  # each trial's reference FID at the last checkpoint the scheduler let it reach
            return {t: table[t][len(curves[t])][REFERENCE] for t in curves if len(curves[t]) in table.get(t, {})}
        fifo_ref, asha_ref = reached(fifo["curves"]), reached(asha["curves"])
        fifo_pick = min(fifo["curves"], key=lambda t: fifo["curves"][t][-1])
        full = [t for t in asha["curves"] if len(asha["curves"][t]) == len(fifo["curves"][t])]
        asha_pick = min(full or asha["curves"], key=lambda t: asha["curves"][t][-1])
        how = " (Tune's ASHAScheduler replayed on the FIFO trajectories)" if asha.get("replayed") else ""
        print(f"\nFIFO vs ASHA on {in_loop}{how}")
        missing = sorted(set(fifo["curves"]) - set(fifo_ref) | set(asha["curves"]) - set(asha_ref))
        if missing:
            print(f"  (reference FID not scored at the checkpoint reached by: {', '.join(missing)})")
        if fifo_ref and asha_ref:
            print(f"  best reference FID reached: FIFO {min(fifo_ref.values()):.2f}, ASHA {min(asha_ref.values()):.2f} "
                  f"(ratio {min(asha_ref.values()) / min(fifo_ref.values()):.3f})")
        if fifo_pick in fifo_ref and asha_pick in asha_ref:
            print(f"  reference FID of the trial each picks by {in_loop}: FIFO {fifo_pick} {fifo_ref[fifo_pick]:.2f}, "
                  f"ASHA {asha_pick} {asha_ref[asha_pick]:.2f} (ratio {asha_ref[asha_pick] / fifo_ref[fifo_pick]:.3f})")
        print(f"  total trial-steps: FIFO {fifo['steps']}, ASHA {asha['steps']} "
              f"(ratio {asha['steps'] / fifo['steps']:.3f})")
        replay_every_metric(table, names, finals, fifo, asha, in_loop, steps, checkpoints)
    collapse(table, names, points)


def replay_every_metric(table, names, finals, fifo, asha, in_loop, steps, checkpoints) -> None:
    """Tune's ASHAScheduler replayed on each metric's recorded trajectories: which trial it
    keeps, that trial's reference FID against the FIFO pick's, and the trial-steps spent."""
    complete = [t for t in finals if len(table[t]) == len(fifo["curves"][t])]
    if len(complete) < 2:
        return
    print(f"\nASHA replayed on each metric's trajectories ({len(complete)} trials; target: reference FID of the "
          f"pick within 5% of FIFO's, at most 50% of its trial-steps)")
    print(f"  {'metric':16s} {'FIFO picks':>18s} {'ref':>8s} {'ASHA picks':>18s} {'ref':>8s} {'ratio':>6s} "
          f"{'steps':>6s}")
    for name in names:
        curves = {t: [table[t][i][name] for i in sorted(table[t])] for t in complete}
        replay = replay_asha(curves, checkpoints, steps)
        fifo_pick = min(complete, key=lambda t: curves[t][-1])
        done = [t for t in complete if len(replay["curves"][t]) == len(curves[t])]
        asha_pick = min(done, key=lambda t: curves[t][-1])
        ref = {t: table[t][len(curves[t])][REFERENCE] for t in complete}
        total = steps * sum(len(c) for c in curves.values())
        print(f"  {name:16s} {fifo_pick:>18s} {ref[fifo_pick]:8.2f} {asha_pick:>18s} {ref[asha_pick]:8.2f} "
              f"{ref[asha_pick] / ref[fifo_pick]:6.3f} {replay['steps'] / total:6.3f}")
        if name == in_loop and asha.get("curves") and not asha.get("replayed"):
            same = {t: len(c) for t, c in replay["curves"].items()} == \
                {t: len(c) for t, c in asha["curves"].items() if t in complete}
            print(f"  {'':16s} (the real ASHA run, on the trials' own in-loop values, stopped "
                  f"{'the same trials at the same iterations' if same else 'other trials, or at other iterations'})")
    best = min(complete, key=lambda t: table[t][len(fifo["curves"][t])][REFERENCE])
    print(f"  best final model by the reference: {best} "
          f"{table[best][len(fifo['curves'][best])][REFERENCE]:.2f}")


def collapse(table, names, points) -> None:
    """Is a checkpoint whose samples are near-identical scored worse than a varied one?
    Over every (collapsed, varied) pair, and over those of similar texture (mel-stats
    within a factor of 2), the share each metric orders the right way."""
    collapsed = [p for p in points if table[p[0]][p[1]]["spread"] < COLLAPSED]
    varied = [p for p in points if table[p[0]][p[1]]["spread"] >= COLLAPSED]
    spreads = sorted(table[t][i]["spread"] for t, i in points)
    print(f"\ncollapse: {len(collapsed)} of {len(points)} checkpoints have samples spread below {COLLAPSED} of the "
          f"real data's (spreads {spreads[0]:.2f} to {spreads[-1]:.2f})")
    if not collapsed or not varied:
        return
    print("  " + ", ".join(f"{t}/{i} {table[t][i]['spread']:.2f}" for t, i in collapsed))
    texture = "mel-stats" if "mel-stats" in names else None
    similar = [(c, v) for c in collapsed for v in varied if texture is None or
               0.5 <= table[c[0]][c[1]][texture] / max(table[v[0]][v[1]][texture], 1e-12) <= 2]
    print(f"  share of (collapsed, varied) pairs scored worse for the collapsed one: all {len(collapsed) * len(varied)} "
          f"pairs, {len(similar)} of similar texture ({texture} within 2x)")
    for name in names:
        def worse(pairs):
            right = [table[c[0]][c[1]][name] > table[v[0]][v[1]][name] for c, v in pairs]
            return f"{np.mean(right):.2f}" if right else "  - "
        print(f"  {name:16s} {worse([(c, v) for c in collapsed for v in varied]):>6s} {worse(similar):>6s}")


def fewer_samples(table: dict, work: Path, reference: np.ndarray, count: int, name: str, cached_only: bool) -> None:
    """The in-loop metric on the first `count` samples of every checkpoint, against `count`
    real ones: does a cheaper evaluation still rank like the reference at full size?"""
    scorer = Scorer([name], reference[:count], work / f"scores-n{count}")
    scorer.cached_only = cached_only
    mine, ref = [], []
    for trial, scores in sorted(table.items()):
        for i, row in sorted(scores.items()):
            path = work / "trials-fifo" / trial / f"samples_{i}.npy"
            value = scorer(f"{trial}/{i}", lambda p=path: np.load(p).astype(np.float32)[:count])
            if value is not None:
                mine.append(value[name])
                ref.append(row[REFERENCE])
    if len(mine) > 3:
        print(f"{name} on {count} samples against {REFERENCE} on all: rho {spearman(mine, ref):.3f} "
              f"over {len(mine)} checkpoints")


def score_pending(work: Path, names: list[str], samples: int, shard: str = "0/1",
                  audio_samples: int | None = None) -> int:
    """Score every FIFO checkpoint on disk, again and again, until the benchmark's runs are done."""
    (dataset,) = (work / "storage" / "datasets").iterdir()
    torch.set_num_threads(1)
    reference, other = real_halves(str(dataset), samples)
    scorer = Scorer(names, reference, work / "scores", audio_samples)
    k, n = (int(x) for x in shard.split("/"))  # several scorers, each its share of the files
    if k == 0:
        scorer("real-vs-real", other)
    while True:
        done = (work / "runs.json").exists()
        # the final checkpoints first, then the middle ones: what the report needs most
        found = (work / "trials-fifo").glob("*/samples_*.npy")
        ordered = sorted(found, key=lambda p: (-int(p.stem.split("_")[1]) % 2, -int(p.stem.split("_")[1]),
                                               p.parent.name))
        for path in ordered[k::n]:
            iteration = path.stem.split("_")[1]
            try:
                scorer(f"{path.parent.name}/{iteration}", lambda p=path: np.load(p).astype(np.float32))
            except (ValueError, EOFError, OSError):  # a file the trial is still writing: next pass
                continue
        if done:
            return 0
        time.sleep(20)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", help="a folder of real music (benchmarks/real_corpus.py makes one)")
    parser.add_argument("--work", type=Path, default=None, help="where the dataset, trials and scores go")
    parser.add_argument("--families", nargs="+", default=list(FAMILY_SETTINGS), choices=list(FAMILY_SETTINGS))
    parser.add_argument("--rates", type=int, default=2, help="learning rates per family (1 or 2)")
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--checkpoints", type=int, default=4, help="Tune iterations, one checkpoint each")
    parser.add_argument("--steps", type=int, default=50, help="generator steps per iteration")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--samples", type=int, default=128, help="generated and real images per score")
    parser.add_argument("--embeddings", nargs="+", default=None,
                        help="default: every registered one; inception-N: Inception on N-pixel inputs")
    parser.add_argument("--in-loop", default=None,
                        help="the metric the trials report and ASHA stops on (default: the code's default)")
    parser.add_argument("--fewer-samples", type=int, nargs="*", default=[],
                        help="also score the in-loop metric on the first N samples against N real ones, and "
                             "print its rho against the reference at full --samples (what a cheaper evaluation keeps)")
    parser.add_argument("--audio-samples", type=int, default=None,
                        help="FAD on the first N of each set only (0.5 s of CPU a clip); default: --samples")
    parser.add_argument("--score-only", action="store_true", help="score a finished --work folder again")
    parser.add_argument("--fifo-from-disk", action="store_true",
                        help="a FIFO run stopped early: read its results from --work, and replay Tune's ASHA "
                             "on the trajectories of the trials it finished instead of training them again")
    parser.add_argument("--shard", default="0/1", help="with --score-pending: K/N, this scorer's share")
    parser.add_argument("--cached-only", action="store_true",
                        help="report on the checkpoints already scored in every embedding; compute nothing")
    parser.add_argument("--score-pending", action="store_true",
                        help="beside a running benchmark: score the checkpoints its FIFO trials have written so far")
    args = parser.parse_args(argv)
    if not Path(args.folder).is_dir():
        print(f"error: {args.folder} is not a folder of music", file=sys.stderr)
        return 2
    work = args.work or Path(args.folder).resolve().parent / "metric_agreement"
    work.mkdir(parents=True, exist_ok=True)
    import ray
    from trainables.metrics import embeddings
    started = time.perf_counter()
    state_file = work / "runs.json"
    if args.score_pending:
        return score_pending(work, args.embeddings or list(embeddings.BUILDERS), args.samples, args.shard,
                             args.audio_samples)
    from trainables.config import EvaluationConfig
    in_loop = args.in_loop or EvaluationConfig().embedding
    if args.score_only and state_file.exists():
        state = json.loads(state_file.read_text())
    elif args.fifo_from_disk:
        (dataset,) = (str(d) for d in (work / "storage" / "datasets").iterdir())  # the finished build
        fifo = tune_results_on_disk(work, "fifo")
        finished = sorted(t for t, c in fifo["curves"].items() if len(c) == args.checkpoints)
        configs = [c for c in trial_configs(args.families, args.width, args.steps, args.checkpoints, args.samples,
                                            args.batch_size, in_loop) if c["name"] in finished]
        asha = replay_asha({t: fifo["curves"][t] for t in finished}, args.checkpoints, args.steps)
        state = {"dataset": dataset, "fifo": fifo, "asha": asha, "samples": args.samples, "compared": finished,
                 "in_loop": in_loop}
        state_file.write_text(json.dumps(state))
    else:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        dataset, segments = build_dataset(args.folder, work)
        print(f"dataset: {segments} segments at {dataset} ({time.perf_counter() - started:.0f} s)", flush=True)
        configs = trial_configs(args.families, args.width, args.steps, args.checkpoints, args.samples, args.batch_size,
                                in_loop)
        configs = [c for i, c in enumerate(configs) if i % 2 < args.rates]
        fifo = run_tune("fifo", configs, dataset, work, args.checkpoints)
        print(f"FIFO done: {fifo['steps']} generator steps ({time.perf_counter() - started:.0f} s)", flush=True)
        asha = run_tune("asha", configs, dataset, work, args.checkpoints)
        print(f"ASHA done: {asha['steps']} generator steps ({time.perf_counter() - started:.0f} s)", flush=True)
        state = {"dataset": dataset, "fifo": fifo, "asha": asha, "samples": args.samples, "in_loop": in_loop}
        state_file.write_text(json.dumps(state))
        ray.shutdown()
    fifo, asha, dataset = state["fifo"], state["asha"], state["dataset"]
    in_loop = state.get("in_loop", "random-conv")  # what the trials on disk were run with
    # the same config and seed train the same weights under either scheduler
    drift = max(abs(a - f) / max(abs(f), 1e-12) for t in asha["curves"]
                for a, f in zip(asha["curves"][t], fifo["curves"][t]))
    print(f"ASHA vs FIFO in-loop {in_loop} at equal iterations: largest relative difference {drift:.2e}")

    names = args.embeddings or [n for n in embeddings.BUILDERS]
    reference, other = real_halves(dataset, state["samples"])
    torch.set_num_threads(2)
    scorer = Scorer(names, reference, work / "scores", args.audio_samples)
    scorer.cached_only = args.cached_only
    baseline = scorer("real-vs-real", other)
    if baseline is None:
        print("error: the real-vs-real baseline is not scored yet in every embedding", file=sys.stderr)
        return 1
    print(f"reference ready ({time.perf_counter() - started:.0f} s)", flush=True)
    real_spread = spread(other)
    table = {}
    for trial in sorted(fifo["curves"]):
        folder = work / "trials-fifo" / trial
        table[trial] = {}
        for i in range(1, len(fifo["curves"][trial]) + 1):
            samples = np.load(folder / f"samples_{i}.npy").astype(np.float32)
            scores = scorer(f"{trial}/{i}", samples)
            if scores is not None:
                table[trial][i] = {**scores, "spread": spread(samples) / real_spread}
        print(f"scored {trial} ({time.perf_counter() - started:.0f} s)", flush=True)
    (work / "scores.json").write_text(json.dumps({"table": table, "baseline": baseline}))
    metrics = [m for n in names for m in ([n, f"{n}-kid"] if n in CHEAP else [n])]
    compared = state.get("compared", sorted(fifo["curves"]))  # the trials both schedulers ran
    fifo_compared = {"curves": {t: fifo["curves"][t] for t in compared},
                     "steps": sum(args.steps * len(fifo["curves"][t]) for t in compared)}
    if len(compared) < len(fifo["curves"]):
        print(f"FIFO vs ASHA over the {len(compared)} trials FIFO finished: {', '.join(compared)}")
    report(table, metrics, baseline, fifo_compared, asha, in_loop, args.steps, args.checkpoints)
    for count in args.fewer_samples if REFERENCE in names else []:
        # the in-loop embedding, and each reduced-precision form of it that was scored (inception-fast@bf16)
        for name in [n for n in names if n.partition("@")[0] == in_loop] or [in_loop]:
            fewer_samples(table, work, reference, count, name, args.cached_only)
    print(f"\ntotal {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
