"""The frame every command shares: logging, a user's mistake as one sentence and an exit
status, the `--set` and `--tracking-uri` options, and the MLflow client on a store."""
import logging
import os
import sys
from typing import Callable

USAGE = 2   # the input was wrong (a file, a key, a run id, an unreachable store): nothing started
FAILED = 1  # the work itself failed (a dataset built from nothing); what was done is kept


def setup_logging(level: int = logging.INFO) -> None:
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")


def error(message: object, status: int = USAGE) -> int:
    print(f"error: {message}", file=sys.stderr)
    return status


def guarded(body: Callable[[], int], usage: tuple[type[BaseException], ...] = (),
            failed: tuple[type[BaseException], ...] = ()) -> int:
    """`body()`, with the errors a user can cause printed as one line: `usage` ones exit 2,
    `failed` ones exit 1. Anything else is a bug and keeps its traceback."""
    from platform.spec.typed import SpecError
    try:
        return body()
    except (SpecError, *usage) as caught:
        return error(caught, USAGE)
    except failed as caught:
        return error(caught, FAILED)


def add_set_option(parser) -> None:
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE", dest="overrides",
                        help="change one setting of the file, typed and checked as if written there, e.g. "
                             "--set tune.num_samples=4 (repeatable)")


def add_tracking_option(parser) -> None:
    parser.add_argument("--tracking-uri", default=None,
                        help="MLflow store (default: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db)")


def tracking_client(uri: str | None):
    """(uri, MlflowClient) on an existing store: `--tracking-uri`, else the sweeps' default.
    Raises tracking.RunLookupError for a store that is not there."""
    from platform.driver import tracking
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    uri = tracking.resolve_uri(uri) if uri else tracking.default_uri()
    return uri, tracking.open_store(uri)
