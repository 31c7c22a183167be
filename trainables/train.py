"""The function trainable: one Tune trial of any of the four GANs on a mel Parquet dataset.

The loop itself is `trainables.trainer.GANTrainer`; this file adds what a trial needs
around it: the dataset in device memory, FID at the iterations where the sweep's scheduler
reads it, every `evaluation.every` and at the end (`EvaluationSchedule`: losses,
throughput and health are reported every iteration), the trial's MLflow run, and checkpoints every
`checkpoint_every` iterations that hold the whole trainer state and the MLflow run id, so
a restored trial continues step for step in the same MLflow run.

A trial whose losses turn NaN or infinite (`TrainingDiverged`) ends at once, not retried:
its last result has `diverged: 1` and an infinite fid, its MLflow run ends FAILED with the
reason as its `failure` tag (the traceback in `failure.txt`), and the sweep goes on.
Every iteration is also assessed for a degenerate state (trainables/health.py).

Where a trial's time goes is in its run, every iteration (trainables/trial_clock.py's names,
docs/tracking.md): seconds training, evaluating (`eval/seconds`), logging artifacts and
writing Tune's checkpoint; once, the start-up from the moment its worker began to its first
step; and the tag `worker.trial_index`, how many trials the worker process ran before it
(Tune reuses actors). `benchmarks/sweep_efficiency.py` adds them up over a sweep.
"""
import contextlib
import logging
import math
import os
import tempfile
import time
import traceback
from dataclasses import dataclass, field

import ray
import torch
from ray import tune

from data.remote import local_path
from trainables import health, storage_fault, trial_clock
from trainables.artifacts import FAILURE_ARTIFACT, TrialArtifacts
from trainables.checkpoint import CHECKPOINT_FILE, Checkpoint
from trainables.config import TrialConfig, flatten
from trainables.dataset_share import SharedImages, shared_images
from trainables.evaluation import Evaluator
from trainables.evaluation_schedule import EvaluationSchedule
from trainables.mlflow_run import TrackingTarget, TrialRun, find_trial_run, finished_trial_run
from trainables.trainer import GANTrainer, TrainingDiverged

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrialContext:
    """What every trial of a sweep shares, beside its hyperparameters."""
    dataset_path: str  # a path every node sees, or a URI each node copies from (storage.datasets)
    dataset_fingerprint: str
    tracking: TrackingTarget
    threads: int = 1
    # the iterations the sweep's scheduler reads fid at (platform/spec/tune_space.py)
    schedule: EvaluationSchedule = EvaluationSchedule()
    # a sweep continued by --resume: a trial whose run finished before the driver died is
    # not run again. Only then: under PBT a trial is restarted from its own checkpoint
    # after its run finished, and Tune waits for it to go on, so it must train.
    resumed: bool = False


def load_images(dataset_path: str, max_segments: int | None, device: torch.device,
                fraction: float = 1.0, batch_size: int = 1, dtype: str = "float16",
                device_share: float = 0.15) -> SharedImages:
    """The dataset (or its seeded subset) as (segments, 1, n_mels, frames) images for the
    trainer: the node's one shared copy (trainables/dataset_share.py), on the GPU when it
    fits `device_share` of its memory; batches are cast up as they are drawn."""
    return shared_images(dataset_path, max_segments, device, fraction, batch_size, dtype, device_share)


# First in every report, so Tune's progress table shows them (it shows the first four);
# fid only in the reports of evaluated iterations.
PROGRESS_COLUMNS = ("fid", "loss/D", "loss/G", "throughput/img_s")


def _restore(trainer: GANTrainer) -> tuple[Checkpoint | None, dict]:
    """Load Tune's checkpoint into the trainer, if this trial has one: (it, the learning
    rates it had, which this trial's config has replaced)."""
    checkpoint = tune.get_checkpoint()
    if not checkpoint:
        return None, {}
    with checkpoint.as_directory() as path:
        state = Checkpoint.load(os.path.join(path, CHECKPOINT_FILE))
    return state, trainer.load_state_dict(state.trainer)


def _record_exploit(run: TrialRun, trainer: GANTrainer, donor: str, before: dict) -> None:
    """PBT gave this trial another trial's weights and new rates: say so in its run, which
    goes on (params keep the first rates; the `lr/G`, `lr/D` metrics follow every change)."""
    count = int(run.tags().get("pbt.exploits", "0")) + 1
    now = trainer.cfg.training
    run.set_tags({"pbt.exploits": count,
                  f"pbt.exploit.{count}": f"at step {trainer.step}: weights of trial {donor}; "
                                          f"lr_g {before['lr_g']:.3g} -> {now.lr_g:.3g}, "
                                          f"lr_d {before['lr_d']:.3g} -> {now.lr_d:.3g}"})


