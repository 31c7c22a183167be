"""When a trial evaluates: the iterations whose results carry `fid`.

Apart from trainables/evaluation.py (which imports torch and every embedding) because
the driver computes the schedule from the sweep's scheduler before any trial starts."""
import math
from dataclasses import dataclass

from trainables.config import EvaluationConfig


@dataclass(frozen=True)
class EvaluationSchedule:
    """The iterations whose results carry `fid`: where the sweep's scheduler reads it, every
    `evaluation.every` and a trial's last. Tune's ASHA and PBT skip results without their
    metric (platform/spec/tune_space.py says which iterations they act on), so evaluating only
    here leaves every decision as it was and spends the rest of the trial training."""
    at: tuple[int, ...] = ()  # ASHA's rungs: the first iteration at or past each milestone
    period: int = 0           # PBT's perturbation interval: every multiple of it

    def due(self, iteration: int, finished: bool, cfg: EvaluationConfig, iterations: int) -> bool:
        every = cfg.every or max(1, math.ceil(iterations / 4))
        return (finished or iteration % every == 0 or iteration in self.at
                or bool(self.period) and iteration % self.period == 0)
