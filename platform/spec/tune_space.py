"""A validated SweepSpec (platform/spec/spaces.py) in Ray Tune's terms: the param space (the
searched keys as Tune domains, a sweep's experiments as a grid), PBT's mutations, the
searcher, the scheduler, the trials' names and lengths (resolved on the built dataset), and
the iterations at which that scheduler reads `fid` (where trials evaluate). Ray is imported
here only, when a sweep starts.
"""
import dataclasses
import logging
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from platform.spec.numbers import shown
from platform.spec.spaces import Domain, SweepSpec, pbt_searched
from trainables import trial_length
from trainables.config import SECTIONS as TRIAL_SECTIONS
from trainables.config import TrainingConfig
from trainables.evaluation_schedule import EvaluationSchedule


def domain(d: Domain):
    from ray import tune
    if d.kind == "constant":
        return d.values[0]
    if d.kind == "grid":
        return tune.grid_search(list(d.values))
    if d.kind == "choice":
        return tune.choice(list(d.values))
    return getattr(tune, d.kind)(*d.values)


def param_space(spec: SweepSpec) -> dict:
    """Tune's param space: every trial hyperparameter, searched ones as Tune domains."""
    space = {section: dataclasses.asdict(getattr(spec, section)) for section in TRIAL_SECTIONS}
    for path, d in spec.search.items():
        section, key = path.split(".")
        space[section][key] = domain(d)
    if spec.experiments:
        from ray import tune
        space["experiment"] = tune.grid_search(list(spec.experiments))
        for section, key in spec.experiment_keys():
            chosen = {name: getattr(getattr(e, section), key) for name, e in spec.experiments.items()}
            space[section][key] = tune.sample_from(_ByExperiment(chosen))
    return space


@dataclass(frozen=True)
class _ByExperiment:
    """A Tune sample_from: the value this trial's experiment sets (a class, so it pickles)."""
    values: dict

    def __call__(self, config: dict) -> Any:
        return self.values[config["experiment"]]


def pbt_mutations(spec: SweepSpec) -> dict:
    """PBT's hyperparam_mutations: the searched learning rates, resampled from their domains."""
    mutations = {}
    for path in pbt_searched(spec):
        section, key = path.split(".")
        mutations.setdefault(section, {})[key] = domain(spec.search[path])
    return mutations


def trial_name(config: dict, searched: list[str], number: int) -> str:
    """What a trial is, the same in Tune's table and folders, MLflow, the report and
    results.csv: its sweep experiment (paper.yaml) or model family, its number in the sweep
    (which makes it unique) and its searched values, e.g.
    `dcgan1 #3 lr_g=3.0e-4 lr_d=2.6e-4 beta1=0.47 width=16`."""
    head = config.get("experiment") or (config.get("model") or {}).get("family", "trial")
    values = []
    for path in searched:
        section, key = path.split(".")
        value = (config.get(section) or {}).get(key)
        if value is not None and not isinstance(value, dict):  # a Tune domain not yet resolved
            values.append(f"{key}={shown(value, 2)}")
    return " ".join([f"{head} #{number}", *values])


def trial_dirname(name: str) -> str:
    """A trial's name as a folder name: letters, digits and `._=-` only, so no value can
    name a path of its own."""
    return re.sub(r"[^A-Za-z0-9._=-]+", "_", name.replace(" #", "-"))[:120].strip("._") or "trial"


def tune_count(trial) -> int:
    """Tune's own count of the trials its search created, read from the number that leads
    the trial's public `experiment_tag` (`3_lr_g=0.001`): the random searcher's variant
    generator counts from 0, a search algorithm's generator (Optuna's) from 1. Tune keeps
    that count with the sweep, so the trials a resumed sweep adds go on from it."""
    return int(trial.experiment_tag.split("_", 1)[0])


@dataclass(frozen=True)
class TrialNames:
    """Tune's trial_name_creator and trial_dirname_creator (a class, so Tune can pickle it).
    A trial's number is its place in the sweep as Tune's search counts it (`tune_count`),
    from 0: the sweep's one count, kept by Tune, so this holds no state of its own."""
    searched: tuple[str, ...]
    counts_from: int = 0  # 0 under the random searcher, 1 under a search algorithm

    @classmethod
    def for_spec(cls, spec: SweepSpec) -> "TrialNames":
        return cls(tuple(spec.search), 0 if spec.tune.searcher == "random" else 1)

    def name(self, trial) -> str:
        return trial_name(trial.config, list(self.searched), tune_count(trial) - self.counts_from)

    def dirname(self, trial) -> str:
        return trial_dirname(self.name(trial))


