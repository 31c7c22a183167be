"""What a sweep will cost, said before it runs: per experiment, its trials, steps, images,
evaluations, data and an estimated wall time.

A trial's length is the one the trainer runs and the driver resolves
(trainables/trial_length.py), applied to the dataset's segment count: the built dataset's manifest where it exists, the synthetic
generator's exact count otherwise, and nothing for sources not yet downloaded (the lines
then say so, and `platform.prepare` builds the dataset first). Seconds come from
`platform.driver.calibration`, measured on this machine's device.
"""
import dataclasses
import math
import os
from pathlib import Path

from data.dataset import read_manifest
from platform.spec import tune_space
from platform.spec.spaces import SweepSpec
from trainables import trial_length
from trainables.config import ModelConfig, TrainingConfig

BYTES = {"float16": 2, "uint8": 1}


@dataclasses.dataclass(frozen=True)
class ExperimentPlan:
    name: str
    model: ModelConfig
    training: TrainingConfig
    trials: int
    rows: int               # segments each trial trains on
    steps: int              # generator steps of one trial run to its end
    iterations: int         # Tune iterations of one trial run to its end
    evaluated: tuple[int, ...]  # the iterations that carry fid

    @property
    def images(self) -> int:
        """Real images one trial draws: a batch per critic step."""
        return self.steps * self.training.critic_steps * self.training.batch_size


def dataset_segments(spec: SweepSpec) -> tuple[int | None, str]:
    """(segments, where that count comes from); None when only a build can tell."""
    built = Path(spec.storage.resolved_root()) / "datasets" / spec.dataset.fingerprint
    try:
        return int(read_manifest(built)["counts"]["segments"]), f"the built dataset {built}"
    except (OSError, KeyError, ValueError, TypeError):
        pass
    d = spec.dataset
    if d.synthetic and not (d.urls or d.url_files or d.folders):
        per_track = math.floor(d.synthetic.seconds / d.segment.seconds)
        return d.synthetic.tracks * per_track, "the synthetic generator's settings"
    return None, "unknown until the dataset is built (python -m platform.prepare FILE)"


def plan(spec: SweepSpec, segments: int) -> list[ExperimentPlan]:
    """One plan per experiment (the spec itself when it has none), each trial at the length
    the driver will resolve for it (trainables/trial_length.py) and evaluated where the
    sweep's schedule says."""
    settings = {name: (e.model, e.training) for name, e in spec.experiments.items()} or \
        {spec.name: (spec.model, spec.training)}
    per_experiment = spec.trial_count() // max(1, len(spec.experiments))
    schedule = tune_space.evaluation_schedule(spec, tune_space.SweepLengths.of_spec(spec, segments).longest)
    plans = []
    for name, (model, training) in settings.items():
        rows = trial_length.segments_used(training, segments)
        steps = trial_length.steps(training, rows)
        iterations = trial_length.iterations(training, rows)
        evaluated = tuple(i for i in range(1, iterations + 1)
                          if schedule.due(i, i == iterations, spec.evaluation, iterations))
        plans.append(ExperimentPlan(name, model, training, per_experiment, rows, steps, iterations, evaluated))
    return plans


