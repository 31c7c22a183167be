"""A sweep's winner scored by the reference: the standard Inception FID of its best checkpoint.

    .venv/bin/python benchmarks/winner_fid.py EXPERIMENT DATASET [--tracking-uri URI]
        [--samples 256] [--embedding inception]

EXPERIMENT is a search space's MLflow experiment (its winner: the trial run with the lowest
fid, as `platform.generate --experiment` picks it); DATASET the built dataset it trained on
(runs/datasets/<fingerprint>). Prints the winner, the fid it was picked by, and its FID in
`--embedding` (float32) on `--samples` generated images against as many seeded real ones.
Two sweeps of one dataset, say before and after a change to evaluation, can so be compared
by the metric neither was run with.
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import platform  # noqa: E402,F401  (the repo's shim, before torch)

import torch  # noqa: E402

from platform.driver import command, tracking  # noqa: E402
from data.dataset import read_manifest  # noqa: E402
from trainables.metrics import embeddings, fid  # noqa: E402
from trainables.metrics.feature_stats import feature_stats  # noqa: E402
from trainables.checkpoint import generator_from  # noqa: E402
from trainables.metrics.reference import real_stats  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("experiment")
    parser.add_argument("dataset", help="the built dataset the sweep trained on")
    parser.add_argument("--samples", type=int, default=256)
    parser.add_argument("--embedding", default="inception")
    command.add_tracking_option(parser)
    args = parser.parse_args()
    _, client = command.tracking_client(args.tracking_uri)
    _, run = tracking.sweep_winner(client, args.experiment)  # within its latest sweep
    state = tracking.trial_checkpoint(client, run, "best")
    generator, cfg = generator_from(state)
    torch.set_num_threads(2)
    embedding = embeddings.build(args.embedding)
    fingerprint = read_manifest(args.dataset)["fingerprint"]
    real = real_stats(args.dataset, fingerprint, embedding, args.samples, seed=0)
    z = torch.randn(args.samples, cfg.model.latent_dim, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        fake = feature_stats((generator.eval()(chunk) for chunk in z.split(64)), embedding)
    value = fid.fid(real, fake, embedding.standardised)
    print(f"winner {run.info.run_name} ({run.info.run_id}), picked by fid {run.data.metrics.get('best/fid', float('nan')):.4g} "
          f"in {run.data.tags.get('fid.embedding')}, best checkpoint at step {state.step}: "
          f"{args.embedding} FID {value:.2f} on {args.samples} samples")
    return 0


if __name__ == "__main__":
    sys.exit(main())
