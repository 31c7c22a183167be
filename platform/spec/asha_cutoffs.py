"""ASHA's line in Tune's progress output, in fid: `ASHA: past iteration 2 needs fid <= 612.3`.

Tune's own line shows the negated values ASHA keeps for a metric to minimise, and Ray has
no public accessor for a rung's cutoff: `rung_cutoffs` is the one place that reads
ASHAScheduler's private bookkeeping (its brackets' rungs), tested against the locked Ray
(tests/test_evaluation_schedule.py). Ray is imported with this module, when a sweep
builds its scheduler.
"""
from ray.tune.schedulers import ASHAScheduler


def rung_cutoffs(scheduler: ASHAScheduler) -> tuple[str, list[tuple[float, float]]]:
    """("<=" for a metric to minimise, ">=" to maximise; (milestone, cutoff in the metric's
    own sign) of every rung that has one, lowest milestone first): a trial reaching a
    milestone with a value past its cutoff is stopped."""
    sign = scheduler._metric_op  # ASHA keeps a minimised metric negated: -1.0, else 1.0
    found = []
    for bracket in scheduler._brackets:
        for milestone, recorded in bracket._rungs:
            cutoff = bracket.cutoff(recorded)
            if cutoff is not None:
                found.append((float(milestone), sign * float(cutoff)))
    return ("<=" if sign < 0 else ">="), sorted(found)


class ReadableASHA(ASHAScheduler):
    """Tune's ASHA, deciding exactly as it does, with a progress line in fid."""

    def debug_string(self) -> str:
        relation, cutoffs = rung_cutoffs(self)
        rungs = [f"past iteration {milestone:g} needs {self.metric} {relation} {cutoff:.4g}"
                 for milestone, cutoff in reversed(cutoffs)]
        return "ASHA: " + ("; ".join(rungs) if rungs else "no rung has a cutoff yet")