@dataclass
class TrialState:
    """What a trial carries from one iteration to the next."""
    best_fid: float = math.inf  # Tune's `best/fid`: infinite before the first evaluation
    # the latest evaluation's density and coverage: mode collapse is judged from them until the next
    evaluated: dict = field(default_factory=dict)
    health: str | None = None   # the run's `health` tag, set when it changes
    stopped: bool = False       # by its health (training.stop_on_collapse): it ends as a finished trial
    metrics: dict = field(default_factory=dict)  # the latest iteration's, as logged to its run
    ended_by: BaseException | None = None  # what ended the loop early, if anything
    began: float = field(default_factory=time.time)  # the epoch second the trial began (trainables/trial_clock.py)
    first_step: float | None = None  # the epoch second its first training step began
    startup_logged: bool = False

    def judge(self, trainer: GANTrainer, metrics: dict) -> dict[str, bool]:
        """The health states of this iteration's `metrics` (trainables/health.py)."""
        return health.assess({**self.evaluated, **metrics}, trainer.loss_ranges, trainer.wasserstein)


def _evaluated(trainer: GANTrainer, evaluate: Evaluator, metrics: dict, state: TrialState) -> dict:
    """`metrics` with the generator's evaluation (fid, kid, density, coverage)."""
    scores = evaluate(trainer.G)
    state.evaluated.update({k: scores[k] for k in ("density", "coverage") if k in scores})
    return {**metrics, **scores}


def _trained(trainer: GANTrainer, evaluate: Evaluator, schedule: EvaluationSchedule,
             state: TrialState) -> tuple[dict, dict]:
    """Train one iteration and evaluate it where the schedule says, and where the trial is
    about to stop on its health (a trial's last result always carries fid): (its metrics,
    its health states)."""
    cfg = trainer.cfg
    state.first_step = state.first_step or time.time()
    started = time.perf_counter()
    metrics = trainer.run_iteration()
    metrics = {**metrics, trial_clock.TRAIN_S: time.perf_counter() - started,
               "lr/G": cfg.training.lr_g, "lr/D": cfg.training.lr_d}
    evaluated = schedule.due(trainer.iteration, trainer.finished, cfg.evaluation, trainer.length)
    if evaluated:
        metrics = _evaluated(trainer, evaluate, metrics, state)
    states = state.judge(trainer, metrics)
    if not evaluated and cfg.training.stop_on_collapse and health.verdict(states) != "ok":
        metrics = _evaluated(trainer, evaluate, metrics, state)
        states = state.judge(trainer, metrics)
    return metrics, states


def _iteration(trainer: GANTrainer, evaluate: Evaluator, artifacts: TrialArtifacts, run: TrialRun,
               schedule: EvaluationSchedule, config: dict, state: TrialState) -> None:
    """One Tune iteration: train and evaluate, log the artifacts due, write Tune's checkpoint
    when one is due, log the metrics (the seconds each part took among them) and the health
    tag to the trial's run, report to Tune."""
    metrics, states = _trained(trainer, evaluate, schedule, state)
    metrics.update(health.metrics(states))
    metrics.update(artifacts.after_iteration(trainer, metrics, config))
    if trainer.finished and trainer.cfg.evaluation.final_metrics:  # before the last report (where Tune may stop it)
        started = time.perf_counter()
        metrics.update(evaluate.final(trainer.G))
        metrics[trial_clock.FINAL_EVAL_S] = time.perf_counter() - started
    with _checkpoint(trainer, run, config) as (checkpoint, seconds):
        metrics[trial_clock.CHECKPOINT_S] = seconds
        state.metrics = {**{k: metrics[k] for k in PROGRESS_COLUMNS if k in metrics}, **metrics}
        state.best_fid = metrics.get("best/fid", state.best_fid)
        run.log_metrics(state.metrics, step=trainer.step)
        _log_startup(run, trainer, state)
        _judge_health(trainer, run, states, state)
        _report(trainer, _result(state, run), checkpoint)


def _log_startup(run: TrialRun, trainer: GANTrainer, state: TrialState) -> None:
    """At the first iteration: `time/startup_s`, the trial's beginning to its first step,
    stamped with that step's moment (so the trial's span can be read back from the run)."""
    if state.startup_logged:
        return
    state.startup_logged = True
    run.log_metrics({trial_clock.STARTUP_S: state.first_step - state.began}, step=trainer.step,
                    timestamp=state.first_step)


