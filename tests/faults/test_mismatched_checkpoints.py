"""Checkpoints that do not match their own config, and other inputs of the after-sweep
commands that used to end in tracebacks: each is one sentence and exit 2 from
`platform.generate`, nothing written; `platform.listen --serve`'s clips leave such a run out
with a warning and serve the rest. The runs are real MLflow runs in a SQLite store, their
checkpoints written by the real trainer and then given a mismatched config."""
import dataclasses
import logging

import numpy as np
import pytest
import torch
from mlflow import MlflowClient

from data import mel
from data.spec import DatasetSpec, MelParams
from platform import generate, listen, report
from platform.blind_test.clips import prepare_clips
from tests.builders import images, trial_config
from trainables.checkpoint import CHECKPOINT_FILE, Checkpoint
from trainables.config import SECTIONS
from trainables.trainer import GANTrainer

SPEC = DatasetSpec(mel=MelParams(sample_rate=16000, n_mels=64, frames=64))
INFO = {"fingerprint": "0" * 16, "scaling": mel.scaling(SPEC),
        "spec": {"mel": dataclasses.asdict(SPEC.mel), "segment": dataclasses.asdict(SPEC.segment)}}


def _config(family="dcgan1", **model) -> dict:
    cfg = trial_config(family)
    config = {name: dataclasses.asdict(getattr(cfg, name)) for name in SECTIONS}
    config["model"].update(model)
    return config


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """(uri, client, experiment id, {case: run id}): one good run and one per mismatch."""
    tmp = tmp_path_factory.mktemp("mismatched")
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    experiment = client.create_experiment("mismatched", artifact_location=(tmp / "artifacts").as_uri())
    weights = GANTrainer(trial_config("dcgan1"), images(count=8), torch.device("cpu")).state_dict()
    cases = {"good": (_config(), INFO),
             "another width": (_config(width=8), INFO),
             "another family": (_config("dcgan2"), INFO),
             "an invalid config": (_config(width=-3), INFO),
             "an unknown key": (_config(no_such_key=1), INFO),
             "no dataset information": (_config(), None)}
    runs = {}
    for case, (config, info) in {**cases, "a directory": (None, None)}.items():
        run = client.create_run(experiment, run_name=case.replace(" ", "-"))
        folder = tmp / case.replace(" ", "-")
        folder.mkdir()
        if config is None:  # a directory where state.pt should be
            (folder / CHECKPOINT_FILE).mkdir()
            (folder / CHECKPOINT_FILE / "data.pkl").write_bytes(b"not a checkpoint")
            client.log_artifacts(run.info.run_id, str(folder), "checkpoints/best")
        else:
            Checkpoint(weights, config, run.info.run_id, dataset=info).save(folder / CHECKPOINT_FILE)
            client.log_artifact(run.info.run_id, str(folder / CHECKPOINT_FILE), "checkpoints/best")
        client.set_terminated(run.info.run_id)
        runs[case] = run.info.run_id
    return uri, client, experiment, runs


def _one_line(capsys) -> str:
    """The one sentence of an error; generate's progress lines ("generate: ...") before it aside."""
    lines = [line for line in capsys.readouterr().err.strip().splitlines() if not line.startswith("generate: ")]
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    return lines[0]


CASES = ["another width", "another family", "an invalid config", "an unknown key", "no dataset information",
         "a directory"]


@pytest.mark.parametrize("case", CASES)
def test_generate_names_a_mismatched_checkpoint_and_writes_nothing(store, tmp_path, capsys, case):
    uri, _, _, runs = store
    out = tmp_path / "out"
    assert generate.main([runs[case], "--tracking-uri", uri, "--out", str(out), "-n", "1"]) == 2
    line = _one_line(capsys)
    assert runs[case] in line, line
    assert not out.exists()


def test_the_good_run_generates(store, tmp_path, capsys):
    uri, _, _, runs = store
    assert generate.main([runs["good"], "--tracking-uri", uri, "--out", str(tmp_path / "out"), "-n", "1",
                          "--griffin-lim-iters", "2"]) == 0
    assert (tmp_path / "out" / "sample_000.wav").is_file()


def test_listening_clips_leave_a_mismatched_run_out_and_serve_the_rest(store, tmp_path, caplog):
    _, client, _, runs = store
    folder = tmp_path / "listening"
    (folder / "clips").mkdir(parents=True)
    (folder / "clips" / "0123456789ab.wav").write_bytes(b"left by a render that stopped")
    chosen = [client.get_run(runs[case]) for case in ("good", "another width", "no dataset information")]
    with caplog.at_level(logging.WARNING, logger="platform.blind_test.clips"):
        clips = prepare_clips(client, chosen, None, folder, per_trial=1, reals=0)
    assert [c["run_id"] for c in clips] == [runs["good"]]
    left_out = [r.getMessage() for r in caplog.records if "left out of the listening test" in r.getMessage()]
    assert len(left_out) == 2 and runs["another width"] in left_out[0], left_out
    assert sorted(p.stem for p in (folder / "clips").iterdir()) == [clips[0]["clip"]]  # no orphan WAV
    assert (folder / "clips.json").is_file()


def test_a_store_that_is_no_database_is_one_sentence(tmp_path, capsys):
    not_a_db = tmp_path / "passwd"
    not_a_db.write_text("root:x:0:0:root:/root:/bin/bash\n")
    assert generate.main(["0" * 32, "--tracking-uri", f"sqlite:///{not_a_db}", "--out", str(tmp_path / "o")]) == 2
    assert "is not an MLflow store" in _one_line(capsys)


def test_report_out_naming_a_file_is_one_sentence(store, tmp_path, capsys):
    uri, _, _, _ = store
    taken = tmp_path / "taken"
    taken.write_text("a file")
    assert report.main(["mismatched", "--tracking-uri", uri, "--out", str(taken)]) == 2
    assert "is a file" in _one_line(capsys)
    assert taken.read_text() == "a file"


def test_listen_refuses_an_object_array(tmp_path, capsys):
    dataset = tmp_path / "dataset"
    dataset.mkdir()
    import json
    (dataset / "manifest.json").write_text(json.dumps({"spec": INFO["spec"]}))
    npy = tmp_path / "x.npy"
    np.save(npy, np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    assert listen.main([str(npy), "--dataset", str(dataset), "--out", str(tmp_path / "wavs")]) == 2
    assert "not a saved array of mels" in _one_line(capsys)
