"""A sweep's trials as the report reads them from MLflow: one summary per trial run (score,
status, where it stopped, its settings, throughput, listening scores), the best trials'
histories and latest sample grids and audio, and Optuna's parameter importance."""
import math
import sys
from pathlib import Path

from platform.driver import tracking
from trainables import verdict

# params that differ between trials but are bookkeeping, not settings
NOT_SETTINGS = ("dataset.segments",)


def progress(message: str) -> None:
    """A line on stderr: a report of many trials takes a while and says what it is doing."""
    print(f"report: {message}", file=sys.stderr, flush=True)


def _varied(runs: list) -> list[str]:
    """The params whose values differ between trials: what the sweep searched (or its
    experiments set), in the order the trials' names give them."""
    keys = sorted({key for run in runs for key in run.data.params} - set(NOT_SETTINGS))
    return [key for key in keys if len({run.data.params.get(key) for run in runs}) > 1]


def _mos(metrics: dict) -> dict:
    """The listening test's score of a trial run, when it has ratings."""
    if "mos" not in metrics:
        return {}
    mos = {"mos": metrics["mos"], "mos_count": int(metrics.get("mos/count", 0))}
    if "mos/ci95_low" in metrics:
        mos["mos_ci"] = (metrics["mos/ci95_low"], metrics["mos/ci95_high"])
    return mos


def summaries(client, runs: list) -> list[dict]:
    """One small dict per trial, best first, from what the run search returned (no query per
    trial unless a run lacks `best/fid`): memory and time grow by a few hundred bytes and
    nothing else per trial."""
    varied = _varied(runs)
    trials = []
    for run, score in tracking.ranked_runs(client, runs, with_step=False):  # the verdict's order
        metrics, tags = run.data.metrics, run.data.tags
        trials.append({"run_id": run.info.run_id, "name": run.info.run_name or run.info.run_id[:8],
                       "status": run.info.status, "stopped": tags.get("stopped", ""),
                       "stopped_step": tags.get("stopped.step", ""), "failure": tags.get("failure", ""),
                       "family": run.data.params.get("model.family", "?"),
                       "embedding": run.data.params.get("evaluation.embedding", ""),
                       "best_fid": score.fid if score else math.inf, "best_step": None,
                       "final_fid": metrics["fid"] if verdict.plausible(metrics.get("fid", math.nan)) else math.nan,
                       "final_step": metrics.get("step"),
                       "speed": metrics.get("throughput/img_s", math.nan),
                       "values": {key: run.data.params.get(key, "") for key in varied}, **_mos(metrics)})
    for rank, trial in enumerate(trials, 1):
        trial["rank"] = rank
    return trials


def _latest(client, run_id: str, folder: str, suffix: str) -> str | None:
    """The artifact of `folder` with the highest step in its name (step_000400...)."""
    found = sorted(a.path for a in client.list_artifacts(run_id, folder) if a.path.endswith(suffix))
    return found[-1] if found else None


def add_media(client, trials: list[dict], downloads: Path) -> None:
    """The histories, latest sample grid and first audio clip of `trials` (the best ones)."""
    from trainables.figures import LOSS_KEYS
    from trainables.mlflow_run import metric_history
    for i, trial in enumerate(trials, 1):
        progress(f"trial {i}/{len(trials)}: {trial['name']}")
        run_id = trial["run_id"]
        trial["history"] = metric_history(client, run_id, ("fid",) + LOSS_KEYS)
        # a diverged trial's inf (or a -inf) is no point on an axis: its score is inf already
        fids = [point for point in trial["history"].get("fid", []) if verdict.plausible(point[1])]
        if "fid" in trial["history"]:
            trial["history"]["fid"] = fids
        best = verdict.score(fids)
        if best:
            trial["best_step"] = best.step
        if fids:
            trial["final_step"], trial["final_fid"] = fids[-1]
        for key, folder, suffix in (("samples", "samples", ".png"), ("audio", "audio", ".wav")):
            path = _latest(client, run_id, folder, suffix)
            if path and suffix == ".wav":  # the first clip of the latest evaluation with audio
                step = path.rsplit("_", 2)[-2]
                path = min(a.path for a in client.list_artifacts(run_id, folder) if step in a.path)
            trial[key] = client.download_artifacts(run_id, path, str(downloads / run_id)) if path else None
            if path:
                trial[f"{key}_artifact"] = path


def importance(study: tuple | str) -> tuple[dict[str, float] | None, str]:
    """Optuna's parameter importance (fANOVA) of the searched values for the score, and a
    sentence saying what it is or why there is none. `study`: (the Optuna storage, the study's
    name, where it is in words), opened from the sweep's own record
    (platform.spec.study_storage.recorded), or the sentence saying why there is none."""
    if isinstance(study, str):
        return None, study
    storage, name, where = study
    import optuna
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = optuna.load_study(study_name=name, storage=storage)
        # the score, the best fid a trial was evaluated at: Ray gives Optuna every result but a
        # trial's last as an intermediate value and the last as the trial's value
        values = optuna.importance.get_param_importances(
            study, target=lambda t: min([*t.intermediate_values.values(), t.value]))
    except (KeyError, ValueError, RuntimeError, ImportError) as error:
        return None, f"No parameter importance from study {name!r} in {where}: {str(error).splitlines()[0]}"
    except Exception as error:  # noqa: BLE001 - e.g. the study's SQLite file is not on this machine
        return None, f"No parameter importance: study {name!r} in {where} could not be read ({type(error).__name__})."
    trials = len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)))
    return dict(values), (f"fANOVA importance of each searched value for the score, over the {trials} finished "
                          f"trials of Optuna study {name!r} ({where}).")
