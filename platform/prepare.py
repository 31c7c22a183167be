"""Build a dataset alone: python -m platform.prepare SPACE.yaml [--root DIR]

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

from platform import spaces


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
    if built.unreachable:
        print(f"The URL sources could not be reached ({built.unreachable} input(s): no network?); "
              "the dataset was built from the other sources. Once online, add them with --retry-failed.")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m platform.prepare", description=__doc__.split("\n\n")[0])
    parser.add_argument("space", help="search-space YAML file whose `dataset` section to build")
    parser.add_argument("--root", help="where datasets and downloads go (default: the file's storage.root)")
    parser.add_argument("--retry-failed", action="store_true",
                        help="try the inputs a finished build skipped again (say the network was down); "
                             "its finished tracks are kept")
    parser.add_argument("--show-failures", type=int, default=20, metavar="N",
                        help="print at most N skipped inputs (all are in failures.parquet)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    spec = spaces.load_for_command(args.space)
    if spec is None:
        return 2

    from data import pipeline, remote
    from data.dataset import MANIFEST, dataset_dir
    from platform import cluster
    root = Path(args.root or spec.storage.resolved_root()).resolve()
    try:
        cluster.check_writable({"--root" if args.root else "storage.root": root})  # before Ray starts
        if spec.storage.datasets:  # before a build that could not be published
            cluster.check_store_writable(spec.storage.datasets)
        fetch_published(spec, root)
        if args.retry_failed or not (dataset_dir(root, spec.dataset) / MANIFEST).exists():  # else no Ray needed
            print(f"Dataset {spec.dataset.fingerprint}: building under {root}")
            cluster.connect("local")  # a new local Ray, never a cluster left running
        built = pipeline.build(spec.dataset, root, retry_failed=args.retry_failed)
        report(built, args.show_failures)
        publish(spec, built)
    except pipeline.BuildError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except (cluster.ClusterError, remote.StoreError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
