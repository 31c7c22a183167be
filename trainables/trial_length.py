"""A trial's length: the generator steps and Tune iterations it runs.

`training.epochs`, when set, decides it from the segments the trial trains on (after
`max_segments` and `data_fraction`), its batch size and critic steps; else
`training.iterations` does. The trainer runs exactly this length, and the sweep's driver
resolves the same function once the dataset is built, before Tune starts, for ASHA's
`max_t` and rungs, the evaluation schedule and the verdict on trials that ended early.
"""
import math

from data.dataset import selected_rows
from trainables.config import TrainingConfig

DEFAULT_ITERATIONS = 10  # a trial's length when a file sets neither epochs nor iterations


def segments_used(training: TrainingConfig, total: int) -> int:
    """How many of a dataset's `total` segments the trial trains on (the rows
    trainables/dataset_share.py selects)."""
    return len(selected_rows(total, training.max_segments, 0, training.data_fraction, training.batch_size))


def steps(training: TrainingConfig, segments: int) -> int:
    """Generator steps on `segments` training segments: `epochs` passes of the critic over
    them (ragged batches dropped), at least one step; else iterations x steps_per_iteration."""
    if training.epochs is None:
        return (training.iterations or DEFAULT_ITERATIONS) * training.steps_per_iteration
    batches = math.ceil(training.epochs * (segments // training.batch_size))
    return max(1, math.ceil(batches / training.critic_steps))


def iterations(training: TrainingConfig, segments: int) -> int:
    """Tune iterations on `segments` training segments: the last one may be shorter."""
    return math.ceil(steps(training, segments) / training.steps_per_iteration)
