"""A `state.pt` replaced by a pickle whose loading runs a command: neither a restored trial
nor `platform.generate` (which reads the run's MLflow artifact) runs it; both name the file."""
import os

import pytest
import torch
from mlflow import MlflowClient

from tests.helpers import run_module
from tests.builders import images, trial_config
from trainables import train
from trainables.checkpoint import CHECKPOINT_FILE, FORMAT_VERSION, Checkpoint, CheckpointError
from trainables.trainer import GANTrainer


class _Payload:
    """Unpickled, it calls os.system: what an attacker who can write a checkpoint would plant."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _tampered(path, marker) -> None:
    """A file shaped like a real checkpoint, its trainer state replaced by the payload."""
    torch.save({"kind": "techno-gan-checkpoint", "version": FORMAT_VERSION, "trainer": _Payload(marker),
                "config": {}, "mlflow_run_id": "x"}, path)


def test_the_payload_is_live_when_loaded_the_old_way(tmp_path):
    # the control: the same file loaded as before this fix runs the command
    marker = tmp_path / "ran"
    _tampered(tmp_path / CHECKPOINT_FILE, marker)
    torch.load(tmp_path / CHECKPOINT_FILE, weights_only=False)
    assert marker.exists()


def test_a_restored_trial_refuses_a_tampered_checkpoint(tmp_path, monkeypatch):
    from ray import tune
    marker = tmp_path / "ran"
    folder = tmp_path / "checkpoint_000001"
    folder.mkdir()
    _tampered(folder / CHECKPOINT_FILE, marker)
    monkeypatch.setattr(tune, "get_checkpoint", lambda: tune.Checkpoint.from_directory(str(folder)))
    trainer = GANTrainer(trial_config("dcgan1"), images(count=8), torch.device("cpu"))
    with pytest.raises(CheckpointError, match=CHECKPOINT_FILE) as error:
        train._restore(trainer)
    assert not marker.exists()
    assert "altered" in str(error.value) and len(str(error.value).splitlines()) == 1


def test_an_old_format_is_named_as_such(tmp_path):
    path = tmp_path / CHECKPOINT_FILE
    torch.save({"kind": "techno-gan-checkpoint", "version": FORMAT_VERSION - 1, "trainer": {}}, path)
    with pytest.raises(CheckpointError, match=f"{path}.*format version {FORMAT_VERSION - 1}"):
        Checkpoint.load(path)
    torch.save({"trainer": {}, "mlflow_run_id": "x"}, path)  # before the format had a marker
    with pytest.raises(CheckpointError, match="not a checkpoint this platform wrote"):
        Checkpoint.load(path)


@pytest.mark.slow
def test_generate_refuses_a_tampered_mlflow_artifact(tmp_path):
    marker = tmp_path / "ran"
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    experiment = client.create_experiment("tampered", artifact_location=(tmp_path / "artifacts").as_uri())
    run = client.create_run(experiment, run_name="victim")
    # a genuine checkpoint first, then the attacker overwrites the same artifact path
    trainer = GANTrainer(trial_config("dcgan1"), images(count=8), torch.device("cpu"))
    genuine = tmp_path / "genuine" / CHECKPOINT_FILE
    genuine.parent.mkdir()
    Checkpoint(trainer.state_dict(), {}, run.info.run_id).save(genuine)
    client.log_artifact(run.info.run_id, str(genuine), "checkpoints/best")
    bad = tmp_path / "bad" / CHECKPOINT_FILE
    bad.parent.mkdir()
    _tampered(bad, marker)
    client.log_artifact(run.info.run_id, str(bad), "checkpoints/best")

    result = run_module("platform.generate", run.info.run_id, "--tracking-uri", uri, "--out", str(tmp_path / "out"),
                        cwd=tmp_path, timeout=600)
    assert result.returncode == 2, result.stderr[-2000:]
    assert not marker.exists()
    (line,) = [l for l in result.stderr.strip().splitlines() if not l.startswith("generate: ")]  # its progress aside
    assert f"run {run.info.run_id}'s artifact checkpoints/best/{CHECKPOINT_FILE}" in line and "altered" in line, line
    assert not (tmp_path / "out").exists()
