"""Trials evaluate where the scheduler reads fid, and the scheduler decides as it did when
every iteration was evaluated (trainables/evaluation_schedule.py EvaluationSchedule,
platform/spec/tune_space.py evaluation_schedule)."""
import json

import pytest

from platform.spec import spaces, tune_space
from tests.helpers import CHEAP_EMBEDDING, run_module, seed_datasets, tiny_sweep, write_spec
from trainables.config import EvaluationConfig
from trainables.evaluation_schedule import EvaluationSchedule


def _evaluated(schedule: EvaluationSchedule, iterations: int, every: int = 0) -> list[int]:
    cfg = EvaluationConfig(samples=16, every=every)
    return [i for i in range(1, iterations + 1) if schedule.due(i, i == iterations, cfg, iterations)]


def test_asha_trials_evaluate_at_its_rungs_and_their_last_iteration():
    # quickstart: max_t 8, grace 2, reduction 2 -> rungs 2, 4, 8; every (auto) = 8 / 8 = 1
    assert tune_space.asha_readings(8, 2, 2) == (2, 4, 8)
    assert _evaluated(EvaluationSchedule(at=(2, 4, 8)), 8, every=100) == [2, 4, 8]
    # dcgan2.yaml: max_t 100, grace 3, reduction 3: milestones 3, 9, 27, 81, and 100 where ASHA stops all
    assert tune_space.asha_readings(100, 3, 3) == (3, 9, 27, 81, 100)
    # a fractional milestone (2.5, 6.25) is acted on at the first iteration past it
    assert tune_space.asha_readings(10, 1, 2.5) == (1, 3, 7, 10)
    # milestones 1.3 and 1.69 both reached at 2: ASHA records 1.69 there and 1.3 at the first
    # iteration with no milestone of its own (6 takes 2.197, 8 takes 1.3)
    assert tune_space.asha_readings(12, 1, 1.3) == (1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12)


def test_pbt_trials_evaluate_at_every_perturbation_and_fifo_eight_times():
    assert _evaluated(EvaluationSchedule(period=3), 10, every=100) == [3, 6, 9, 10]
    assert _evaluated(EvaluationSchedule(), 100) == [13, 26, 39, 52, 65, 78, 91, 100]
    assert _evaluated(EvaluationSchedule(), 285) == [36, 72, 108, 144, 180, 216, 252, 285]
    assert _evaluated(EvaluationSchedule(), 3) == [1, 2, 3]  # a short trial: every iteration
    assert _evaluated(EvaluationSchedule(), 8, every=1) == list(range(1, 9))


class _Trial:
    """What ASHAScheduler reads of a trial: its id."""
    def __init__(self, trial_id: str):
        self.trial_id = trial_id


def _asha_stops(factor: float, grace: int, max_t: int, curves: list[list[float]], evaluated) -> dict:
    """Ray's ASHA (its public scheduler calls) fed the trials' fid curves iteration by
    iteration, round robin, fid only where `evaluated(iteration)`: {trial: iteration it stopped at}."""
    from ray.tune.schedulers import ASHAScheduler, TrialScheduler
    asha = ASHAScheduler(metric="fid", mode="min", max_t=max_t, grace_period=grace, reduction_factor=factor)
    trials = [_Trial(str(i)) for i in range(len(curves))]
    for trial in trials:
        asha.on_trial_add(None, trial)
    stopped = {}
    for iteration in range(1, max_t + 1):
        for trial, curve in zip(trials, curves):
            if trial.trial_id in stopped:
                continue
            result = {"training_iteration": iteration}
            if evaluated(iteration):
                result["fid"] = curve[iteration - 1]
            if asha.on_trial_result(None, trial, result) == TrialScheduler.STOP:
                stopped[trial.trial_id] = iteration
    return stopped


def _populations(seeds: int = 50):
    """Seeded populations of 10 noisy fid curves: (grace, max_t, curves)."""
    import numpy as np
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        grace, max_t = (1, 12) if seed % 2 else (int(rng.integers(1, 4)), int(rng.integers(8, 30)))
        yield grace, max_t, (rng.uniform(50, 500, size=(10, 1)) + rng.normal(0, 60, size=(10, max_t))).tolist()


@pytest.mark.parametrize("factor", [1.1, 1.3, 1.5, 2, 2.5, 3, 4])
def test_asha_decides_as_with_every_iteration_evaluated_for_any_reduction_factor(factor):
    """The same trials stop at the same iterations when trials evaluate only at
    asha_readings as when every iteration is evaluated, for reduction factors whose
    milestones share an iteration (1.3 from grace 1: 1.3 and 1.69 at 2) and those whose do
    not, over seeded populations."""
    early = 0
    for grace, max_t, curves in _populations():
        readings = set(tune_space.asha_readings(max_t, grace, factor))
        every = _asha_stops(factor, grace, max_t, curves, lambda i: True)
        assert _asha_stops(factor, grace, max_t, curves, lambda i: i in readings) == every, (grace, max_t)
        early += sum(i < max_t for i in every.values())
    assert early, "no trial stopped early: the populations show nothing"


def test_evaluating_only_at_each_milestones_first_iteration_would_decide_otherwise():
    """Why asha_readings is more than each milestone rounded up: with reduction factor 1.3
    that schedule leaves rungs unrecorded, and some populations end otherwise."""
    import math
    differ = 0
    for grace, max_t, curves in _populations():
        rounded = {math.ceil(m) for m in tune_space.asha_milestones(max_t, grace, 1.3)} | {max_t}
        differ += _asha_stops(1.3, grace, max_t, curves, lambda i: i in rounded) != \
            _asha_stops(1.3, grace, max_t, curves, lambda i: True)
    assert differ


