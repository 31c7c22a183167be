"""A disk that is full or read-only under a trial: retrying cannot help, so the trial fails
once, tells the driver in its last result, and the driver stops the sweep.

Tune retries any exception a trainable raises, up to `tune.max_failures`; a checkpoint that
does not fit fails the same way every time (the issue's 3 MB storage root: every trial
retried to the limit, 25 tracebacks). So the trial does not raise: it reports its last
metrics with `storage_fault` (the reason, one line) and `StopOnStorageFault`, the sweep's
Tune stopper, stops that trial and every other one.
"""
import contextlib
import errno
import os

from ray import tune

RESULT_KEY = "storage_fault"
UNWRITABLE = {errno.ENOSPC: "is full", errno.EDQUOT: "is over its quota", errno.EROFS: "is read-only"}


class StorageUnwritable(RuntimeError):
    """A write failed because its disk is full or read-only; the message is one sentence."""


def unwritable(error: BaseException | None) -> OSError | None:
    """The OSError behind `error` (itself, or what it was raised from) that no retry fixes."""
    for _ in range(10):  # Ray wraps errors a few levels deep
        if error is None:
            return None
        if isinstance(error, OSError) and error.errno in UNWRITABLE:
            return error
        error = error.__cause__ or error.__context__
    return None


def describe(error: OSError, where: str | None = None) -> str:
    """'the disk under WHERE is full (No space left on device)': WHERE, the file that failed,
    else the folder the caller names (pyarrow's errors name no file)."""
    where = error.filename or where
    return f"the disk{f' under {where}' if where else ''} {UNWRITABLE[error.errno]} ({os.strerror(error.errno)})"


@contextlib.contextmanager
def raised_as_unwritable(doing: str, where: str | None = None):
    """Inside: an OSError of a full or read-only disk becomes StorageUnwritable, one sentence."""
    try:
        yield
    except OSError as error:
        if unwritable(error) is None:
            raise
        raise StorageUnwritable(f"{doing} failed: {describe(error, where)}") from None


def report(fault: StorageUnwritable, metrics: dict) -> None:
    """The trial's last result, which stops the sweep (the failed report never reached Tune)."""
    tune.report({**metrics, RESULT_KEY: str(fault)})


class StopOnStorageFault(tune.Stopper):
    """Stops the trial that reported a storage fault and then the whole sweep."""

    def __init__(self):
        self.reason: str | None = None

    def __call__(self, trial_id: str, result: dict) -> bool:
        if result.get(RESULT_KEY):
            self.reason = self.reason or f"trial {trial_id}: {result[RESULT_KEY]}"
            return True
        return False

    def stop_all(self) -> bool:
        return self.reason is not None

    def __getstate__(self) -> dict:
        # saved with the experiment (tuner.pkl): a resumed sweep, after space was freed, runs
        return {"reason": None}


def reported(results) -> str | None:
    """The first storage fault a sweep's trials reported, as 'trial ID: reason'."""
    for result in results:
        if result.metrics and result.metrics.get(RESULT_KEY):
            return f"trial {result.metrics.get('trial_id', '?')}: {result.metrics[RESULT_KEY]}"
    return None
