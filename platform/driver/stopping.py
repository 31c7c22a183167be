"""How a sweep's driver ends when the sweep cannot finish: one sentence on stderr, every
parent run it opened ended FAILED with the reason as its `failure` tag, an exit status.

Covered: a storage fault a trial reported (trainables/storage_fault.py), a full or read-only
disk under the driver itself, Ctrl+C (the first one, noted here, is handed to Tune's own
graceful stop, which saves the experiment and returns; the sweep then exits 130, its
cut-short trials' runs end KILLED and the `--resume` command is printed; a second one stops
at once),
SIGTERM (made an exception here, so the same path runs) and any other exception (re-raised
after the parent run is ended: a bug keeps its traceback). Not SIGKILL, which nothing can
catch: `--resume` reopens that parent run.
"""
import logging
import os
import shlex
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


_SIGINT_SEEN = threading.Event()


def _interrupt(signum, frame):
    if _SIGINT_SEEN.is_set() or not callable(signal.getsignal(signal.SIGUSR1)):
        _SIGINT_SEEN.set()  # a second Ctrl+C, or one before Tune listens: stop at once
        raise KeyboardInterrupt
    _SIGINT_SEEN.set()
    signal.raise_signal(signal.SIGUSR1)  # Tune's graceful stop, the one its own SIGINT handler starts


class _NoRestoreHint(logging.Filter):
    """Tune's "Resume experiment with: Tuner.restore(...)": this platform prints its own command."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Tuner.restore" not in record.getMessage()


def catch_sigint() -> None:
    """Ctrl+C seen here instead of by Tune (TUNE_DISABLE_SIGINT_HANDLER), so the sweep knows it
    was interrupted: Tune marks the trials it stops on Ctrl+C TERMINATED, like finished ones."""
    os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"
    logging.getLogger("ray.tune.tune").addFilter(_NoRestoreHint())
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, _interrupt)


def resume_command(experiment_path: str) -> str:
    """This sweep's command as typed, with `--resume` and the Tune experiment it continues."""
    words, args = sys.argv[1:], []
    while words:
        word, words = words[0], words[1:]
        if word == "--resume" and words and not words[0].startswith("-"):
            words = words[1:]  # the path an earlier --resume was given (argparse reads it so too)
        elif word != "--resume" and not word.startswith("--resume="):
            args.append(word)
    return f".venv/bin/python -m platform.sweep {shlex.join(args)} --resume {shlex.quote(experiment_path)}"


def kill_interrupted(results, target) -> list[str]:
    """After Ctrl+C: the MLflow runs of the trials it cut short (every trial run of the sweep but
    those whose trial ended, done or failed) end KILLED, not FINISHED; their ids."""
    if not _SIGINT_SEEN.is_set():
        return []
    from platform.driver import tracking
    ended = {r.metrics.get("trial_id") for r in results if r.metrics and (r.metrics.get("done") or r.error)}
    client = tracking.client_for(target.tracking_uri)
    killed = []
    for run in tracking.trial_runs(client, target.experiment_id, target.parent_run_id):
        if run.data.tags.get("tune.trial_id") not in ended and run.info.status != "FAILED":
            client.set_terminated(run.info.run_id, "KILLED")
            killed.append(run.info.run_id)
    return killed


def _say(reason: str, ended: list[str], then: str) -> None:
    runs = f"; parent run {', '.join(ended)} ended FAILED" if ended else ""
    print(f"error: the sweep stopped: {reason}{runs}; {then}.", file=sys.stderr)


def stopped_short(target, reason: str, then: str) -> int:
    """A sweep whose trials did not all finish (a storage fault, Ctrl+C): its parent run ends
    FAILED, even when some trial scored."""
    from platform.driver import tracking
    tracking.fail_sweep(target, reason)
    _say(reason, [target.parent_run_id], then)
    return 128 + signal.SIGINT if _SIGINT_SEEN.is_set() else 1


def unfinished(results) -> tuple[str, str] | None:
    """Why Tune returned before every trial ended, and what to do; None if they all did."""
    fault = storage_fault.reported(results)
    if fault:
        return fault, AGAIN
    if _SIGINT_SEEN.is_set():
        return "interrupted (Ctrl+C)", f"continue it with {resume_command(results.experiment_path)}"
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
