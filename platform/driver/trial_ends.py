"""How each trial of a sweep ended, as Tune decided it, said once: a Tune callback that
asks the verdict (trainables/verdict.py) whether the scheduler or the time budget stopped
the trial before its length, tags its MLflow run (`length`, and `stopped` =
`asha at iteration 2 of 8` with `stopped.step`), and hands the same verdict to the
console's line for the trial.

"Stopped" is Tune's own decision, not a count compared with a plan: Tune marks the result
at which its scheduler or a stopper ends a trial `done` before any callback sees it, and
the trials the time budget ends are those it terminates without completing them. A trial
that stopped itself (training.stop_on_collapse) has tagged its own reason; one that
diverged is a failure, not a stop.
"""
import logging
from collections.abc import Callable

from ray.tune import Callback

from platform.driver.tracking import LENGTH_TAG, STOPPED_TAG, client_for
from trainables import storage_fault, verdict
from trainables.mlflow_run import TrackingTarget

log = logging.getLogger(__name__)
TIME_BUDGET = "time budget"


class TrialEnds(Callback):
    """`scheduler`: the sweep's scheduler's name; `length_of`: a trial's length in
    iterations from its Tune config (platform/spec/tune_space.py SweepLengths.of);
    `say(trial, iteration, length, stop)`: the console's line, None when Tune prints its own."""

    def __init__(self, target: TrackingTarget, scheduler: str, length_of: Callable[[dict], int],
                 time_budget: bool, say: Callable | None = None):
        self.target, self.scheduler, self.length_of = target, scheduler, length_of
        self.time_budget, self.say = time_budget, say
        self.ended_at: dict[str, int] = {}  # trial id -> the iteration Tune decided to end it at
        self.seen: set[str] = set()        # trials that completed or failed

    def on_trial_result(self, iteration, trials, trial, result, **info):
        if result.get("done"):  # set by Tune on the result its scheduler or a stopper ends the trial at
            self.ended_at[trial.trial_id] = result.get("training_iteration", 0)

    def on_trial_complete(self, iteration, trials, trial, **info):
        self.seen.add(trial.trial_id)
        result = trial.last_result or {}
        by = "a storage fault" if storage_fault.RESULT_KEY in result else self.scheduler
        self._ended(trial, by, self.ended_at.get(trial.trial_id))

    def on_trial_error(self, iteration, trials, trial, **info):
        self.seen.add(trial.trial_id)

    def on_experiment_end(self, trials, **info):
        if not self.time_budget:
            return
        for trial in trials:  # the time budget terminates the trials still running, completing none
            if trial.trial_id not in self.seen and trial.status == "TERMINATED" and trial.last_result:
                self._ended(trial, TIME_BUDGET, trial.last_result.get("training_iteration"))

    def _ended(self, trial, by: str, ended_at: int | None) -> None:
        result = trial.last_result or {}
        done = result.get("training_iteration", 0)
        length = self.length_of(trial.config)
        stop = None if result.get("diverged") else verdict.stopped(by, ended_at, length)
        if self.say:
            self.say(trial, done, length, stop)
        self._tag(trial, length, stop, result.get("step"))

    def _tag(self, trial, length: int, stop: verdict.Stop | None, step) -> None:
        try:
            client = client_for(self.target.tracking_uri)
            found = client.search_runs([self.target.experiment_id], max_results=1, filter_string=(
                f"tags.mlflow.parentRunId = '{self.target.parent_run_id}' "
                f"and tags.`tune.trial_id` = '{trial.trial_id}'"))
            if not found:
                return
            run = found[0]
            client.set_tag(run.info.run_id, LENGTH_TAG, str(length))
            if stop and STOPPED_TAG not in run.data.tags:
                client.set_tag(run.info.run_id, STOPPED_TAG, str(stop))
                if step is not None:
                    client.set_tag(run.info.run_id, f"{STOPPED_TAG}.step", str(int(step)))
        except Exception as error:  # noqa: BLE001 - a mark, not worth a sweep: say so and go on
            log.warning("could not tag how trial %s ended (%s)", trial.trial_id,
                        str(error).splitlines()[0] if str(error) else type(error).__name__)