def _iterations_text(evaluated: tuple[int, ...]) -> str:
    shown = ", ".join(map(str, evaluated[:8]))
    return shown + (f", ... {evaluated[-1]}" if len(evaluated) > 8 else "")


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def lines(spec: SweepSpec, segments: int | None, source: str, timing=None) -> list[str]:
    """The dry run's cost section. `timing(plan) -> (training seconds, seconds an evaluation)`
    of one trial, or None to leave time out."""
    if segments is None:
        return [f"cost: dataset size {source}; steps, images and time follow from it"]
    dtype_bytes = BYTES[spec.training.data_dtype]
    n_mels, frames = spec.dataset.mel.n_mels, spec.dataset.mel.frames
    size = segments * n_mels * frames * dtype_bytes
    out = [f"cost: dataset {segments:,} segments of {n_mels} x {frames} ({source}), "
           f"{size / 2**30:.2f} GiB in {spec.training.data_dtype} per node"]
    total = 0.0
    for p in plan(spec, segments):
        line = (f"  {p.name}: {p.trials} trial(s) x {p.steps:,} steps ({p.iterations} iterations, "
                f"{p.rows:,} rows, {p.images:,} images); fid at {len(p.evaluated)} iterations "
                f"({_iterations_text(p.evaluated)}) on {spec.evaluation.samples} samples")
        if timing is not None:
            train_s, eval_s = timing(p)
            trial_s = train_s + eval_s * len(p.evaluated)
            total += trial_s * p.trials
            line += f"; about {_duration(trial_s)} a trial ({_duration(eval_s * len(p.evaluated))} of it fid)"
        out.append(line)
    if timing is not None:
        at_once = concurrent_trials(spec)
        early = " (ASHA stops most earlier)" if spec.tune.scheduler.name == "asha" else ""
        out.append(f"  in all: {spec.trial_count()} trial(s), about {_duration(total)} of trial time if each "
                   f"runs to its end{early}; {at_once} at a time here: about {_duration(total / at_once)} of wall")
    return out


def concurrent_trials(spec: SweepSpec) -> int:
    """How many trials this machine's cores run at once for this spec."""
    cores = os.cpu_count() or 1
    fit = max(1, int(cores // spec.tune.resources_per_trial.cpu))
    return max(1, min(spec.tune.max_concurrent or fit, fit, spec.trial_count()))


def gpu_count() -> int:
    """NVIDIA GPUs on this machine, as the driver lists them (no torch import)."""
    try:
        return len(list(Path("/proc/driver/nvidia/gpus").iterdir()))
    except OSError:
        return 0


def resources_warning(spec: SweepSpec) -> str | None:
    """One sentence when a trial asks for more than this machine has (a local sweep would
    refuse to start), else None."""
    asked = spec.tune.resources_per_trial
    gpus, cpus = gpu_count(), os.cpu_count() or 1
    if asked.gpu > gpus:
        return (f"warning: tune.resources_per_trial.gpu is {asked.gpu} but this machine has "
                f"{gpus or 'no'} GPU{'s' if gpus != 1 else ''}, so a sweep here would not start; "
                f"add --set tune.resources_per_trial.gpu=0 to train on the CPU")
    if asked.cpu > cpus:
        return (f"warning: tune.resources_per_trial.cpu is {asked.cpu} but this machine has {cpus} cores, "
                f"so a sweep here would not start; add --set tune.resources_per_trial.cpu={cpus}")
    return None


def dry_run_lines(spec: SweepSpec, measure: bool = True) -> list[str]:
    """The cost section of `--dry-run`, measuring what the calibration cache lacks unless
    `measure` is False (the time is then left out, saying so). Torch is imported only to
    measure what the cache lacks."""
    from platform.driver.calibration import Calibration
    segments, source = dataset_segments(spec)
    warning = resources_warning(spec)
    use_gpu = spec.tune.resources_per_trial.gpu > 0 and gpu_count() > 0
    threads = max(1, int(spec.tune.resources_per_trial.cpu))
    timing = None
    if measure and segments is not None:
        calibration = Calibration(spec.storage.resolved_root(), "cuda" if use_gpu else "cpu", threads)

        def timing(p: ExperimentPlan):
            step = calibration.step_seconds(p.model, p.training)
            sample = calibration.sample_seconds(spec.evaluation, spec.dataset)
            return p.steps * step, sample * spec.evaluation.samples
    out = lines(spec, segments, source, timing)
    if timing is not None:
        device = "this machine's GPU" if use_gpu else f"this machine's CPU, {threads} thread(s) a trial"
        load = max(calibration.loads, default=0.0)
        busy = f"; measured at a load of up to {load:.1f} on {os.cpu_count()} cores, so high" \
            if load > (os.cpu_count() or 1) else ""
        out.append(f"  (times measured on {device}, cached in {calibration.path}{busy}"
                   + ("" if use_gpu or spec.tune.resources_per_trial.gpu == 0 else
                      "; a GPU share's time is not measured here: run the dry run on a GPU node") + ")")
    elif segments is not None:
        out.append("  (time not estimated: the calibration was skipped)")
    return out + ([warning] if warning else [])
