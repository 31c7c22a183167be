"""What a sweep prints. By default: Ray Data's progress bar (on a terminal), Tune's
progress table with fid, losses and img/s every minute, one line per finished, stopped or
failed trial, and the result with the commands to look at it. `-v` gives Ray's and Tune's
own output, every trial's config and result boxes included.

The quiet settings are Ray's environment variables, so they must be set before Ray is
imported (`setup`, first thing in a command's main).
"""
import logging
import os
import sys

from platform.spec.numbers import shown

QUIET_RAY = {
    "RAY_DATA_LOG_LEVEL": "WARNING",  # Ray Data's execution log lines (its bar still shows on a terminal)
    "RAY_LOG_TO_DRIVER": "0",         # workers' own lines ("Checkpoint successfully created", ...)
    "RAY_LOGGER_LEVEL": "warning",    # Ray's and Tune's INFO lines on the driver
    "RAY_AIR_NEW_OUTPUT": "0",        # Tune's CLIReporter, whose table is ours to choose
    "MLFLOW_LOGGING_LEVEL": "WARNING",  # "Creating initial MLflow database tables..."
}
# "best fid" is a trial's score (its lowest fid so far, docs/sweeps.md): the table is sorted by
# it and Tune's "Current best trial" line reads it, as the summary and results.csv do
METRICS = {"training_iteration": "iter", "best/fid": "best fid", "fid": "fid", "loss/D": "loss/D",
           "loss/G": "loss/G", "throughput/img_s": "img/s"}
SCORE = "best/fid"
REPORT_EVERY_S = 90  # a 3-minute quickstart shows one table mid-way and the last

_verbose = True


def setup(verbose: bool) -> None:
    global _verbose
    _verbose = verbose
    # Tune's TensorBoard logger warns at every result with an infinite value: a trial's
    # best/fid is infinite until its first evaluation (trainables/train.py), on purpose
    logging.getLogger("tensorboardX.x2num").setLevel(logging.ERROR)
    if not verbose:
        for name, value in QUIET_RAY.items():
            os.environ.setdefault(name, value)
        import optuna  # "A new study created in memory"
        optuna.logging.set_verbosity(optuna.logging.WARNING)


def tune_output(searched: list[str], tracking_uri: str) -> dict:
    """RunConfig arguments: the quiet table and trial lines, or (verbose) Tune's defaults."""
    if _verbose:
        return {}
    from ray import tune

    class ScoreReporter(tune.CLIReporter):
        """Tune's table, sorted and its "Current best trial" line chosen by the score (best fid),
        while TuneConfig's metric stays `fid`, which ASHA compares at each rung: Tune would
        refuse a reporter with a metric of its own beside it, so it keeps its own here."""

        def set_search_properties(self, metric, mode):
            return True

        def _progress_str(self, trials, done, *sys_info, fmt="psql", delim="\n"):
            """Tune's status, its "Current best trial" line naming the trial as the table does
            and its score, not its id and a dump of its whole config (an experiments grid's)."""
            text = super()._progress_str(trials, done, *sys_info, fmt=fmt, delim=delim)
            best, _ = self._current_best_trial(trials)
            if best is None:
                return text
            line = f"Current best trial: {best} with best fid {shown(best.last_result.get(SCORE))}"
            return delim.join(line if part.startswith("Current best trial:") else part for part in text.split(delim))

        def should_report(self, trials, done=False):
            if not done and all(t.status == "PENDING" for t in trials):
                return False  # the sweep's first second: every trial pending, a table of nothing
            return super().should_report(trials, done)

    reporter = ScoreReporter(metric_columns=METRICS, parameter_columns=[p.replace(".", "/") for p in searched],
                                max_report_frequency=REPORT_EVERY_S, print_intermediate_tables=True,
                                metric=SCORE, mode="min", sort_by_metric=True)
    return {"verbose": 1, "progress_reporter": reporter, "callbacks": [_trial_lines(tracking_uri)]}


