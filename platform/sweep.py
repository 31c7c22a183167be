"""Run a sweep: python -m platform.sweep SPACE.yaml [--dry-run] [--resume [PATH]] [--address ADDR]

Validates the search-space file (exit 2 on a mistake, before Ray starts), builds the
dataset it names if it is not built yet, runs the trials with Ray Tune (Optuna search,
ASHA early stopping on FID), logs everything to MLflow, and prints the best trial and
the command that opens the MLflow UI on the runs.
"""
import argparse
import dataclasses
import json
import logging
import os
import sys
import time

import yaml

from platform import spaces

log = logging.getLogger("platform.sweep")


def _print_dry_run(spec: spaces.SweepSpec) -> None:
    resolved = dataclasses.asdict(dataclasses.replace(spec, search={}))
    resolved["search"] = {path: str(domain) for path, domain in spec.search.items()}
    print("# resolved spec")
    print(yaml.safe_dump(resolved, sort_keys=False), end="")
    print(f"# dataset fingerprint: {spec.dataset.fingerprint}")
    print("# Tune param space (searched keys as Tune domains)")
    space = spec.param_space()
    for path, domain in spec.search.items():
        section, key = path.split(".")
        print(f"{path}: {domain}  ->  {type(space[section][key]).__name__}")
    for section, key in spec.experiment_keys():
        chosen = ", ".join(f"{name}: {getattr(getattr(e, section), key)!r}" for name, e in spec.experiments.items())
        print(f"{section}.{key} by experiment: {chosen}")
    print(f"# searcher: {spec.tune.searcher}, scheduler: {spec.tune.scheduler.name}, "
          f"samples: {spec.tune.num_samples}{' per experiment' if spec.experiments else ''}, "
          f"concurrency: {spec.tune.max_concurrent}, time budget: {spec.tune.time_budget_s or 'none'}")


def _check_resources_fit(spec: spaces.SweepSpec, address: str | None) -> None:
    """On this machine nothing scales up: a trial asking for a GPU it lacks would wait forever."""
    import ray

    from platform.cluster import ClusterError, is_local
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


def _new_tuner(spec: spaces.SweepSpec, context, name: str):
    from ray import tune
    return tune.Tuner(
        _trainable(spec, context),
        param_space=spec.param_space(),
        tune_config=tune.TuneConfig(metric="fid", mode="min", search_alg=spaces.searcher(spec),
                                    scheduler=spaces.scheduler(spec), num_samples=spec.tune.num_samples,
                                    time_budget_s=spec.tune.time_budget_s,
                                    # PBT's in-place reset needs reset_config, which function trainables lack
                                    reuse_actors=spec.tune.scheduler.name != "pbt",
                                    trial_dirname_creator=lambda trial: f"{trial.trainable_name}_{trial.trial_id}"),
        run_config=tune.RunConfig(name=name, storage_path=spec.storage.resolved_tune(),
                                  failure_config=tune.FailureConfig(max_failures=spec.tune.max_failures),
                                  checkpoint_config=tune.CheckpointConfig(
                                      num_to_keep=spec.tune.checkpoints_to_keep)),
    )


def _dataset_for_trials(spec: spaces.SweepSpec, storage_root: str):
    """Build (or reuse, or fetch) the dataset, its FID reference statistics, and publish it
    where storage.datasets says: (the built dataset, what trials read, MLflow tags)."""
    from data import pipeline
    from platform import prepare
    from trainables.evaluation import prepare_reference, real_vs_real
    prepare.fetch_published(spec, storage_root)
    # with storage.datasets the root is the driver's own disk (not checked as shared), so
    # the build runs on the driver's node and trials copy the published dataset
    dataset = pipeline.build(spec.dataset, storage_root, here_only=bool(spec.storage.datasets))
    prepare.report(dataset, show=20)
    baseline = {}
    if not any(path.startswith("evaluation.") for path in spec.search):
        # once, here: missing Inception weights fail now, and no trial computes real statistics
        prepare_reference(spec.evaluation, str(dataset.path))
        baseline = real_vs_real(spec.evaluation, str(dataset.path))  # what every fid is read against
    # after the reference statistics, which go with it; a path, or the URI trials copy from
    source = prepare.publish(spec, dataset)
    tags = {"dataset.fingerprint": dataset.fingerprint, "dataset.path": str(dataset.path)}
    if baseline:
        tags.update({"fid.real_vs_real": f"{baseline['fid']:.6g}", "fid.real_vs_real.count": str(baseline["count"])})
    if spec.storage.datasets:
        from data.remote import display
        tags["dataset.uri"] = display(source)
    return dataset, source, tags


