"""Run a sweep: python -m platform.sweep SPACE.yaml [--set KEY=VALUE] [--dry-run] [--resume [PATH]] [-v]

Validates the search-space file (exit 2 on a mistake, before Ray starts), builds the
dataset it names if it is not built yet, runs the trials with Ray Tune (Optuna search,
ASHA early stopping on FID), logs everything to MLflow, and prints the best trial and
the commands that open the MLflow UI on the runs and generate from the winner.
"""
import argparse
import dataclasses
import logging
import os
import sys
import tempfile
import time

import yaml

from platform.driver import command, console
from platform.spec import spaces, study_storage, tune_space

log = logging.getLogger("platform.sweep")


def _print_dry_run(spec: spaces.SweepSpec, overrides: list[str]) -> None:
    from data.spec import redacted
    from platform.spec.overrides import shown
    if overrides:
        print(f"# with --set {' '.join(shown(overrides))}")
    resolved = redacted(dataclasses.asdict(dataclasses.replace(spec, search={})))
    resolved["search"] = {path: str(domain) for path, domain in spec.search.items()}
    print("# resolved spec")
    print(yaml.safe_dump(resolved, sort_keys=False), end="")
    print(f"# dataset fingerprint: {spec.dataset.fingerprint}")
    # relative paths are the working folder's (README, "Search-space files")
    print(f"# storage: {spec.storage.resolved_root()}, MLflow: {spec.mlflow.resolved_uri()} "
          f"(relative paths: in {os.getcwd()})")
    print("# Tune param space (searched keys as Tune domains)")
    space = tune_space.param_space(spec)
    for path, domain in spec.search.items():
        section, key = path.split(".")
        print(f"{path}: {domain}  ->  {type(space[section][key]).__name__}")
    for section, key in spec.experiment_keys():
        chosen = ", ".join(f"{name}: {getattr(getattr(e, section), key)!r}" for name, e in spec.experiments.items())
        print(f"{section}.{key} by experiment: {chosen}")
    print(f"# searcher: {spec.tune.searcher}, scheduler: {spec.tune.scheduler.name}, "
          f"samples: {spec.tune.num_samples}{' per experiment' if spec.experiments else ''}, "
          f"trials in all: {spec.trial_count():,}, "
          f"concurrency: {spec.tune.max_concurrent}, time budget: {spec.tune.time_budget_s or 'none'}")
    from platform.driver import cost
    for line in cost.dry_run_lines(spec, measure=os.environ.get("PLATFORM_CALIBRATION", "1") != "0"):
        print(f"# {line}")


def _check_resources_fit(spec: spaces.SweepSpec, address: str | None) -> None:
    """On this machine nothing scales up: a trial asking for a GPU it lacks would wait forever."""
    import ray

    from platform.driver.cluster import ClusterError, is_local
    if not is_local(address):
        return  # a cluster's autoscaler may add GPU workers on demand
    have = ray.cluster_resources()
    for name, amount in spec.tune.resources_per_trial.to_tune().items():
        key = name.upper() if name in ("cpu", "gpu") else name
        if amount > have.get(key, 0):
            raise ClusterError(f"tune.resources_per_trial.{name} is {amount} but this machine has "
                               f"{have.get(key, 0):g}; lower it (gpu: 0 trains on the CPU) or run on a "
                               "cluster with --address.")


def _trainable(spec: spaces.SweepSpec, context):
    from ray import tune

    from trainables.train import train_gan
    return tune.with_resources(tune.with_parameters(train_gan, context=context),
                               spec.tune.resources_per_trial.to_tune())


