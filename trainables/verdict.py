"""The one verdict on a sweep's trials: a trial's score, the sweep's winner, and whether a
trial was stopped early, by what and where.

Every place that answers these questions asks here: the trial's best checkpoint and
`best/fid` (trainables/artifacts.py), Tune's table and trial lines and the `stopped` tag
(platform/driver/trial_ends.py), the sweep's summary and `results.csv`
(platform/driver/tracking.py), the report (platform/reporting/trials.py) and
`platform.generate --experiment`. In `trainables/`, the lowest room that asks, so the
trial itself can; it imports nothing.
"""
import math
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Score:
    """A trial's score: the lowest fid it was evaluated at, and the step it reached it at
    (None where only the value is known)."""
    fid: float
    step: int | None = None


def plausible(fid: float) -> bool:
    """An fid that scores: finite and not negative. MLflow's SQLite store keeps an infinite
    fid (a diverged trial's) as the largest float, which is no score either."""
    return 0 <= fid < sys.float_info.max


def score(points: Iterable[tuple[int, float]]) -> Score | None:
    """The score of a trial's fid history, (step, fid) pairs: its lowest plausible fid, the
    earliest step on a tie; None when it has none (a trial that diverged at once)."""
    best = None
    for step, fid in sorted(points):
        if plausible(fid) and (best is None or fid < best.fid):
            best = Score(float(fid), int(step))
    return best


def improves(fid: float, best: Score | None) -> bool:
    """Whether an evaluation's `fid` is a new best (the trial's best checkpoint): lower than
    the score so far; a tie keeps the earlier step."""
    return plausible(fid) and (best is None or fid < best.fid)


def rank(items: Iterable[T], score_of: Callable[[T], Score | None], name_of: Callable[[T], str]) -> list[T]:
    """Best first: by score, then by name (so equal scores order the same everywhere);
    trials without a score last."""
    def key(item):
        s = score_of(item)
        return (s.fid if s else math.inf, name_of(item))
    return sorted(items, key=key)


class Incomparable(ValueError):
    """Scores measured in different embeddings, which no fid compares; one sentence."""


def winner(items: Iterable[T], score_of: Callable[[T], Score | None], name_of: Callable[[T], str],
           embedding_of: Callable[[T], str] = lambda item: "") -> T | None:
    """The sweep's winner: the best-ranked trial with a score (None when none has one).
    Incomparable when the scored trials were measured in more than one embedding."""
    scored = [item for item in items if score_of(item) is not None]
    embeddings = sorted({embedding_of(item) for item in scored})
    if len(embeddings) > 1:
        raise Incomparable(f"the trials were scored in {len(embeddings)} embeddings ({', '.join(embeddings)}), "
                           "whose fids do not compare")
    ranked = rank(scored, score_of, name_of)
    return ranked[0] if ranked else None


@dataclass(frozen=True)
class Stop:
    """A trial the scheduler (or the sweep's time budget) ended before its length."""
    by: str          # asha, pbt, time budget
    iteration: int   # its last iteration
    length: int      # the iterations it would have run (trainables/trial_length.py)

    def __str__(self) -> str:
        return f"{self.by} at iteration {self.iteration} of {self.length}"


def stopped(by: str, ended_at: int | None, length: int) -> Stop | None:
    """Tune's decision on a trial: `ended_at`, the iteration of the result at which Tune
    decided to end it (its scheduler, or a stopper such as the time budget), None when the
    trial ended by itself. A decision at or past the trial's length (ASHA's `max_t`) ended
    nothing early."""
    if ended_at is None or ended_at >= length:
        return None
    return Stop(by, ended_at, length)
