"""A validated SweepSpec (platform/spaces.py) in Ray Tune's terms: the param space (the
searched keys as Tune domains, a sweep's experiments as a grid), PBT's mutations, the
searcher, the scheduler, and the iterations at which that scheduler reads `fid` (where
trials evaluate). Ray is imported here only, when a sweep starts.
"""
import dataclasses
import logging
import math
from dataclasses import dataclass
from typing import Any

from platform.spaces import Domain, SweepSpec, pbt_searched
from trainables.config import SECTIONS as TRIAL_SECTIONS
from trainables.evaluation import EvaluationSchedule


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


def searcher(spec: SweepSpec):
    from ray.tune.search import BasicVariantGenerator, ConcurrencyLimiter
    if spec.tune.searcher == "random":
        return BasicVariantGenerator(max_concurrent=spec.tune.max_concurrent, random_state=spec.tune.seed)
    from platform.optuna_search import OptunaOnEvaluations
    return ConcurrencyLimiter(OptunaOnEvaluations(seed=spec.tune.seed), max_concurrent=spec.tune.max_concurrent)


class _NotMissingMetric(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Cannot find metric")


def scheduler(spec: SweepSpec):
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, PopulationBasedTraining
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
    return ASHAScheduler(max_t=spec.max_iterations(), grace_period=s.grace_period,
                         reduction_factor=s.reduction_factor)


def asha_rungs(max_t: int, grace_period: int, reduction_factor: float) -> tuple[int, ...]:
    """The iterations at which Tune's ASHA (one bracket) compares a trial with the others:
    its milestones grace_period * reduction_factor^k below max_t, as Ray's `_Bracket` lays
    them out, each acted on at the first iteration at or past it, plus max_t, where ASHA
    stops every trial."""
    count = int(math.log(max_t / grace_period) / math.log(reduction_factor) + 1)
    milestones = (grace_period * reduction_factor ** k for k in range(count))
    return tuple(sorted({math.ceil(m) for m in milestones} | {max_t}))


def evaluation_schedule(spec: SweepSpec) -> EvaluationSchedule:
    """Where this sweep's scheduler reads fid, so trials evaluate there (and every
    `evaluation.every`, and at their last iteration) instead of at every iteration."""
    s = spec.tune.scheduler
    if s.name == "asha":
        return EvaluationSchedule(at=asha_rungs(spec.max_iterations(), s.grace_period, s.reduction_factor))
    if s.name == "pbt":
        return EvaluationSchedule(period=s.perturbation_interval)
    return EvaluationSchedule()
