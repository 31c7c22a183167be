"""The one checkpoint format: what `state.pt` holds, how it is written and read.

Tune's checkpoints (trainables/train.py) and the run's `checkpoints/last|best` artifacts
(trainables/artifacts.py) are the same file, read back by a restored trial and by
`platform.generate`. It is read with `torch.load(weights_only=True)` only: tensors and
plain Python values, never a pickled object whose loading could run code, because a
checkpoint comes from a shared storage or an MLflow server anyone on its network may
write to. The trainer's state (trainables/trainer.py) keeps its random-generator states
as tensors and tuples for that reason.
"""
import dataclasses
import os
import pickle
import re
import zipfile
from dataclasses import dataclass

import torch

from data.dataset import spec_of
from trainables import models
from trainables.config import TrialConfig

CHECKPOINT_FILE = "state.pt"
# Bumped whenever a field is added, removed or changes meaning: an older file then gets
# one sentence instead of a KeyError deep in a restore.
FORMAT_VERSION = 1
_KIND = "techno-gan-checkpoint"


class CheckpointError(ValueError):
    """A file that is not a checkpoint this version wrote: one sentence naming it."""


@dataclass(frozen=True)
class Checkpoint:
    trainer: dict             # GANTrainer.state_dict(): networks, optimisers, sampler, generators, step
    config: dict              # the trial's Tune config, from which TrialConfig rebuilds the networks
    mlflow_run_id: str        # the trial's run: a restored trial goes on logging there
    trial_id: str | None = None  # the Tune trial that wrote it: under PBT another trial may restore it
    dataset: dict | None = None  # artifacts.dataset_info: turns images back into dB and sound
    version: int = FORMAT_VERSION

    @property
    def step(self) -> int:
        return self.trainer["step"]

    def save(self, path: str | os.PathLike) -> None:
        torch.save({"kind": _KIND, **dataclasses.asdict(self)}, path)

    @classmethod
    def load(cls, path: str | os.PathLike, shown_as: str | None = None) -> "Checkpoint":
        """Read a checkpoint on the CPU (random-generator states must stay CPU tensors;
        load_state_dict copies weights onto the trainer's device). Raises CheckpointError,
        naming the file `shown_as` where given: a downloaded artifact's temporary path means
        nothing to the user."""
        shown = shown_as or path
        try:
            raw = torch.load(path, map_location="cpu", weights_only=True)
        except FileNotFoundError:
            raise CheckpointError(f"{shown}: no such checkpoint file.") from None
        except IsADirectoryError:
            raise CheckpointError(f"{shown} is a directory, not a checkpoint file.") from None
        except (pickle.UnpicklingError, RuntimeError, EOFError, zipfile.BadZipFile, ValueError, TypeError,
                AttributeError, ImportError, IndexError, KeyError) as error:
            # weights_only refuses any global it does not know: a tampered or foreign file
            named = re.search(r"GLOBAL (\S+)", str(error))
            why = (f"it refers to {named[1]}, which is neither a tensor nor a plain value" if named
                   else f"it is damaged: {type(error).__name__}")
            raise CheckpointError(f"{shown} is not a checkpoint this platform wrote, or it was altered ({why}); "
                                  "it was not loaded.") from None
        if not isinstance(raw, dict) or raw.get("kind") != _KIND:
            raise CheckpointError(f"{shown} is not a checkpoint this platform wrote (no {_KIND!r} marker).")
        if raw.get("version") != FORMAT_VERSION:
            raise CheckpointError(f"{shown} is a checkpoint of format version {raw.get('version')!r}, but this "
                                  f"version reads format {FORMAT_VERSION}: train it again, or use the version "
                                  "that wrote it.")
        fields = {f.name for f in dataclasses.fields(cls)}
        missing = {f.name for f in dataclasses.fields(cls) if f.default is dataclasses.MISSING} - set(raw)
        if missing or not isinstance(raw.get("trainer"), dict):
            raise CheckpointError(f"{shown}: a format-{FORMAT_VERSION} checkpoint without "
                                  f"{', '.join(sorted(missing)) or 'a trainer state'}: it is damaged.")
        return cls(**{key: value for key, value in raw.items() if key in fields})


def generator_from(state: Checkpoint, name: str = "the checkpoint") -> tuple[torch.nn.Module, TrialConfig]:
    """The trial's generator, rebuilt from its checkpoint alone, and its TrialConfig: the
    checkpoint holds the config, so `platform.generate` and the listening test need nothing
    else. CheckpointError, naming `name`, if the checkpoint's config, weights and dataset
    information do not fit together (weights of another width or family, an unknown or
    invalid key, no mel parameters to voice the images with)."""
    try:
        cfg = TrialConfig.from_tune(state.config)
        generator, _ = models.build(cfg.model)
        generator.load_state_dict(state.trainer["G"])
        if not isinstance(state.dataset, dict):
            raise ValueError("it holds no dataset information (the mel parameters to draw and voice it)")
        mel = spec_of(state.dataset, name).mel, state.dataset["scaling"]
        size = cfg.model.image_size if isinstance(cfg.model.image_size, tuple) else (cfg.model.image_size,) * 2
        if (mel[0].n_mels, mel[0].frames) != tuple(size):  # drawing or voicing it would fail half-way
            raise ValueError(f"the model makes {size[0]} x {size[1]} mels, its dataset has {mel[0].n_mels} bands "
                             f"x {mel[0].frames} frames")
    except (ValueError, TypeError, KeyError, RuntimeError, AttributeError) as error:
        lines = [line.strip() for line in str(error).strip().splitlines()] or [type(error).__name__]
        why = " ".join(lines[:2])[:240]  # torch's first line only says "Error(s) in loading state_dict"
        raise CheckpointError(f"{name}: its config, weights and dataset information do not fit together "
                              f"({why.rstrip('.')}); it was not used.") from None
    return generator, cfg
