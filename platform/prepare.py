"""Build a dataset alone: python -m platform.prepare SPACE.yaml [--root DIR] [--set KEY=VALUE]

Reads the `dataset` section of a search-space file, builds the dataset with Ray Data (or
finishes a stopped build, or finds the finished one), and prints where it is, its counts
and every input it skipped with the reason. A sweep builds the same dataset on demand;
running this first just does that part alone. With `storage.datasets` set, the finished
dataset is published there too (and a dataset published there but missing here is
downloaded rather than built).
"""
import argparse
import logging
import os
import sys
import time
from pathlib import Path

from platform.driver import command, console
from platform.spec import spaces


def _store_error(uri: str, doing: str, error: Exception):
    from data import remote
    reason = str(error) if isinstance(error, remote.StoreError) else (str(error).strip().splitlines() or [""])[0]
    return remote.StoreError(f"storage.datasets {remote.display(uri)}: {doing} failed ({reason}).")


def fetch_published(spec, root: str | os.PathLike) -> bool:
    """A dataset that `root` lacks but storage.datasets holds (a new head node, a cleaned
    disk) is downloaded, not built again. True if it was."""
    from data import remote
    from data.dataset import MANIFEST, dataset_dir
    final = dataset_dir(root, spec.dataset)
    if not spec.storage.datasets or (final / MANIFEST).exists():
        return False
    uri = remote.join(spec.storage.datasets, spec.dataset.fingerprint)
    try:
        if not remote.published(uri):
            return False
        started = time.perf_counter()
        remote.fetch(uri, final, Path(root) / "locks" / f"{spec.dataset.fingerprint}.lock")
    except (remote.StoreError, OSError) as error:
        raise _store_error(uri, "downloading the published dataset", error) from None
    print(f"Dataset {spec.dataset.fingerprint}: downloaded from {remote.display(uri)} "
          f"in {time.perf_counter() - started:.1f} s")
    return True


def publish(spec, built) -> str:
    """Where trials read the dataset: its local path, or with storage.datasets set, the URI
    it is published at (uploaded now unless this build is there already)."""
    from data import remote
    if not spec.storage.datasets:
        return str(built.path)
    uri = remote.join(spec.storage.datasets, built.fingerprint)
    started = time.perf_counter()
    try:
        files = remote.publish(built.path, uri)
    except (remote.StoreError, OSError) as error:
        raise _store_error(uri, "publishing the dataset", error) from None
    took = f"{time.perf_counter() - started:.1f} s"
    print(f"Dataset {built.fingerprint} published at {remote.display(uri)}: "
          + (f"{files} file(s) uploaded in {took}" if files else f"already there ({took} to check)"))
    return uri


def report(built, show: int) -> None:
    """Print a built dataset's place, counts and failures, for people."""
    from data.dataset import read_failures
    how = "reused" if built.reused else "built"
    print(f"Dataset {built.fingerprint} ({how}): {built.segments} segments from {built.tracks} tracks")
    print(f"  at {built.path}")
    if not built.reused and built.resumed_tracks:
        print(f"  resumed a stopped build: {built.resumed_tracks} tracks were done already, "
              f"{built.processed_tracks} processed now")
    failures = read_failures(built.path)
    if failures:
        print(f"Skipped {len(failures)} input(s):")
        for f in failures[:show]:
            print(f"  {f['input']}  [{f['stage']}] {f['reason']}")
        if len(failures) > show:
            print(f"  ... and {len(failures) - show} more, all in {built.path / 'failures.parquet'}")
        from data.download import summary
        for line in summary(failures):  # once per cause, with its fix
            print(line)
    if built.unreachable:
        print(f"The URL sources could not be reached ({built.unreachable} input(s): no network?); "
              "the dataset was built from the other sources. Once online, add them with --retry-failed.")


def dataset_ready(spec, root: str | os.PathLike, *, show: int = 20, retry_failed: bool = False,
                  here_only: bool = False, reference=None, before_build=None):
    """The dataset, ready for trials: downloaded if storage.datasets has it and `root` lacks
    it, else built (or its build finished, or the finished one found), reported, its FID
    reference statistics for `reference` (an EvaluationConfig) computed, and published
    where storage.datasets says. `before_build()` runs only when there is something to
    build. Returns (the built dataset, where trials read it: a path or the URI)."""
    from data import pipeline
    from data.dataset import MANIFEST, dataset_dir
    fetch_published(spec, root)
    if before_build and (retry_failed or not (dataset_dir(root, spec.dataset) / MANIFEST).exists()):
        before_build()
    built = pipeline.build(spec.dataset, root, retry_failed=retry_failed, here_only=here_only)
    report(built, show)
    if reference is not None:
        from trainables.evaluation import prepare_reference
        prepare_reference(reference, str(built.path))
    # after the reference statistics, which go with it
    return built, publish(spec, built)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m platform.prepare", description=__doc__.split("\n\n")[0])
    parser.add_argument("space", help="search-space YAML file whose `dataset` section to build")
    parser.add_argument("--root", help="where datasets and downloads go (default: the file's storage.root)")
    parser.add_argument("--retry-failed", action="store_true",
                        help="try the inputs a finished build skipped again (say the network was down); "
                             "its finished tracks are kept")
    parser.add_argument("--show-failures", type=int, default=20, metavar="N",
                        help="print at most N skipped inputs (all are in failures.parquet)")
    command.add_set_option(parser)
    parser.add_argument("-v", "--verbose", action="store_true", help="show Ray's own output in full")
    args = parser.parse_args(argv)
    try:
        spec = spaces.load(args.space, args.overrides)
    except spaces.SpecError as error:
        return command.error(error)
    console.setup(args.verbose)  # before Ray is imported
    command.setup_logging(logging.INFO if args.verbose else logging.WARNING)

    from data import pipeline, remote
    from platform.driver import cluster
    root = Path(os.path.realpath(args.root or spec.storage.resolved_root()))  # a symlink loop: check_writable says so

    def start_ray():  # a finished dataset needs none
        print(f"Dataset {spec.dataset.fingerprint}: building under {root}")
        cluster.connect("local", root)  # a new local Ray, never a cluster left running

    def prepare() -> int:
        cluster.check_writable({"--root" if args.root else "storage.root": root})  # before Ray starts
        if spec.storage.datasets:  # before a build that could not be published
            cluster.check_store_writable(spec.storage.datasets)
        dataset_ready(spec, root, show=args.show_failures, retry_failed=args.retry_failed, before_build=start_ray)
        return 0
    return command.guarded(prepare, usage=(cluster.ClusterError, remote.StoreError), failed=(pipeline.BuildError,))


if __name__ == "__main__":
    sys.exit(main())
