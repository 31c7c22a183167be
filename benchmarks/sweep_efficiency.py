"""Where a finished sweep spent its cores: training, evaluation, artifacts and checkpoints,
trial start-up, other time inside trials, and idle slots, as shares of cores x sweep wall.

    .venv/bin/python benchmarks/sweep_efficiency.py --tracking-uri sqlite:///$PWD/mlflow.db --experiment quickstart
    .venv/bin/python benchmarks/sweep_efficiency.py \\
        --label before --tracking-uri sqlite:////old/mlflow.db --experiment paper \\
        --label after --tracking-uri sqlite:////new/mlflow.db --experiment paper

Each of --label, --tracking-uri, --experiment, --parent (a parent run id, or `latest`: the
experiment's latest sweep), --cores (a number, or `auto`) and --tune-dir (or `auto`) is given
once for every sweep or once per sweep, in order; the sweeps are printed side by side.

Sweep wall: the sweep's MLflow parent run, from its start to its end. It starts once Ray is
up and the dataset is ready, just before `Tuner.fit`, and ends after it and the sweep's closing
(results.csv): the span in which trials can run. The dataset build and Ray's start are the
command's costs, not the trials', and every store, old or new, has the parent run's times.

Cores: `tune.resources_per_trial.cpu` x `tune.max_concurrent`, from the spec the sweep ran
(`platform-sweep.json` in its Tune experiment directory, found under the storage root the
parent run names, or --tune-dir): the CPUs the sweep claimed for its trials, which is what
its idle slots waste. The Ray cluster's CPU count is in no store, and may be more than the
sweep was allowed; --cores N replaces the figure (and then no Tune directory is read).

A trial occupies a slot from the moment it began (`time/startup_s` before its first step,
whose moment is that metric's timestamp: trainables/trial_clock.py) to its MLflow run's end,
both clipped to the sweep wall. Inside that span: `time/train_s`, `eval/seconds` and
`time/final_eval_s` (evaluation), `artifacts/seconds` and `time/checkpoint_s`, the start-up,
and the rest ("other": Tune's reports and their checkpoint copies, logging, the run's end).
A trial of `resources_per_trial.cpu` N holds N cores for its span: its seconds count N times
(with --cores, each trial counts as one core). Idle is cores x wall less every trial's span so
counted. The shares add up to 100 % by construction.

A sweep made before trials logged their timing (no `time/*` metrics) is read too: training
seconds are derived per iteration from `throughput/img_s` (images through the critic per
second of `GANTrainer.run_iteration`: steps x critic_steps x batch_size, the steps from the
iteration's step count and the run's params), a trial's span is its run's, and its start-up
cannot be separated: the part after the run opened is in "other", the part before in "idle".
The output says which sweeps were read so.
"""
import argparse
import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import platform  # noqa: E402,F401  (the repo's shim, before mlflow)

from trainables import trial_clock as clock  # noqa: E402

THROUGHPUT = "throughput/img_s"
SWEEP_STATE = "platform-sweep.json"  # platform/driver/resume.py's record of a sweep, spec included
KEYS = (clock.TRAIN_S, clock.EVAL_S, clock.FINAL_EVAL_S, clock.ARTIFACTS_S, clock.CHECKPOINT_S,
        clock.STARTUP_S, THROUGHPUT)
PARTS = ("training", "evaluation", "artifacts and checkpoints", "trial start-up", "other in trials", "idle slots")
EVAL_TARGET, TRAIN_TARGET = 0.10, 0.80  # issue 27: evaluation share of trial time, training share of cores x wall


class Unreadable(Exception):
    """A sweep that cannot be read as asked; the message names what and where."""


@dataclass
class Trial:
    """One trial's seconds, read from its run (see the module's docstring)."""
    span: float = 0.0
    parts: dict = field(default_factory=lambda: dict.fromkeys(PARTS[:5], 0.0))
    derived: bool = False  # an old store's: training derived from throughput, start-up not logged
    reused: bool = False   # it ran in a worker that had run a trial before

    def on_cores(self, cpus: float) -> "Trial":
        """The trial's seconds as core-seconds: a trial of `cpus` CPUs holds that many cores."""
        self.span *= cpus
        self.parts = {part: seconds * cpus for part, seconds in self.parts.items()}
        return self


@dataclass
class Sweep:
    label: str
    experiment: str
    parent: str
    wall: float
    cores: float
    cores_from: str
    trials: list

    def seconds(self) -> dict:
        total = {part: sum(t.parts[part] for t in self.trials) for part in PARTS[:5]}
        total["idle slots"] = self.cores * self.wall - sum(t.span for t in self.trials)
        return total

    @property
    def derived(self) -> bool:
        return any(t.derived for t in self.trials)


def _history(client, run_id: str, key: str) -> dict[int, tuple[float, int]]:
    """{step: (value, timestamp in ms)}: a step logged twice keeps its last value."""
    points = sorted(client.get_metric_history(run_id, key), key=lambda m: (m.step, m.timestamp))
    return {m.step: (m.value, m.timestamp) for m in points}