def _best_trial(results, target) -> dict | None:
    """The trial with the lowest fid it ever reached (not its last), with its MLflow run."""
    from platform import tracking
    scored = [r for r in results if r.metrics_dataframe is not None and "fid" in r.metrics_dataframe]
    if not scored:
        return None
    best = min(scored, key=lambda r: r.metrics_dataframe["fid"].min())
    runs = {r.data.tags.get("tune.trial_id"): r.info.run_id for r in tracking.child_runs(target)}
    trial_id = best.metrics["trial_id"]
    return {"fid": float(best.metrics_dataframe["fid"].min()), "trial_id": trial_id,
            "run_id": runs.get(trial_id), "config": best.config}


def run(spec: spaces.SweepSpec, spec_file: str, address: str | None, resume: str | None = None) -> int:
    """A new sweep, or (`resume`: a Tune experiment path or "latest") a stopped one continued."""
    # Checkpointing every iteration makes Tune warn about snapshot frequency; harmless here.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    from platform import cluster, resume as resuming, tracking
    from trainables.train import TrialContext

    storage_root = spec.storage.resolved_root()
    tracking_uri = tracking.resolve_uri(spec.mlflow.resolved_uri())
    previous = resuming.find(spec, resume) if resume else None  # before Ray: a wrong path fails fast
    datasets_uri = spec.storage.datasets
    if datasets_uri:  # before Ray: a misspelt bucket or missing credentials fail in seconds
        cluster.check_store_writable(datasets_uri)
    nodes = cluster.connect(address)
    _check_resources_fit(spec, address)
    # with storage.datasets, trials copy the dataset from there: the root is the driver's own
    shared = {} if datasets_uri else {"storage.root": storage_root}
    cluster.preflight(nodes, tracking_uri, {**shared, "storage.tune": spec.storage.resolved_tune()},
                      stores={"storage.datasets": datasets_uri} if datasets_uri else None)

    dataset, dataset_source, dataset_tags = _dataset_for_trials(spec, storage_root)

    threads = max(1, int(spec.tune.resources_per_trial.cpu))
    if previous:
        target = tracking.reopen_sweep(previous.target)
        context = TrialContext(dataset_source, dataset.fingerprint, target, threads=threads)
        print(f"Resuming {previous.path}: finished trials are kept, unfinished ones restart from "
              "their last checkpoint.")
        from ray import tune
        # param_space again: Tune keeps sample_from functions (experiments) as placeholders
        tuner = tune.Tuner.restore(previous.path, _trainable(spec, context), resume_unfinished=True,
                                   resume_errored=False, restart_errored=False, param_space=spec.param_space())
    else:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        target = tracking.start_sweep(
            tracking_uri, spec.experiment, run_name=f"sweep-{stamp}",
            tags=dataset_tags,
            params={"tune.searcher": spec.tune.searcher, "tune.scheduler": spec.tune.scheduler.name,
                    "tune.num_samples": spec.tune.num_samples, "dataset.segments": dataset.segments},
            spec_file=spec_file)
        context = TrialContext(dataset_source, dataset.fingerprint, target, threads=threads)
        name = f"{spec.name}-{stamp}"
        resuming.record(spec, name, target)  # what --resume needs to find this sweep again
        tuner = _new_tuner(spec, context, name)
    results = tuner.fit()

    errors = {r.metrics.get("trial_id", ""): str(r.error) for r in results if r.error}
    best = _best_trial(results, target)
    tracking.finish_sweep(target, errors, best)

    print()
    print(f"Trials: {len(results)} ({len(errors)} failed). Tune results: {results.experiment_path}")
    if best:
        print(f"Best trial {best['trial_id']}: fid {best['fid']:.4g} (MLflow run {best['run_id']})")
        print("Hyperparameters:", json.dumps(best["config"], sort_keys=True))
    print(f"MLflow experiment '{spec.experiment}', parent run {target.parent_run_id}. Open the UI with:")
    print(f"  {tracking.ui_command(tracking_uri)}")
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
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    spec = spaces.load_for_command(args.space)
    if spec is None:
        return 2
    if args.dry_run:
        _print_dry_run(spec)
        return 0
    from data.pipeline import BuildError
    from data.remote import StoreError
    from platform.cluster import ClusterError
    from platform.resume import ResumeError
    try:
        return run(spec, os.path.abspath(args.space), args.address, args.resume)
    except (ClusterError, ResumeError, StoreError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except BuildError as error:  # nothing to train on; what was built so far is kept
        print(f"error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
