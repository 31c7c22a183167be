"""A validated SweepSpec (platform/spec/spaces.py) in Ray Tune's terms: the param space (the
searched keys as Tune domains, a sweep's experiments as a grid), PBT's mutations, the
searcher, the scheduler, and the iterations at which that scheduler reads `fid` (where
trials evaluate). Ray is imported here only, when a sweep starts.
"""
import dataclasses
import logging
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from platform.spec.spaces import Domain, SweepSpec, pbt_searched
from trainables.config import SECTIONS as TRIAL_SECTIONS
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


def _short_value(value: Any) -> str:
    """3.0e-4, 0.47, 16: two significant digits, exponents without padding."""
    if isinstance(value, float) and math.isfinite(value) and value != 0 and not 0.01 <= abs(value) < 1000:
        mantissa, exponent = f"{value:.1e}".split("e")
        return f"{mantissa}e{int(exponent)}"
    if isinstance(value, float):
        return f"{value:.2g}"
    return str(value)


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
            values.append(f"{key}={_short_value(value)}")
    return " ".join([f"{head} #{number}", *values])


def trial_number(trial_id: str) -> int | None:
    """The random searcher's trial ids end in the trial's index within the sweep
    (`0a9e1_00003` -> 3); a search algorithm's (Optuna's) are bare hex: None."""
    head, _, tail = trial_id.rpartition("_")
    return int(tail) if head and tail.isdigit() else None


def trial_dirname(name: str) -> str:
    """A trial's name as a folder name: letters, digits and `._=-` only, so no value can
    name a path of its own."""
    return re.sub(r"[^A-Za-z0-9._=-]+", "_", name.replace(" #", "-"))[:120].strip("._") or "trial"


FOLDER_NUMBER = re.compile(r"-(\d+)(?:_|$)")
# sweep key -> {trial id: number}, in the driver: Tune hands the name creator out as copies
# (it deep-copies the experiment spec), so the numbers given so far cannot live in the copy
_NUMBERS: dict[str, dict[str, int]] = {}


@dataclass(frozen=True)
class TrialNames:
    """Tune's trial_name_creator and trial_dirname_creator (a class, so Tune can pickle it).

    A trial's number is its index in the sweep: the random searcher's ids carry it; under a
    search algorithm (Optuna) trials are numbered here in the order Tune creates them, after
    the numbers the trial folders of `folder` (the sweep's Tune folder) already hold, so the
    trials a resumed sweep adds do not repeat a number."""
    searched: tuple[str, ...]
    folder: str | None = None
    key: str = dataclasses.field(default_factory=lambda: __import__("uuid").uuid4().hex)

    def _number(self, trial_id: str) -> int:
        numbers = _NUMBERS.setdefault(self.key, {})
        if trial_id not in numbers:
            known = trial_number(trial_id)
            if known is None:
                if not numbers and self.folder and Path(self.folder).is_dir():  # a resumed sweep's
                    taken = [int(m.group(1)) for p in Path(self.folder).iterdir()
                             if p.is_dir() and (m := FOLDER_NUMBER.search(p.name))]
                    numbers[""] = max(taken, default=-1)  # not a trial id: where the count goes on from
                known = max(numbers.values(), default=-1) + 1
            numbers[trial_id] = known
        return numbers[trial_id]

    def name(self, trial) -> str:
        return trial_name(trial.config, list(self.searched), self._number(trial.trial_id))

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


def _readable_asha():
    from ray.tune.schedulers import ASHAScheduler

    class ReadableASHA(ASHAScheduler):
        """ASHA whose line in Tune's progress output reads in fid, not in the negated values
        it keeps for a metric to minimise: `ASHA: 2 trial(s) stopped early; past iteration 2
        needs fid <= 612.3`."""

        def debug_string(self) -> str:
            sign = -1.0 if self._mode == "min" else 1.0
            relation = "<=" if sign < 0 else ">="
            rungs = []
            for bracket in self._brackets:
                for milestone, recorded in bracket._rungs:
                    cutoff = bracket.cutoff(recorded)
                    if cutoff is not None:
                        rungs.append(f"past iteration {milestone:g} needs {self._metric} {relation} {sign * cutoff:.4g}")
            return (f"ASHA: {self._num_stopped} trial(s) stopped early"
                    + (f"; {', '.join(reversed(rungs))}" if rungs else ""))

    return ReadableASHA


class _NotMissingMetric(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Cannot find metric")


def scheduler(spec: SweepSpec):
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
    return _readable_asha()(max_t=spec.max_iterations(), grace_period=s.grace_period,
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
