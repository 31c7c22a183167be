"""Trials evaluate where the scheduler reads fid, and the scheduler decides as it did when
every iteration was evaluated (trainables/evaluation_schedule.py EvaluationSchedule,
platform/spec/tune_space.py evaluation_schedule)."""
import json

import pytest

from platform.spec import spaces, tune_space
from tests.helpers import run_module, seed_datasets, tiny_sweep, write_spec
from trainables.config import EvaluationConfig
from trainables.evaluation_schedule import EvaluationSchedule


def _evaluated(schedule: EvaluationSchedule, iterations: int, every: int = 0) -> list[int]:
    cfg = EvaluationConfig(samples=16, every=every)
    return [i for i in range(1, iterations + 1) if schedule.due(i, i == iterations, cfg, iterations)]


def test_asha_trials_evaluate_at_its_rungs_and_their_last_iteration():
    # quickstart: max_t 8, grace 2, reduction 2 -> rungs 2, 4, 8; every (auto) = 8 / 4 = 2
    assert tune_space.asha_rungs(8, 2, 2) == (2, 4, 8)
    assert _evaluated(EvaluationSchedule(at=(2, 4, 8)), 8) == [2, 4, 6, 8]
    assert _evaluated(EvaluationSchedule(at=(2, 4, 8)), 8, every=100) == [2, 4, 8]
    # dcgan2.yaml: max_t 100, grace 3, reduction 3: milestones 3, 9, 27, 81, and 100 where ASHA stops all
    assert tune_space.asha_rungs(100, 3, 3) == (3, 9, 27, 81, 100)
    # a fractional milestone (2.5, 6.25) is acted on at the first iteration past it
    assert tune_space.asha_rungs(10, 1, 2.5) == (1, 3, 7, 10)


def test_pbt_trials_evaluate_at_every_perturbation_and_fifo_a_handful_of_times():
    assert _evaluated(EvaluationSchedule(period=3), 10, every=100) == [3, 6, 9, 10]
    assert _evaluated(EvaluationSchedule(), 100) == [25, 50, 75, 100]
    assert _evaluated(EvaluationSchedule(), 3) == [1, 2, 3]  # a quarter of 3 rounds up to every iteration
    assert _evaluated(EvaluationSchedule(), 8, every=1) == list(range(1, 9))


def test_the_schedule_follows_the_sweeps_scheduler(tmp_path):
    def schedule(scheduler: dict, **tune) -> EvaluationSchedule:
        spec = tiny_sweep("s", training={"batch_size": 4, "iterations": 8, "steps_per_iteration": 1},
                          tune={"searcher": "random", "scheduler": scheduler, **tune})
        return tune_space.evaluation_schedule(spaces.load(write_spec(tmp_path / "s.yaml", **spec)))
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
    assert _evaluated(tune_space.evaluation_schedule(spec), spec.training.iterations, spec.evaluation.every) == [2, 4, 8]