def _derived_training(history: dict, params: dict, run_name: str) -> float:
    """Seconds training, from each iteration's images per second (GANTrainer.run_iteration)."""
    try:
        per_step = int(params["training.critic_steps"]) * int(params["training.batch_size"])
    except KeyError as missing:
        raise Unreadable(f"run {run_name} has no param {missing.args[0]}, needed to derive its training "
                         f"seconds from {THROUGHPUT}.") from None
    seconds, before = 0.0, 0
    for step in sorted(history):
        img_s = history[step][0]
        seconds += (step - before) * per_step / img_s if img_s > 0 else 0.0
        before = step
    return seconds


def read_trial(client, run, start: float, end: float) -> Trial:
    """A trial run's seconds, its span clipped to the sweep wall [start, end] (epoch seconds)."""
    run_id = run.info.run_id
    got = {key: _history(client, run_id, key) for key in KEYS}
    total = {key: sum(value for value, _ in got[key].values()) for key in KEYS}
    trial = Trial(reused=int(run.data.tags.get(clock.TRIAL_INDEX, "0")) > 0)
    stop = min(end, run.info.end_time / 1000 if run.info.end_time else end)
    # a run with neither (a trial that diverged at once) trained for nothing that was logged
    trial.derived = not got[clock.TRAIN_S] and bool(got[THROUGHPUT])
    trial.parts["training"] = total[clock.TRAIN_S] if not trial.derived else \
        _derived_training(got[THROUGHPUT], run.data.params, run.info.run_name)
    if got[clock.STARTUP_S]:
        value, stamp = next(iter(got[clock.STARTUP_S].values()))
        began = max(start, stamp / 1000 - value)
        trial.parts["trial start-up"] = max(0.0, stamp / 1000 - began)
    else:  # an old store's, or a restored trial's whose first iteration was logged before
        began = max(start, run.info.start_time / 1000)
    trial.span = max(0.0, stop - began)
    trial.parts["evaluation"] = total[clock.EVAL_S] + total[clock.FINAL_EVAL_S]
    trial.parts["artifacts and checkpoints"] = total[clock.ARTIFACTS_S] + total[clock.CHECKPOINT_S]
    trial.parts["other in trials"] = trial.span - sum(trial.parts[p] for p in PARTS[:4])
    return trial


def tune_dir_of(parent) -> Path:
    """The Tune storage folder a sweep ran with: storage.tune, else <storage.root>/tune, as the
    parent run records them (its `set/` params, else its dataset's folder under the root)."""
    params, tags = parent.data.params, parent.data.tags
    if params.get("set/storage.tune") not in (None, "None", "null", ""):
        return Path(params["set/storage.tune"])
    if "set/storage.root" in params:
        return Path(params["set/storage.root"]) / "tune"
    if "dataset.path" in tags:  # <root>/datasets/<fingerprint>
        return Path(tags["dataset.path"]).parent.parent / "tune"
    raise Unreadable(f"parent run {parent.info.run_id} names no storage root; pass --tune-dir or --cores.")


def cores_of(parent, tune_dir: str) -> tuple[float, int, str]:
    """resources_per_trial.cpu and max_concurrent of the spec the sweep ran, and where it was read."""
    base = tune_dir_of(parent) if tune_dir == "auto" else Path(tune_dir)
    for state in sorted(base.glob(f"*/{SWEEP_STATE}")):
        record = json.loads(state.read_text())
        if record.get("tracking", {}).get("parent_run_id") == parent.info.run_id:
            tune = record["spec"]["tune"]
            cpu, slots = float(tune["resources_per_trial"]["cpu"]), int(tune["max_concurrent"])
            return cpu, slots, f"{cpu:g} cpu x {slots} concurrent, {state.parent.name}"
    raise Unreadable(f"no Tune experiment of parent run {parent.info.run_id} under {base} "
                     f"(no {SWEEP_STATE} names it); pass --tune-dir or --cores.")


def read_sweep(label: str, tracking_uri: str, experiment: str, parent: str = "latest", cores: str = "auto",
               tune_dir: str = "auto") -> Sweep:
    from mlflow import MlflowClient

    from platform.driver.tracking import RunLookupError, sweep_runs
    client = MlflowClient(tracking_uri=tracking_uri)
    try:
        run, children = sweep_runs(client, experiment, None if parent == "latest" else parent)
    except RunLookupError as error:
        raise Unreadable(str(error)) from None
    if not run.info.end_time:
        raise Unreadable(f"sweep {run.info.run_id} of {experiment!r} has not ended; read it once it has.")
    start, end = run.info.start_time / 1000, run.info.end_time / 1000
    if cores == "auto":
        cpus, slots, where = cores_of(run, tune_dir)
        count = cpus * slots
    else:  # given: every trial taken to hold one core
        cpus, count, where = 1.0, float(cores), "--cores"
    trials = [read_trial(client, child, start, end).on_cores(cpus) for child in children]
    return Sweep(label, experiment, run.info.run_id, end - start, count, where, trials)


