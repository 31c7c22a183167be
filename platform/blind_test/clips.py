"""The clips a blind listening test plays: samples of each trial's best checkpoint and real
segments of the sweep's dataset (the anchor), each voiced by the trials' `evaluation.vocoder`
and saved under a random name, rendered once into the test's folder (clips.json says which
clip is which; a second call reuses them)."""
import hashlib
import json
import logging
import re
import secrets
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

REAL = "real"  # the run id of the real clips in clips.json and the ratings


def folder_for(storage_root: str | Path, parent_run_id: str | None, run_ids: list[str]) -> Path:
    """A path made of MLflow's hex ids only: nothing a user types becomes a path."""
    key = parent_run_id or "runs-" + hashlib.sha256(",".join(sorted(run_ids)).encode()).hexdigest()[:16]
    assert re.fullmatch(r"[0-9a-zA-Z-]+", key), key
    return Path(storage_root) / "listening" / key


def prepare_clips(client, runs: list, dataset_path: str | None, folder: Path, per_trial: int, reals: int,
                  seed: int = 0) -> list[dict]:
    """Render the clips once into `folder`; a second call finds clips.json and reuses them."""
    manifest = folder / "clips.json"
    if manifest.exists():
        return json.loads(manifest.read_text())
    import soundfile
    import torch
    from platform.driver.tracking import trial_checkpoint
    from trainables.checkpoint import CheckpointError, generator_from
    from data.dataset import read_rows, read_spec, spec_of
    from trainables.artifacts import generate
    from trainables.vocoder import render
    import shutil
    shutil.rmtree(folder / "clips", ignore_errors=True)  # WAVs of a render that stopped: no clips.json names them
    (folder / "clips").mkdir(parents=True, exist_ok=True)
    clips, vocoders = [], []

    def write(audio: np.ndarray, rate: int, run_id: str, source: str) -> None:
        clip = secrets.token_hex(6)
        soundfile.write(folder / "clips" / f"{clip}.wav", audio, rate, subtype="PCM_16")
        clips.append({"clip": clip, "run_id": run_id, "source": source})

    for number, run in enumerate(runs, 1):
        # voicing takes seconds a clip (HiFi-GAN on a CPU): a line per trial, so the wait is not silent
        print(f"voicing trial {number}/{len(runs)} ({run.info.run_name}): {per_trial} clip(s)", flush=True)
        try:
            state = trial_checkpoint(client, run, "best")
            generator, cfg = generator_from(state, f"run {run.info.run_id}'s best checkpoint")
        except (LookupError, CheckpointError) as error:  # a run without one, a tampered or mismatched one
            log.warning("%s: left out of the listening test", error)
            continue
        z = torch.randn(per_trial, cfg.model.latent_dim, generator=torch.Generator().manual_seed(seed))
        spec = spec_of(state.dataset, f"run {run.info.run_id}'s best checkpoint")
        vocoders.append(cfg.evaluation.vocoder)
        for i, image in enumerate(generate(generator, z)):
            write(render(image, spec, cfg.evaluation.vocoder, cfg.evaluation.griffin_lim_iters * 2),
                  spec.mel.sample_rate, run.info.run_id, f"{run.info.run_name} seed {seed} #{i}")
    if dataset_path and reals:
        from data.dataset import read_segments
        spec = read_spec(dataset_path)
        count = read_segments(dataset_path, columns=["track_id", "segment_index"]).num_rows
        rows = sorted(np.random.default_rng(seed).choice(count, size=min(reals, count), replace=False).tolist())
        vocoder = max(set(vocoders), key=vocoders.count) if vocoders else "griffin-lim"
        print(f"voicing {len(rows)} real segment(s) with {vocoder}", flush=True)
        for image, name in zip(*read_rows(dataset_path, rows)):
            write(render(image, spec, vocoder, 64), spec.mel.sample_rate, REAL, f"{name} ({vocoder})")
    if not clips:
        raise LookupError("no clips to rate: the runs have no best checkpoint and no dataset was found.")
    manifest.write_text(json.dumps(clips, indent=1))
    return clips
