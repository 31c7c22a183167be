"""When a trial evaluates: the iterations whose results carry `fid`.

Apart from trainables/evaluation.py (which imports torch and every embedding) because
the driver computes the schedule from the sweep's scheduler before any trial starts."""
import math
from dataclasses import dataclass

from trainables.config import EvaluationConfig

# Points of a trial's fid curve when `evaluation.every` is 0 (its default): eight show a
# curve's shape (its fall, its minimum within an eighth of the run, a late collapse) at
# eight evaluations' cost, whatever the trial's length; docs/fid.md gives the cost.
CURVE_POINTS = 8


def default_every(length: int) -> int:
    """`evaluation.every` 0: the iterations between evaluations that give a trial of
    `length` iterations CURVE_POINTS points (every iteration for a trial shorter than that)."""
    return max(1, math.ceil(length / CURVE_POINTS))


@dataclass(frozen=True)
class EvaluationSchedule:
    """The iterations whose results carry `fid`: where the sweep's scheduler reads it, every
    `evaluation.every` and a trial's last. Tune's ASHA and PBT skip results without their
    metric (platform/spec/tune_space.py says which iterations they act on), so evaluating only
    here leaves every decision as it was and spends the rest of the trial training."""
    at: tuple[int, ...] = ()  # ASHA's readings: every iteration it records a rung at
    period: int = 0           # PBT's perturbation interval: every multiple of it

    def due(self, iteration: int, finished: bool, cfg: EvaluationConfig, length: int) -> bool:
        """`length`: the trial's length in iterations (trainables/trial_length.py)."""
        every = cfg.every or default_every(length)
        return (finished or iteration % every == 0 or iteration in self.at
                or bool(self.period) and iteration % self.period == 0)
