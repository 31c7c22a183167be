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


def _at_step(client, run_id: str, folder: str, suffix: str, step: int | None) -> tuple[str, int] | None:
    """(path, step) of `folder`'s artifact (step_000400...) logged at `step`, the trial's scored
    step, else the last one before it (runs logged before samples came with each new best), else
    the latest; the first audio clip of that step."""
    found = {}
    for a in client.list_artifacts(run_id, folder):
        name = Path(a.path).name
        if name.endswith(suffix) and name.startswith("step_"):
            found.setdefault(int(name[len("step_"):].split("_")[0].split(".")[0]), []).append(a.path)
    if not found:
        return None
    steps = sorted(found)
    chosen = max((s for s in steps if step is not None and s <= step), default=steps[-1])
    return min(found[chosen]), chosen


def add_media(client, trials: list[dict], downloads: Path) -> None:
    """The histories, and the sample grid and first audio clip of the step each of `trials`
    (the best ones) was scored at, with that step (`samples_step`, `audio_step`)."""
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
            found = _at_step(client, run_id, folder, suffix, trial["best_step"])
            path = found[0] if found else None
            trial[key] = client.download_artifacts(run_id, path, str(downloads / run_id)) if path else None
            if found:
                trial[f"{key}_artifact"], trial[f"{key}_step"] = found


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
        # fANOVA, named: Optuna's default is PED-ANOVA, another measure, which warns on every call
        values = optuna.importance.get_param_importances(
            study, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=0),
            target=lambda t: min([*t.intermediate_values.values(), t.value]))
    except (KeyError, ValueError, RuntimeError, ImportError) as error:
        return None, f"No parameter importance from study {name!r} in {where}: {str(error).splitlines()[0]}"
    except Exception as error:  # noqa: BLE001 - e.g. the study's SQLite file is not on this machine
        return None, f"No parameter importance: study {name!r} in {where} could not be read ({type(error).__name__})."
    trials = len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)))
    return dict(values), (f"fANOVA importance (Optuna's FanovaImportanceEvaluator: the share of the score's variance "
                          f"each searched value explains, by a random forest) over the {trials} finished "
                          f"trials of Optuna study {name!r} ({where}).")
