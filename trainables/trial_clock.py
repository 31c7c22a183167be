"""Where a trial's time goes: the names it is logged under, and when the trial began.

Every iteration a trial's run gets the seconds it spent training (`time/train_s`, inside
`GANTrainer.run_iteration`), evaluating (`eval/seconds`, the Evaluator's; `time/final_eval_s`
for `evaluation.final_metrics` at the end), logging artifacts (`artifacts/seconds`) and writing
Tune's checkpoint (`time/checkpoint_s`); its first iteration also `time/startup_s`, from the
moment the trial began to its first training step, logged with that step's moment as its
timestamp, so the trial's span in a sweep is [timestamp - startup, the run's end].

The first trial a worker process runs began with the process, so importing Python, Ray,
torch and MLflow counts; a later trial in the same process (Tune reuses actors between
trials) began when Tune called it. The run's tag `worker.trial_index` says which: how many
trials the process ran before (0: a fresh process).
"""
import itertools
import time

TRAIN_S = "time/train_s"
EVAL_S = "eval/seconds"
FINAL_EVAL_S = "time/final_eval_s"
ARTIFACTS_S = "artifacts/seconds"
CHECKPOINT_S = "time/checkpoint_s"
STARTUP_S = "time/startup_s"
TRIAL_INDEX = "worker.trial_index"

_trials = itertools.count()  # the trials this process has begun; a reused actor keeps the module


def _process_created() -> float:
    import psutil
    return psutil.Process().create_time()


def trial_began() -> tuple[int, float]:
    """(how many trials this process ran before this one, the epoch second this trial began)."""
    index = next(_trials)
    return index, _process_created() if index == 0 else time.time()
