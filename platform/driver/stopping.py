"""How a sweep's driver ends when the sweep cannot finish: one sentence on stderr, every
parent run it opened ended FAILED with the reason as its `failure` tag, an exit status.

Covered: a storage fault a trial reported (trainables/storage_fault.py), a full or read-only
disk under the driver itself, Ctrl+C (Tune's first one stops the trials and returns),
SIGTERM (made an exception here, so the same path runs) and any other exception (re-raised
after the parent run is ended: a bug keeps its traceback). Not SIGKILL, which nothing can
catch: `--resume` reopens that parent run.
"""
import signal
import sys
import threading

from trainables import storage_fault

RESUME = "continue it with --resume"
# Tune records the trials a storage fault stopped as terminated, so --resume would not rerun them
AGAIN = "free space there and run the sweep again"


class Terminated(KeyboardInterrupt):
    """SIGTERM, as an exception that unwinds the driver like Ctrl+C."""


_SIGTERM_SEEN = threading.Event()  # what unwinds may be re-raised as a plain KeyboardInterrupt on the way


def _terminate(signum, frame):
    _SIGTERM_SEEN.set()
    raise Terminated()


def catch_sigterm() -> None:
    if threading.current_thread() is threading.main_thread():  # signal.signal's rule
        signal.signal(signal.SIGTERM, _terminate)


def _say(reason: str, ended: list[str], then: str) -> None:
    runs = f"; parent run {', '.join(ended)} ended FAILED" if ended else ""
    print(f"error: the sweep stopped: {reason}{runs}; {then}.", file=sys.stderr)


def stopped_short(target, reason: str, then: str) -> int:
    """A sweep whose trials did not all finish (a storage fault, Ctrl+C): its parent run ends
    FAILED, even when some trial scored."""
    from platform.driver import tracking
    tracking.fail_sweep(target, reason)
    _say(reason, [target.parent_run_id], then)
    return 1


def unfinished(results) -> tuple[str, str] | None:
    """Why Tune returned before every trial ended, and what to do; None if they all did."""
    fault = storage_fault.reported(results)
    if fault:
        return fault, AGAIN
    left = len(results) - results.num_terminated - results.num_errors
    return (f"interrupted with {left} trial(s) unfinished", RESUME) if left > 0 else None


def died(error: BaseException) -> int | None:
    """The exit status for what the driver died of, after ending its parent runs; None: re-raise."""
    from platform.driver import tracking
    full = storage_fault.unwritable(error)
    if full is not None:
        reason, code = storage_fault.describe(full), 1
    elif isinstance(error, Terminated) or (isinstance(error, KeyboardInterrupt) and _SIGTERM_SEEN.is_set()):
        reason, code = "stopped by SIGTERM", 128 + signal.SIGTERM
    elif isinstance(error, KeyboardInterrupt):
        reason, code = "interrupted (Ctrl+C)", 128 + signal.SIGINT
    else:
        first = (str(error).strip().splitlines() or [""])[0]
        reason, code = f"{type(error).__name__}: {first}".rstrip(": "), None
    ended = tracking.fail_open_sweeps(reason)
    if code is not None:
        _say(reason, ended, AGAIN if full is not None or not ended else RESUME)
    return code
