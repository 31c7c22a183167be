"""The blind listening test: python -m platform.listen --serve EXPERIMENT

Clips: real segments of the sweep's dataset and samples of each trial's best checkpoint,
each voiced by the trials' `evaluation.vocoder`, under random names, so a rater hears
neither where a clip comes from nor which came before it (each rater gets their own
shuffle). The page plays one clip at a time and asks for a 1-5 score and "sounds like
techno?"; a rater token the server issues once per browser (kept in its localStorage) lets
a rater stop and come back, and only issued tokens rate (at most --max-raters of them).

Everything lives under STORAGE_ROOT/listening/<sweep parent run id>/ (or a key of the runs
given): clips/*.wav, clips.json (which clip is which) and ratings.sqlite (clip, run id,
rater, score, techno, time), so a restart serves the same clips and keeps every rating.
After each rating the rated trial's MLflow run gets `mos`, `mos/ci95_low`,
`mos/ci95_high` (Student's t interval), `mos/count` and `techno/share`; the parent run
gets `mos/real` (the anchor: what real mels through the same vocoder score) and the table
listening/mos.csv, one row per trial and one for the real clips.
"""
import logging
import socket
from pathlib import Path

from platform.blind_test.clips import REAL, folder_for, prepare_clips
from platform.blind_test.server import ListeningTest, is_loopback, serve

log = logging.getLogger(__name__)


def main(args) -> int:
    """`platform.listen --serve`: find the runs, render the clips once, serve until Ctrl-C."""
    from platform.driver import command, tracking
    from platform.spec.spaces import StorageSpec
    if args.clips_per_trial < 1 or args.real_clips < 0 or args.max_raters < 1:
        return command.error("--clips-per-trial and --max-raters must be at least 1 and --real-clips at least 0.")
    try:
        _, client = command.tracking_client(args.tracking_uri)
        experiment = tracking.get_experiment(client, args.serve)
        if args.runs:
            parent, runs = None, [tracking.get_run(client, run_id) for run_id in args.runs]
            parents = {r.data.tags.get("mlflow.parentRunId") for r in runs}
            if len(parents) == 1 and None not in parents:
                parent = tracking.get_run(client, parents.pop())
        else:
            parent, runs = tracking.sweep_runs(client, args.serve, args.parent)
        foreign = [r.info.run_id for r in runs + ([parent] if parent else [])
                   if r.info.experiment_id != experiment.experiment_id]
        if foreign:
            raise tracking.RunLookupError(f"run {foreign[0]} is not in experiment {args.serve!r}.")
        root = args.storage_root or StorageSpec().resolved_root()
        folder = folder_for(root, parent.info.run_id if parent else None, [r.info.run_id for r in runs])
        dataset = parent.data.tags.get("dataset.path") if parent else None
        if dataset and not Path(dataset).is_dir():
            log.warning("the sweep's dataset %s is not here: no real clips, so no anchor", dataset)
            dataset = None
        sweep = f" of sweep {parent.info.run_name} ({parent.info.run_id})" if parent else ""
        print(f"Clips of {len(runs)} trial(s){sweep}; clips and ratings in {folder}")
        clips = prepare_clips(client, runs, dataset, folder, args.clips_per_trial, args.real_clips)
    except LookupError as error:
        return command.error(error)
    labels = {r.info.run_id: r.info.run_name for r in runs} | {REAL: "real segments (anchor)"}
    test = ListeningTest(folder, clips, client, parent.info.run_id if parent else None, labels, args.max_raters)
    try:
        server = serve(test, args.host, args.port)
    except OSError as error:
        return command.error(f"--host {args.host} --port {args.port}: cannot listen there ({error.strerror}).")
    host, port = server.server_address[:2]
    if not is_loopback(args.host):
        log.warning("--host %s: the listening test is open to every machine that can reach this one on port %d, "
                    "with no login; use the default 127.0.0.1 (and an SSH tunnel) unless the network is yours.",
                    args.host, port)
        host = socket.getfqdn() if host in ("0.0.0.0", "::") else host  # 0.0.0.0 is no address to open
    shown = f"[{host}]" if ":" in host else host
    print(f"Listening test of {len(clips)} clips ({len(runs)} trials): open http://{shown}:{port}/ (Ctrl-C stops)",
          flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0