def _new_tuner(spec: spaces.SweepSpec, context, name: str, lengths: tune_space.SweepLengths):
    from ray import tune
    from ray.tune.stopper import TimeoutStopper

    from platform.driver import trial_ends
    from trainables.storage_fault import StopOnStorageFault
    output = console.tune_output(list(spec.search), context.tracking.tracking_uri)
    # how each trial ended, from Tune's decisions: MLflow tags and the console's line
    ends = trial_ends.TrialEnds(context.tracking, spec.tune.scheduler.name, lengths.of,
                                time_budget=bool(spec.tune.time_budget_s), say=console.trial_line if output else None)
    # a full disk stops the sweep, no retries; the time budget as Tune's own stopper
    stoppers = [StopOnStorageFault()] + ([TimeoutStopper(spec.tune.time_budget_s)] if spec.tune.time_budget_s else [])
    names = tune_space.TrialNames.for_spec(spec)  # the trials' names in the table, folders and MLflow
    return tune.Tuner(
        _trainable(spec, context),
        param_space=tune_space.param_space(spec),
        tune_config=tune.TuneConfig(metric="fid", mode="min", search_alg=tune_space.searcher(spec, name),
                                    scheduler=tune_space.scheduler(spec, lengths.longest),
                                    num_samples=spec.tune.num_samples,
                                    # PBT's in-place reset needs reset_config, which function trainables lack
                                    reuse_actors=spec.tune.scheduler.name != "pbt",
                                    trial_name_creator=names.name, trial_dirname_creator=names.dirname),
        run_config=tune.RunConfig(name=name, storage_path=spec.storage.resolved_tune(), stop=stoppers,
                                  failure_config=tune.FailureConfig(max_failures=spec.tune.max_failures),
                                  checkpoint_config=tune.CheckpointConfig(
                                      num_to_keep=spec.tune.checkpoints_to_keep),
                                  **{**output, "callbacks": [ends, *output.get("callbacks", [])]}),
    )


def _dataset_for_trials(spec: spaces.SweepSpec, storage_root: str):
    """The dataset ready (platform.prepare.dataset_ready), with its FID reference statistics
    unless the search varies the evaluation: (the built dataset, what trials read, MLflow tags)."""
    from platform import prepare
    # once, here: missing Inception weights fail now, and no trial computes real statistics
    reference = None if any(path.startswith("evaluation.") for path in spec.search) else spec.evaluation
    # with storage.datasets the root is the driver's own disk (not checked as shared), so
    # the build runs on the driver's node and trials copy the published dataset
    dataset, source = prepare.dataset_ready(spec, storage_root, here_only=bool(spec.storage.datasets),
                                            reference=reference)
    from trainables.evaluation import real_vs_real
    # what every fid is read against: real data against itself, same embedding and count
    baseline = real_vs_real(spec.evaluation, str(dataset.path)) if reference else {}
    tags = {"dataset.fingerprint": dataset.fingerprint, "dataset.path": str(dataset.path)}
    if baseline:
        tags.update({"fid.real_vs_real": f"{baseline['fid']:.6g}", "fid.real_vs_real.count": str(baseline["count"])})
    if spec.storage.datasets:
        from data.remote import display
        tags["dataset.uri"] = display(source)
    return dataset, source, tags


def _print_summary(spec: spaces.SweepSpec, results, errors: dict, diverged: int, best: dict | None, target,
                   tracking_uri: str, baseline: float | None) -> None:
    """`baseline`: the real-vs-real fid _dataset_for_trials computed (None when the search varies
    the evaluation)."""
    from platform.driver import tracking
    generate = None
    if best and best.get("run_id"):
        store = "" if tracking_uri == tracking.default_uri() else f" --tracking-uri {tracking_uri}"
        python = os.path.relpath(sys.executable) if sys.executable.startswith(os.getcwd() + os.sep) else sys.executable
        generate = f"{python} -m platform.generate {best['run_id']}{store} --out generated"
    for line in console.summary(trials=len(results), failed=len(errors), diverged=diverged, experiment_path=results.experiment_path,
                                best=best, baseline=baseline, searched=list(spec.search),
                                experiment=spec.experiment, parent_run_id=target.parent_run_id,
                                ui=tracking.ui_command(tracking_uri),
                                url=tracking.ui_url(target.experiment_id, tracking_uri, target.parent_run_id), generate=generate):
        print(line)