def test_the_readable_asha_line_reads_the_locked_rays_cutoffs():
    """platform/spec/asha_cutoffs.py reads ASHA's private rungs: the cutoff it reports is the
    one that decides (a worse fid at that milestone is stopped, a better one goes on)."""
    from ray.tune.schedulers import TrialScheduler

    from platform.spec.asha_cutoffs import ReadableASHA, rung_cutoffs
    asha = ReadableASHA(metric="fid", mode="min", max_t=8, grace_period=1, reduction_factor=2)
    trials = [_Trial(str(i)) for i in range(4)]
    for trial in trials:
        asha.on_trial_add(None, trial)
    for trial, fid in zip(trials[:3], (100.0, 200.0, 300.0)):
        asha.on_trial_result(None, trial, {"training_iteration": 1, "fid": fid})
    relation, [(milestone, cutoff)] = rung_cutoffs(asha)
    assert relation == "<="
    assert milestone == 1 and 100 < cutoff < 300
    assert asha.debug_string() == f"ASHA: past iteration 1 needs fid <= {cutoff:.4g}"
    assert asha.on_trial_result(None, trials[3], {"training_iteration": 1, "fid": cutoff + 1}) == TrialScheduler.STOP
    better = _Trial("4")
    asha.on_trial_add(None, better)
    assert asha.on_trial_result(None, better, {"training_iteration": 1, "fid": cutoff - 1}) == TrialScheduler.CONTINUE


def test_the_schedule_follows_the_sweeps_scheduler(tmp_path):
    def schedule(scheduler: dict, **tune) -> EvaluationSchedule:
        spec = tiny_sweep("s", training={"batch_size": 4, "iterations": 8, "steps_per_iteration": 1},
                          tune={"searcher": "random", "scheduler": scheduler, **tune})
        return tune_space.evaluation_schedule(spaces.load(write_spec(tmp_path / "s.yaml", **spec)), 8)
    assert schedule({"name": "asha", "grace_period": 2, "reduction_factor": 2}).at == (2, 4, 8)
    assert schedule({"name": "fifo"}) == EvaluationSchedule()


def _iterations_and_fids(tune_dir) -> dict:
    """{trial config's lr_g: [(iteration, fid or None)]} from Tune's result files."""
    trials = {}
    for path in tune_dir.glob("*/*/result.json"):
        reports = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        lr = reports[0]["config"]["training"]["lr_g"]
        trials[lr] = [(r["training_iteration"], r.get("fid")) for r in reports]
    return trials


@pytest.mark.slow
def test_asha_stops_the_same_trials_at_the_same_iterations_as_when_every_iteration_is_evaluated(tmp_path, tiny_datasets):
    """Two real sweeps, one trial at a time so ASHA sees results in one order: evaluating at
    every iteration, and evaluating only where ASHA reads fid. The same trials must stop at
    the same iterations, with the same fid at each rung."""
    sweep = tiny_sweep(
        "schedule",
        training={"batch_size": 4, "iterations": 6, "steps_per_iteration": 2},
        # no sample grids or audio: the test compares the scheduler's decisions, not what the runs hold
        evaluation={"samples": 16, "embedding": CHEAP_EMBEDDING, "grid_images": 0, "audio_clips": 0},
        # best first (a higher rate scores better this early), so the later trials meet a cutoff
        search={"training.lr_g": {"grid": [3e-3, 1e-3, 3e-4, 1e-4, 3e-5]}},
        tune={"searcher": "random", "scheduler": {"name": "asha", "grace_period": 1, "reduction_factor": 2},
              "num_samples": 1, "max_concurrent": 1})
    outcomes = {}
    for name, every in (("all", 1), ("rungs", 100)):
        folder = tmp_path / name
        seed_datasets(tiny_datasets, folder / "runs")
        spec = write_spec(folder / "schedule.yaml", **{**sweep, "evaluation": {**sweep["evaluation"], "every": every}})
        result = run_module("platform.sweep", str(spec), cwd=folder, timeout=900)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        outcomes[name] = _iterations_and_fids(folder / "runs" / "tune")
    every, rungs = outcomes["all"], outcomes["rungs"]
    assert set(every) == set(rungs) and len(every) == 5
    reached = {lr: len(points) for lr, points in every.items()}
    assert reached == {lr: len(points) for lr, points in rungs.items()}
    assert len(set(reached.values())) > 1, f"ASHA stopped no trial early, so the test shows nothing: {reached}"
    for lr, points in rungs.items():
        evaluated = [(i, fid) for i, fid in points if fid is not None]
        # evaluated where ASHA reads fid (rungs 1, 2, 4, 6) and at the trial's last iteration, nowhere else
        assert [i for i, _ in evaluated] == [i for i in (1, 2, 4, 6) if i < reached[lr]] + [reached[lr]]
        # the same fid as when every iteration was evaluated (the same weights: evaluation leaves training alone)
        for i, fid in evaluated:
            assert fid == pytest.approx(dict(every[lr])[i], rel=1e-6)


def test_the_quickstart_evaluates_a_full_trial_three_times():
    from tests.helpers import ROOT
    spec = spaces.load(ROOT / "search_spaces" / "quickstart.yaml")
    length = tune_space.SweepLengths.of_spec(spec, 256).longest
    assert length == spec.training.iterations == 8
    assert _evaluated(tune_space.evaluation_schedule(spec, length), length, spec.evaluation.every) == [2, 4, 8]
