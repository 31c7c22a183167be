"""Generate new mels and audio from a trial's checkpoint: python -m platform.generate RUN_ID --out DIR

RUN_ID is a trial's MLflow run; given a sweep instead (its parent run's id or its name,
sweep-...) or an experiment (`--experiment NAME`, or the name in RUN_ID's place), it takes
the winner of that sweep, or of the experiment's latest sweep (`--parent RUN_ID` names
another), and says which: scores compare within one sweep only. The run's
`checkpoints/best/state.pt` (or `--checkpoint last`, its state at its end; a trial stopped
before its end has only the best, taken instead and said so) holds the trial's config and the
dataset's mel parameters, so the generator is rebuilt from it alone. Writes
sample_000.png / .wav ... and grid.png into --out.
"""
import argparse
import logging
import sys
from pathlib import Path

from platform.driver import command  # stdlib only: the first line comes before MLflow's import


def trial_run(client, given: str | None, experiment: str | None, parent_id: str | None = None) -> tuple:
    """(the trial run, how it was chosen: "" for a trial run given by its id) for a trial
    run's id, a sweep's parent run id or name, or an experiment's name; RunLookupError else."""
    from platform.driver import tracking
    if experiment:
        parent, run = tracking.sweep_winner(client, experiment, parent_id)
        return run, f"the winner of experiment {experiment!r}'s sweep {parent.info.run_name} ({parent.info.run_id})"
    try:
        run = tracking.get_run(client, given)
    except tracking.RunLookupError:
        run = None
    if run is None and "'" not in given:  # a sweep's name (sweep-...)
        experiments = [e.experiment_id for e in client.search_experiments()]
        found = client.search_runs(experiments, f"attributes.run_name = '{given}' and tags.sweep = 'parent'",
                                   order_by=["attributes.start_time DESC"], max_results=1) if experiments else []
        run = found[0] if found else None
    if run is None:
        if client.get_experiment_by_name(given) is None:
            raise tracking.RunLookupError(f"there is no run, sweep or experiment {given!r} in {client.tracking_uri}.")
        return trial_run(client, None, given)
    if run.data.tags.get("sweep") != "parent":
        return run, ""
    name = client.get_experiment(run.info.experiment_id).name
    return (tracking.sweep_winner(client, name, run.info.run_id)[1],
            f"run {run.info.run_id} is sweep {run.info.run_name}'s parent run; its winner")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m platform.generate", description=__doc__.split("\n\n")[0])
    parser.add_argument("run_id", nargs="?", metavar="RUN",
                        help="a trial's MLflow run id; a sweep's parent run id or name, or an experiment's name: "
                             "its winner")
    parser.add_argument("--experiment",
                        help="instead of RUN_ID: the winner (lowest fid) of this experiment's latest sweep")
    parser.add_argument("--parent", help="with --experiment: that sweep's parent run id instead of the latest")
    parser.add_argument("--checkpoint", choices=("best", "last"), default="best",
                        help="which checkpoint of the run (default: best, its lowest fid; last: its end, or "
                             "its best where it was stopped before its end)")
    parser.add_argument("-n", type=int, default=8, help="mels to generate (default: 8)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the latent vectors (default: 0)")
    parser.add_argument("--out", default="generated", help="output folder (default: generated)")
    command.add_tracking_option(parser)
    parser.add_argument("--griffin-lim-iters", type=int, default=64, help="Griffin-Lim iterations (default: 64)")
    parser.add_argument("--vocoder", choices=("griffin-lim", "hifigan"), default=None,
                        help="how the WAVs are voiced (default: the trial's evaluation.vocoder)")
    args = parser.parse_args(argv)
    if (args.run_id is None) == (args.experiment is None):
        parser.error("give a RUN_ID or --experiment NAME (one of them)")
    if args.n < 1 or args.griffin_lim_iters < 1:
        parser.error("-n and --griffin-lim-iters must be at least 1")
    if Path(args.out).exists() and not Path(args.out).is_dir():
        parser.error(f"--out {args.out}: is a file, not a folder for the samples")
    command.setup_logging(logging.WARNING)
    print(f"generate: finding {args.run_id or 'the winner of experiment ' + repr(args.experiment)} "
          "(loading MLflow and torch) ...", file=sys.stderr, flush=True)

    from mlflow.exceptions import MlflowException

    from platform.driver import tracking
    from trainables.checkpoint import CheckpointError, generator_from
    try:
        _, client = command.tracking_client(args.tracking_uri)
        run, chosen = trial_run(client, args.run_id, args.experiment, args.parent)
        if chosen:
            print(f"generate: {chosen}: trial run {run.info.run_id} ({run.info.run_name})", file=sys.stderr, flush=True)
        if args.checkpoint == "last":
            state, which = tracking.end_checkpoint(client, run)
            if which != "last":
                print(f"generate: run {run.info.run_id} was stopped before its end and has no last checkpoint: "
                      f"its {which} instead", file=sys.stderr, flush=True)
        else:
            state, which = tracking.trial_checkpoint(client, run, args.checkpoint), args.checkpoint
        generator, cfg = generator_from(state, f"run {run.info.run_id}'s {which} checkpoint")
    except (tracking.RunLookupError, CheckpointError) as error:
        return command.error(error)
    except MlflowException as error:  # the store answered, but not with the run's artifacts
        return command.error(f"{args.tracking_uri or tracking.default_uri()}: MLflow could not give the run's "
                             f"checkpoint ({str(error).strip().splitlines()[0][:200]}).")

    import torch
    from trainables.artifacts import generate, write_wav
    from trainables.figures import mel_figure

    z = torch.randn(args.n, cfg.model.latent_dim, generator=torch.Generator().manual_seed(args.seed))
    images = generate(generator, z)
    info = state.dataset
    vocoder = args.vocoder or cfg.evaluation.vocoder
    if vocoder == "hifigan":
        from data.dataset import spec_of
        from trainables.config import hifigan_mismatch
        problem = hifigan_mismatch(spec_of(info, f"run {run.info.run_id}'s checkpoint"))
        if problem:
            return command.error(f"--vocoder hifigan: run {run.info.run_id} was trained on a mel HiFi-GAN "
                                 f"cannot voice: {problem}.")

    out = Path(args.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:  # a symlink loop, a read-only disk: before anything is written
        return command.error(f"--out {args.out}: the folder cannot be made ({error.strerror or error}).")
    step = state.step
    print(f"generate: run {run.info.run_id} ({run.info.run_name}), {which} checkpoint at step {step}",
          file=sys.stderr, flush=True)
    for i, image in enumerate(images):
        # seconds a clip (HiFi-GAN on a CPU: minutes for 8): a line each, so the wait is not silent
        print(f"generate: voicing clip {i + 1}/{args.n} with {vocoder}", file=sys.stderr, flush=True)
        mel_figure(image[None], info, title=f"{run.info.run_name}, step {step}, seed {args.seed}, #{i}").savefig(
            out / f"sample_{i:03d}.png", dpi=100)
        write_wav(out / f"sample_{i:03d}.wav", image, info, args.griffin_lim_iters, vocoder)
    mel_figure(images, info, title=f"{run.info.run_name} ({cfg.model.family}), {which} checkpoint "
                                   f"at step {step}, seed {args.seed}").savefig(out / "grid.png", dpi=100)
    print(f"run {run.info.run_id} ({run.info.run_name}, {cfg.model.family}), {which} checkpoint "
          f"at step {step}: {args.n} mels as PNG and WAV in {out}/ (sample_000 ... sample_{args.n - 1:03d}, grid.png)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