def _share(value: float, whole: float) -> str:
    return f"{100 * value / whole:6.1f} %" if whole > 0 else "     n/a"


def table(sweeps: list[Sweep]) -> list[str]:
    """The printed comparison: one column per sweep."""
    width = max(12, *(len(s.label) + 2 for s in sweeps))
    row = lambda name, cells: f"{name:<38}" + "".join(f"{c:>{width}}" for c in cells)  # noqa: E731
    lines = []
    for s in sweeps:
        lines.append(f"{s.label}: experiment {s.experiment}, sweep {s.parent}, {len(s.trials)} trials, "
                     f"wall {s.wall:.1f} s (parent run), cores {s.cores:g} ({s.cores_from})")
        if s.derived:
            lines.append(f"{s.label}: read as an old store (no time/* metrics): training derived from {THROUGHPUT}; "
                         "start-up not separable: inside the run in 'other in trials', before it in 'idle slots'")
    seconds = [s.seconds() for s in sweeps]
    lines.append(row("share of cores x wall", [s.label for s in sweeps]))
    for part in PARTS:
        cells = ["n/a" if part == "trial start-up" and s.derived else _share(sec[part], s.cores * s.wall)
                 for s, sec in zip(sweeps, seconds)]
        lines.append(row(part, cells))
    lines.append(row("total", [_share(sum(sec.values()), s.cores * s.wall) for s, sec in zip(sweeps, seconds)]))
    lines.append(row("cores x wall, s", [f"{s.cores * s.wall:.1f}" for s in sweeps]))
    lines.append(row("trial time (spans), s", [f"{sum(t.span for t in s.trials):.1f}" for s in sweeps]))
    lines.append(row("training, s", [f"{sec['training']:.1f}" for sec in seconds]))
    lines.append(row(f"evaluation / trial time (<= {EVAL_TARGET:.0%})",
                     [_share(sec["evaluation"], sum(t.span for t in s.trials)) for s, sec in zip(sweeps, seconds)]))
    lines.append(row(f"training / cores x wall (>= {TRAIN_TARGET:.0%})",
                     [_share(sec["training"], s.cores * s.wall) for s, sec in zip(sweeps, seconds)]))
    lines.append(row("trials in a reused worker",
                     ["n/a" if s.derived else f"{sum(t.reused for t in s.trials)} of {len(s.trials)}" for s in sweeps]))
    return lines


def _per_sweep(values: list | None, count: int, flag: str, default: str | None) -> list:
    if not values:
        if default is None:
            raise Unreadable(f"{flag} is required.")
        return [default] * count
    if len(values) == 1:
        return values * count
    if len(values) != count:
        raise Unreadable(f"{flag} is given {len(values)} times for {count} sweeps: give it once or once per sweep.")
    return values


def sweeps_asked(args) -> list[tuple]:
    count = max(len(v or []) for v in (args.label, args.tracking_uri, args.experiment, args.parent, args.cores,
                                        args.tune_dir))
    count = max(count, 1)
    columns = [_per_sweep(args.tracking_uri, count, "--tracking-uri", None),
               _per_sweep(args.experiment, count, "--experiment", None),
               _per_sweep(args.parent, count, "--parent", "latest"),
               _per_sweep(args.cores, count, "--cores", "auto"),
               _per_sweep(args.tune_dir, count, "--tune-dir", "auto")]
    labels = args.label or [f"sweep {n + 1}" for n in range(count)]
    labels = _per_sweep(labels, count, "--label", None)
    for cores in columns[3]:
        if cores != "auto" and not _positive(cores):
            raise Unreadable(f"--cores {cores!r} is neither a positive number nor 'auto'.")
    return list(zip(labels, *columns))


def _positive(text: str) -> bool:
    try:
        return float(text) > 0 and math.isfinite(float(text))
    except ValueError:
        return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--label", action="append", help="the sweep's column heading")
    parser.add_argument("--tracking-uri", action="append", help="its MLflow store, e.g. sqlite:////path/mlflow.db")
    parser.add_argument("--experiment", action="append", help="its experiment (the search space's name)")
    parser.add_argument("--parent", action="append", help="its parent run id, or 'latest' (the default)")
    parser.add_argument("--cores", action="append", help="the cores it had, or 'auto' (the default: from its spec)")
    parser.add_argument("--tune-dir", action="append", help="its Tune storage folder, or 'auto' (the default)")
    args = parser.parse_args(argv)
    try:
        sweeps = [read_sweep(*asked) for asked in sweeps_asked(args)]
    except Unreadable as error:
        print(f"sweep_efficiency: {error}", file=sys.stderr)
        return 2
    print("\n".join(table(sweeps)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