def run(spec: spaces.SweepSpec, spec_file: str, address: str | None, resume: str | None = None,
        overrides: dict | None = None) -> int:
    """A new sweep, or (`resume`: a Tune experiment path or "latest") a stopped one continued;
    `overrides`: the `--set` parameters, recorded on the parent run."""
    # Checkpointing every iteration makes Tune warn about snapshot frequency; harmless here.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    # Trials report fid only where the scheduler reads it (tune_space.evaluation_schedule);
    # Tune's check that every result carries the metric would fail the others.
    os.environ["TUNE_DISABLE_STRICT_METRIC_CHECKING"] = "1"
    from platform.driver import cluster, precision, resume as resuming, stopping, tracking
    from trainables.train import TrialContext

    storage_root = spec.storage.resolved_root()
    tracking_uri = tracking.resolve_uri(spec.mlflow.resolved_uri())
    from data.dataset import cache_dir  # before Ray: a read-only or full disk is one sentence
    cluster.check_writable({"storage.root": storage_root, "storage.tune": spec.storage.resolved_tune(),
                            **({"the dataset cache ($PLATFORM_CACHE)": cache_dir()} if spec.storage.datasets else {}),
                            **cluster.local_store_folders(tracking_uri)})
    from platform.driver import store
    optuna_db = spec.storage.optuna if spec.tune.searcher == "optuna" else None
    if cluster.is_local(address):
        # before Ray: a new store made once under a lock (another sweep may start now), a broken one one sentence
        store.ready(tracking_uri, optuna_db)
    previous = resuming.find(spec, resume) if resume else None  # before Ray: a wrong path fails fast
    datasets_uri = spec.storage.datasets
    if datasets_uri:  # before Ray: a misspelt bucket or missing credentials fail in seconds
        cluster.check_store_writable(datasets_uri)
    nodes = cluster.connect(address, storage_root)
    stopping.catch_sigterm()  # after ray.init, whose own SIGTERM handler aborts the process
    stopping.catch_sigint()  # so an interrupted sweep is reported as one, not as finished
    _check_resources_fit(spec, address)
    # with storage.datasets, trials copy the dataset from there: the root is the driver's own
    shared = {} if datasets_uri else {"storage.root": storage_root}
    cluster.preflight(nodes, tracking_uri, {**shared, "storage.tune": spec.storage.resolved_tune()},
                      stores={"storage.datasets": datasets_uri} if datasets_uri else None)
    if not cluster.is_local(address):  # on a cluster, after the preflight refused a store other nodes cannot reach
        store.ready(tracking_uri, optuna_db)
    # auto decided once, from every node, for the reference and every trial (--resume compares the file's)
    spec, as_written = precision.decide(spec, nodes, address), spec

    dataset, dataset_source, dataset_tags = _dataset_for_trials(spec, storage_root)
    # every trial's length in iterations, now that the dataset's size is known: ASHA's max_t
    # and readings, the evaluation schedule, and the verdict on trials that ended early
    lengths = tune_space.SweepLengths.of_spec(spec, dataset.segments)
    scheduler = spec.tune.scheduler
    if scheduler.name == "asha" and scheduler.grace_period > lengths.longest:
        raise spaces.SpecError(f"tune.scheduler.grace_period: {scheduler.grace_period} is more than the "
                               f"{lengths.longest} iterations the longest trial runs on this dataset of "
                               f"{dataset.segments} segments, so ASHA could never stop a trial; lower it.")

    threads = max(1, int(spec.tune.resources_per_trial.cpu))
    schedule = tune_space.evaluation_schedule(spec, lengths.longest)
    if previous:
        target = tracking.reopen_sweep(previous.target)
        context = TrialContext(dataset_source, dataset.fingerprint, target, threads=threads, schedule=schedule,
                               resumed=True)
        print(f"Resuming {previous.path}: finished trials are kept, unfinished ones restart from "
              "their last checkpoint.")
        from ray import tune
        # param_space again: Tune keeps sample_from functions (experiments) as placeholders
        tuner = tune.Tuner.restore(previous.path, _trainable(spec, context), resume_unfinished=True,
                                   resume_errored=False, restart_errored=False,
                                   param_space=tune_space.param_space(spec))
    else:
        name = resuming.claim(spec, time.strftime("%Y%m%d-%H%M%S"))  # unique: another may start this second
        stamp = name[len(spec.name) + 1:]
        # where the Optuna study lives, for platform.report's parameter importance and optuna-dashboard
        study = {"optuna.storage": study_storage.shown(spec), "optuna.study": name} \
            if spec.tune.searcher == "optuna" else {}
        target = tracking.start_sweep(
            tracking_uri, spec.experiment, run_name=f"sweep-{stamp}",
            tags={**dataset_tags, **study},
            params={"tune.searcher": spec.tune.searcher, "tune.scheduler": spec.tune.scheduler.name,
                    "tune.num_samples": spec.tune.num_samples, "dataset.segments": dataset.segments,
                    **(overrides or {}), "evaluation.precision": spec.evaluation.precision},
            spec_file=spec_file, dataset=(str(dataset_source), dataset.fingerprint, dataset.segments))
        context = TrialContext(dataset_source, dataset.fingerprint, target, threads=threads, schedule=schedule)
        resuming.record(as_written, name, target)  # what --resume needs to find this sweep again
        tuner = _new_tuner(spec, context, name, lengths)
    results = tuner.fit()

    errors = {r.metrics.get("trial_id", ""): str(r.error) for r in results if r.error}
    # a trial that diverged ends its run FAILED itself, not as a Tune error (not retried)
    diverged = sum(1 for r in results if not r.error and r.metrics.get("diverged"))
    stopping.kill_interrupted(results, target)  # after Ctrl+C: the trials it cut short end KILLED
    best = tracking.finish_sweep(target, errors)  # the winner's row of results.csv
    short = stopping.unfinished(results)
    if short:
        return stopping.stopped_short(target, *short)

    baseline = float(dataset_tags["fid.real_vs_real"]) if "fid.real_vs_real" in dataset_tags else None
    _print_summary(spec, results, errors, diverged, best, target, tracking_uri, baseline)
    return 0 if best else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m platform.sweep", description=__doc__.split("\n\n")[0])
    parser.add_argument("space", help="search-space YAML file, e.g. search_spaces/quickstart.yaml")
    parser.add_argument("--dry-run", action="store_true",
                        help="print the resolved spec and the Tune search space, start nothing")
    parser.add_argument("--resume", nargs="?", const="latest", metavar="TUNE_PATH",
                        help="continue a stopped sweep of this file: its latest one, or the Tune experiment "
                             "directory given; finished trials are kept, unfinished ones restart from their "
                             "last checkpoint and go on logging to their MLflow runs")
    parser.add_argument("--address", default=os.environ.get("RAY_ADDRESS"),
                        help="Ray cluster to run on: 'auto' (the cluster this node belongs to), HOST:PORT "
                             "or ray://HOST:10001; default $RAY_ADDRESS, else a new local Ray")
    command.add_set_option(parser)
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="show Ray's and Tune's own output in full (every trial's config and results)")
    args = parser.parse_args(argv)
    try:
        given = spaces.read(args.space, args.overrides)
    except spaces.SpecError as error:
        return command.error(error)
    spec = given.spec
    for line in given.replaced:
        print(f"# {line}" if args.dry_run else line)
    if args.dry_run:
        _print_dry_run(spec, args.overrides)
        return 0
    console.setup(args.verbose)  # before Ray is imported
    command.setup_logging(logging.INFO if args.verbose else logging.WARNING)
    from data.pipeline import BuildError
    from data.remote import StoreError
    from platform.driver.cluster import ClusterError
    from platform.driver.resume import ResumeError
    with tempfile.TemporaryDirectory(prefix="sweep-spec-") as tmp:
        # the file as run: the spec artifact shows the --set values in place
        spec_file = given.file_as_run(tmp)
        try:
            return command.guarded(lambda: run(spec, spec_file, args.address, args.resume, given.params()),
                                   usage=(ClusterError, ResumeError, StoreError, spaces.SpecError),
                                   failed=(BuildError,))  # nothing to train on; what was built so far is kept
        except BaseException as error:  # the parent run ends whatever the driver dies of (SIGKILL: --resume)
            from platform.driver import stopping
            code = stopping.died(error)
            if code is None:
                raise
            return code


if __name__ == "__main__":
    sys.exit(main())