def searcher(spec: SweepSpec, sweep_name: str | None = None):
    """`sweep_name`: with the optuna searcher, the study is stored under that name where
    platform.spec.study_storage says (in memory when None)."""
    from ray.tune.search import BasicVariantGenerator, ConcurrencyLimiter
    if spec.tune.searcher == "random":
        return BasicVariantGenerator(max_concurrent=spec.tune.max_concurrent, random_state=spec.tune.seed)
    from platform.spec.optuna_search import OptunaOnEvaluations
    stored = {}
    if sweep_name:
        from platform.spec import study_storage
        stored = {"study_name": sweep_name, "storage": study_storage.storage(spec)}
    return ConcurrencyLimiter(OptunaOnEvaluations(seed=spec.tune.seed, **stored), max_concurrent=spec.tune.max_concurrent)


class _NotMissingMetric(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Cannot find metric")


def scheduler(spec: SweepSpec, max_t: int):
    """`max_t`: the sweep's longest trial in iterations (SweepLengths.longest)."""
    from ray.tune.schedulers import FIFOScheduler, PopulationBasedTraining
    s = spec.tune.scheduler
    if s.name == "fifo":
        return FIFOScheduler()
    if s.name == "pbt":
        # Trials report fid at the perturbations only (evaluation_schedule): PBT skips the
        # other results when not told to require the metric, and would warn once about it
        # with the whole result, which says nothing a user needs.
        logging.getLogger("ray.tune.schedulers.pbt").addFilter(_NotMissingMetric())
        # time in Tune iterations, so perturbations land on checkpoints, not wall-clock moments
        return PopulationBasedTraining(time_attr="training_iteration", perturbation_interval=s.perturbation_interval,
                                       hyperparam_mutations=pbt_mutations(spec), quantile_fraction=s.quantile_fraction,
                                       resample_probability=s.resample_probability, synch=s.synch,
                                       require_attrs=False)
    from platform.spec.asha_cutoffs import ReadableASHA
    return ReadableASHA(max_t=max_t, grace_period=s.grace_period, reduction_factor=s.reduction_factor)


def asha_milestones(max_t: int, grace_period: int, reduction_factor: float) -> list[float]:
    """The milestones of Tune's ASHA (one bracket), as Ray's `_Bracket` lays them out:
    grace_period * reduction_factor^k, as many as fit below max_t."""
    count = int(math.log(max_t / grace_period) / math.log(reduction_factor) + 1)
    return [grace_period * reduction_factor ** k for k in range(count)]


def asha_readings(max_t: int, grace_period: int, reduction_factor: float) -> tuple[int, ...]:
    """The iterations at which ASHA records a trial's fid at a rung when every iteration is
    evaluated, plus max_t, where it stops every trial. At each result ASHA records the
    highest milestone at or below the iteration that the trial has not passed yet, one
    per result: where two milestones fall within one iteration (reduction_factor 1.3 from
    grace 1: 1.3 and 1.69 both reached at 2), the lower one is recorded at the next
    iteration. Evaluating at all of these (and anywhere else) leaves every decision as it is
    with every iteration evaluated."""
    pending = sorted(asha_milestones(max_t, grace_period, reduction_factor))
    reached: list[float] = []  # passed, not yet recorded: the highest is recorded next
    readings, iteration = [], 0
    while (pending or reached) and iteration < max_t:
        iteration = iteration + 1 if reached else max(iteration + 1, math.ceil(pending[0]))
        while pending and pending[0] <= iteration:
            reached.append(pending.pop(0))
        if reached:
            reached.pop()  # the highest
            readings.append(iteration)
    return tuple(sorted({i for i in readings if i < max_t} | {max_t}))


def evaluation_schedule(spec: SweepSpec, max_t: int) -> EvaluationSchedule:
    """Where this sweep's scheduler reads fid, so trials evaluate there (and every
    `evaluation.every`, and at their last iteration) instead of at every iteration.
    `max_t`: the sweep's longest trial in iterations."""
    s = spec.tune.scheduler
    if s.name == "asha":
        return EvaluationSchedule(at=asha_readings(max_t, s.grace_period, s.reduction_factor))
    if s.name == "pbt":
        return EvaluationSchedule(period=s.perturbation_interval)
    return EvaluationSchedule()


@dataclass(frozen=True)
class SweepLengths:
    """The trials' lengths in iterations, resolved once the dataset is built
    (trainables/trial_length.py): `segments` is the built dataset's count."""
    segments: int
    longest: int

    @classmethod
    def of_spec(cls, spec: SweepSpec, segments: int) -> "SweepLengths":
        return cls(segments, max(_length(t, segments) for t in spec.training_variants()))

    def of(self, config: dict) -> int:
        """The length of the trial with this Tune config."""
        return _length(TrainingConfig(**config["training"]), self.segments)


def _length(training: TrainingConfig, segments: int) -> int:
    return trial_length.iterations(training, trial_length.segments_used(training, segments))