def _trial_lines(tracking_uri: str):
    from ray.tune import Callback

    from trainables.mlflow_run import TRACKING_DOWN_S, TRACKING_KEPT

    class TrialLines(Callback):
        """One line per trial that fails (a trial that finished or was stopped has its line
        from platform/driver/trial_ends.py, `trial_line`), and one when a trial's tracking
        server goes away or comes back (the trial's own log says so too, but the quiet
        console does not forward trials' logs)."""

        def __init__(self):
            self.down: dict[str, float] = {}  # trial id -> longest outage it reported

        def on_trial_result(self, iteration, trials, trial, result, **info):
            kept, down_s = result.get(TRACKING_KEPT, 0), result.get(TRACKING_DOWN_S, 0.0)
            if kept and trial.trial_id not in self.down:
                print(f"trial {trial.trial_id}: the MLflow tracking server {tracking_uri} is unreachable; "
                      f"training goes on, {kept} write(s) kept until it answers", file=sys.stderr, flush=True)
            if kept:
                self.down[trial.trial_id] = max(down_s, self.down.get(trial.trial_id, 0.0))
            elif trial.trial_id in self.down:
                print(f"trial {trial.trial_id}: the MLflow tracking server {tracking_uri} answers again after "
                      f"{self.down.pop(trial.trial_id):.0f} s or more; the kept writes are logged",
                      file=sys.stderr, flush=True)

        def on_trial_error(self, iteration, trials, trial, **info):
            print(f"trial {trial} FAILED after {(trial.last_result or {}).get('training_iteration', 0)} "
                  f"iteration(s); its error: {trial.error_file}", file=sys.stderr, flush=True)

    return TrialLines()


def trial_line(trial, done: int, length: int, stop) -> None:
    """The line for a trial that ended (platform/driver/trial_ends.py): finished, or
    stopped early and by what (`stop`, the verdict's Stop, None when it ran its length)."""
    fid = (trial.last_result or {}).get("best/fid")
    how = f"stopped early after {done}/{length} iteration(s) ({stop.by})" if stop else \
        f"finished after {done}/{length} iteration(s)"
    print(f"trial {trial} {how}" + (f": best fid {shown(fid)}" if shown(fid) else ""), flush=True)


def summary(*, trials: int, failed: int, diverged: int = 0, experiment_path: str, best: dict | None, baseline: float | None,
            searched: list[str], experiment: str, parent_run_id: str, ui: str, url: str,
            generate: str | None) -> list[str]:
    """The end of a sweep: its counts, the best trial (its row of results.csv,
    platform/driver/tracking.py) beside the real-vs-real baseline, and the two commands to
    look at the runs and to listen to the winner."""
    # a diverged trial is not a Tune error (it is not retried) but it did fail
    of_them = f", {diverged} of them diverged" if diverged else ""
    lines = ["", f"Trials: {trials} ({failed + diverged} failed{of_them}). Tune results: {experiment_path}"]
    if best:
        from trainables.metrics.fid import readable
        floor = f"; real vs real {shown(baseline)}" if baseline is not None else ""
        at = f" at step {best['best_fid_step']}" if best.get("best_fid_step") not in (None, "") else ""
        name = best["run_name"] or best["trial_id"]
        lines.append(f"Best trial {name}: best {readable(best['best_fid'], baseline)}{at}{floor} "
                     f"(MLflow run {best['run_id']})")
        chosen = {path: best.get(path, "") for path in searched}
        if chosen:
            lines.append("  " + ", ".join(f"{path}={shown(value)}" for path, value in chosen.items()))
    lines += [f"MLflow experiment '{experiment}', parent run {parent_run_id}. Open the UI with:", f"  {ui}",
              f"  then {url}", "  (this sweep's trials, best first; Columns > best/fid and stopped show the score)"]
    if generate:
        lines += ["Listen to the best trial (new mels as PNG and WAV):", f"  {generate}"]
    return lines
