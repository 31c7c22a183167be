"""Build a dataset alone: python -m platform.prepare SPACE.yaml [--root DIR]

Reads the `dataset` section of a search-space file, builds the dataset with Ray Data (or
finishes a stopped build, or finds the finished one), and prints where it is, its counts
and every input it skipped with the reason. A sweep builds the same dataset on demand;
running this first just does that part alone.
"""
import argparse
import logging
import sys
from pathlib import Path

from platform import spaces



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

    from data import pipeline
    from data.dataset import MANIFEST, dataset_dir
    from platform import cluster
    root = Path(args.root or spec.storage.resolved_root()).resolve()
    if args.retry_failed or not (dataset_dir(root, spec.dataset) / MANIFEST).exists():  # else no Ray needed
        print(f"Dataset {spec.dataset.fingerprint}: building under {root}")
        cluster.connect("local")  # a new local Ray, never a cluster left running
    try:
        built = pipeline.build(spec.dataset, root, retry_failed=args.retry_failed)
    except pipeline.BuildError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    report(built, args.show_failures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