def _result(state: TrialState, run: TrialRun) -> dict:
    """Tune's result: `best/fid` in every one (Tune's table sorts by it), the iteration's
    metrics, and the tracking store's state (writes kept, seconds away), which reaches the
    driver whatever happens to the store."""
    return {"best/fid": state.best_fid, **state.metrics, **run.tracking_state()}


def _judge_health(trainer: GANTrainer, run: TrialRun, states: dict, state: TrialState) -> None:
    """The run's `health` tag when it changes; a trial that is not ok stops under
    training.stop_on_collapse, its run tagged `stopped` with why and where."""
    if health.verdict(states) != state.health:
        state.health = health.verdict(states)
        run.set_tags({"health": state.health})
    state.stopped = state.health != "ok" and trainer.cfg.training.stop_on_collapse
    if state.stopped:
        run.set_tags({"stopped": f"health {state.health} at step {trainer.step} (training.stop_on_collapse)"})


def _saving(trainer: GANTrainer) -> str:
    return f"saving the checkpoint of step {trainer.step} to storage.tune"


@contextlib.contextmanager
def _checkpoint(trainer: GANTrainer, run: TrialRun, config: dict):
    """Tune's checkpoint of this iteration, every `checkpoint_every` iterations and at the end,
    in a temporary folder that lasts until Tune has taken it: (it or None, seconds writing it)."""
    every = trainer.cfg.training.checkpoint_every
    if trainer.iteration % every and not trainer.finished:
        yield None, 0.0
        return
    started = time.perf_counter()
    with contextlib.ExitStack() as folder:
        with storage_fault.raised_as_unwritable(_saving(trainer)):
            saved = folder.enter_context(tempfile.TemporaryDirectory(prefix="gan-ckpt-"))
            Checkpoint(trainer.state_dict(), config, run.run_id,
                       trial_id=tune.get_context().get_trial_id()).save(os.path.join(saved, CHECKPOINT_FILE))
        yield tune.Checkpoint.from_directory(saved), time.perf_counter() - started


def _report(trainer: GANTrainer, metrics: dict, checkpoint: tune.Checkpoint | None) -> None:
    """Tune's result, with the iteration's checkpoint if it has one (Tune copies it to storage.tune)."""
    if checkpoint is None:
        tune.report(metrics)
        return
    with storage_fault.raised_as_unwritable(_saving(trainer)):
        tune.report(metrics, checkpoint=checkpoint)


def _open_run(context: TrialContext, config: dict, segments: int, tags: dict) -> tuple[TrialRun, bool]:
    """This trial's MLflow run, found by its Tune trial id: a retry or a resumed sweep
    reopens it, and under PBT the checkpoint may be another trial's. True if reopened."""
    trial = tune.get_context()
    run_id = find_trial_run(context.tracking, trial.get_trial_id())
    experiment = config.get("experiment")  # one of a sweep's fixed settings (paper.yaml)
    # the sweep names its trials (platform.spec.tune_space.trial_name: the experiment or family and
    # the searched values); the same name in Tune's table, its folders and the runs table
    run = TrialRun(context.tracking, run_name=trial.get_trial_name(), run_id=run_id,
                   tags={"tune.trial_id": trial.get_trial_id(), **({"experiment": experiment} if experiment else {}),
                         "dataset.fingerprint": context.dataset_fingerprint,
                         # which node trained it: a multi-node sweep can be checked from MLflow
                         "ray.node_id": ray.get_runtime_context().get_node_id(), **tags})
    if run_id is None:
        run.log_params({**flatten(config), "dataset.segments": segments})
        run.log_dataset(context.dataset_path, context.dataset_fingerprint, segments)  # MLflow's Datasets column
    return run, run_id is not None


def _another_trials(restored: Checkpoint | None, own_id: str) -> bool:
    """Is the restored checkpoint another trial's (PBT's exploit)? Not when there is none, nor
    for one saved before checkpoints named their trial (`trial_id` None)."""
    return restored is not None and restored.trial_id not in (None, own_id)


def _finished_before(context: TrialContext, trial_id: str, trainer: GANTrainer) -> bool:
    """A resumed sweep's trial whose run had finished before the driver died: it ends at once,
    reporting nothing (Tune completes it with its last result; a report would be one iteration more)."""
    if finished_trial_run(context.tracking, trial_id, trainer.total_steps) is None:
        return False
    log.info("trial %s finished before the sweep stopped; its run is left as it is", trial_id)
    return True


def train_gan(config: dict, context: TrialContext) -> None:
    """One Tune trial: set up its data, trainer, evaluator and run, then train (_train)."""
    trials_before, began = trial_clock.trial_began()  # first: the trial's start-up counts from here
    cfg = TrialConfig.from_tune(config)
    torch.set_num_threads(context.threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dataset_path = local_path(context.dataset_path)  # a URI: this node's copy, downloaded once
    images = load_images(dataset_path, cfg.training.max_segments, device, cfg.training.data_fraction,
                         cfg.training.batch_size, cfg.training.data_dtype, cfg.training.data_device_share)
    trainer = GANTrainer(cfg, images, device)
    evaluate = Evaluator(cfg.evaluation, dataset_path, images, cfg.model.latent_dim, device)
    # after the evaluator, which may draw random numbers: the checkpoint's generators win
    restored, before = _restore(trainer)
    own_id = tune.get_context().get_trial_id()
    exploited = _another_trials(restored, own_id)
    if context.resumed and not exploited and _finished_before(context, own_id, trainer):
        return
    run, reopened = _open_run(context, config, len(images), evaluate.tags)
    run.set_tags({trial_clock.TRIAL_INDEX: trials_before})  # 0: a fresh worker process; more: a reused actor
    if exploited:
        _record_exploit(run, trainer, restored.trial_id, before)
    # sample grids, audio, last/best checkpoints, loss curves (trainables/artifacts.py)
    artifacts = TrialArtifacts(run, cfg, dataset_path, evaluate.fixed_z, resumed=reopened)
    _train(trainer, evaluate, artifacts, run, context, config, began)


def _train(trainer: GANTrainer, evaluate: Evaluator, artifacts: TrialArtifacts, run: TrialRun,
           context: TrialContext, config: dict, began: float) -> None:
    """The trial's iterations until it finishes or stops on its health, then its run's end,
    whatever ended them (see _ended_here). `began`: the epoch second the trial began."""
    state = TrialState(began=began)
    try:
        while not (trainer.finished or state.stopped):
            _iteration(trainer, evaluate, artifacts, run, context.schedule, config, state)
    except BaseException as error:
        state.ended_by = error
        if not _ended_here(run, trainer, error):
            raise
    finally:
        run.stop_system_metrics()  # first: Tune gives a trial it stops seconds to end, and the rest can take longer
        artifacts.finish(trainer, run_status(state.ended_by))
        run.end(run_status(state.ended_by))
    if isinstance(state.ended_by, storage_fault.StorageUnwritable):  # after the run ended: this report stops
        storage_fault.report(state.ended_by, state.metrics)         # the trial and the sweep


def run_status(error: BaseException | None) -> str:
    """MLflow's status of a trial's run that `error` ended (None: it trained to its end or
    stopped on its health). Tune stops a trial (ASHA, the sweep's end) by raising SystemExit
    in tune.report: that run finished."""
    return "FINISHED" if error is None or isinstance(error, SystemExit) else "FAILED"


def _ended_here(run: TrialRun, trainer: GANTrainer, error: BaseException) -> bool:
    """Record in the run what `error` says; True if the trial ends here without raising it.

    A diverged trial is deterministic: a retry from the last checkpoint diverges again, so it
    is no error for Tune to retry under tune.max_failures (meant for lost workers); its last
    result says so. A full or read-only disk is not raised either: Tune would retry it
    (trainables/storage_fault.py)."""
    if isinstance(error, TrainingDiverged):
        _record_failure(run, error)
        tune.report({"fid": math.inf, "best/fid": math.inf, "diverged": 1.0, "step": trainer.step})
        return True
    if isinstance(error, storage_fault.StorageUnwritable):
        run.set_tags({"failure": str(error)})
        return True
    if isinstance(error, Exception):  # not Tune's SystemExit
        _record_failure(run, error)
    return False


def _record_failure(run: TrialRun, error: Exception) -> None:
    """The `failure` tag: one line, the reason; the traceback as the artifact failure.txt."""
    reason = f"{type(error).__name__}: {error}".strip().splitlines()[0]
    run.set_tags({"failure": reason[:5000]})
    try:
        with tempfile.TemporaryDirectory(prefix="gan-failure-") as tmp:
            path = os.path.join(tmp, FAILURE_ARTIFACT)
            with open(path, "w") as out:
                out.write("".join(traceback.format_exception(error)))
            run.log_artifact(path)
    except Exception:  # the reason is tagged already; the trial's own error matters more
        log.warning("the traceback of run %s could not be logged", run.run_id, exc_info=True)
