"""Item 7 of issue 30: the inputs that ended in tracebacks, each now one sentence naming what
and where (exit 2), before Ray starts where it can be known then, nothing written. Most run
the commands in this process on a SQLite store the test makes; none starts Ray."""
import dataclasses
import glob
import logging
import os
from pathlib import Path

import pytest
import torch
import yaml
from mlflow import MlflowClient

from data import mel
from data.spec import DatasetSpec, MelParams
from platform import doctor, generate, report, sweep
from platform.blind_test.clips import prepare_clips
from platform.spec import spaces
from tests.builders import images, trial_config
from tests.helpers import tiny_sweep, write_spec
from trainables.checkpoint import CHECKPOINT_FILE, Checkpoint
from trainables.config import SECTIONS
from trainables.trainer import GANTrainer


def _dataset_info(n_mels: int) -> dict:
    spec = DatasetSpec(mel=MelParams(sample_rate=16000, n_mels=n_mels, frames=64))
    return {"fingerprint": "0" * 16, "scaling": mel.scaling(spec),
            "spec": {"mel": dataclasses.asdict(spec.mel), "segment": dataclasses.asdict(spec.segment)}}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """(uri, client, {case: run id}): a 64-band dcgan1's best checkpoint in each run, with the
    case's fault; and a sweep `infinite` whose trials logged +inf and -inf fids."""
    tmp = tmp_path_factory.mktemp("tracebacks")
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    experiment = client.create_experiment("tracebacks", artifact_location=(tmp / "artifacts").as_uri())
    cfg = trial_config("dcgan1")
    config = {name: dataclasses.asdict(getattr(cfg, name)) for name in SECTIONS}
    weights = GANTrainer(cfg, images(count=8), torch.device("cpu")).state_dict()
    runs = {}
    for case in ("good", "80 bands", "a symlink out of the store", "a dangling symlink"):
        run = client.create_run(experiment, run_name=case.replace(" ", "-"))
        folder = tmp / "made" / run.info.run_id
        folder.mkdir(parents=True)
        Checkpoint(weights, config, run.info.run_id, dataset=_dataset_info(80 if case == "80 bands" else 64)).save(
            folder / CHECKPOINT_FILE)
        client.log_artifact(run.info.run_id, str(folder / CHECKPOINT_FILE), "checkpoints/best")
        stored, = glob.glob(str(tmp / "artifacts" / run.info.run_id / "artifacts" / "checkpoints" / "best" / "*"))
        if "symlink" in case:  # the artifact itself replaced by a link, as a tampered store has it
            os.remove(stored)
            os.symlink(folder / CHECKPOINT_FILE if "out of" in case else tmp / "gone.pt", stored)
        client.set_terminated(run.info.run_id)
        runs[case] = run.info.run_id

    infinite = client.create_experiment("infinite", artifact_location=(tmp / "artifacts").as_uri())
    parent = client.create_run(infinite, run_name="sweep-1", tags={"sweep": "parent"})
    for name, fids in (("plus", [float("inf")] * 2), ("minus", [float("-inf")] * 2)):
        run = client.create_run(infinite, run_name=name, tags={"mlflow.parentRunId": parent.info.run_id,
                                                               "tune.trial_id": name})
        for step, fid in enumerate(fids, 1):
            client.log_metric(run.info.run_id, "fid", fid, step=step)
            client.log_metric(run.info.run_id, "best/fid", min(fids[:step]), step=step)
        client.set_terminated(run.info.run_id)
    client.set_terminated(parent.info.run_id)
    return uri, client, runs


def _one_line(capsys) -> str:
    """The one sentence of an error; generate's progress lines ("generate: ...") before it aside."""
    lines = [line for line in capsys.readouterr().err.strip().splitlines() if not line.startswith("generate: ")]
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    return lines[0]


def _spec(tmp_path, **sections) -> Path:
    return write_spec(tmp_path / "space.yaml", **tiny_sweep("tracebacks", storage={"root": str(tmp_path / "runs")},
                                                           **sections))


def test_a_garbage_store_stops_the_sweep_before_ray_and_fails_doctor(tmp_path, capsys):
    import ray
    garbage = tmp_path / "mlflow.db"
    garbage.write_bytes(os.urandom(4096))
    uri = f"sqlite:///{garbage}"
    assert sweep.main([str(_spec(tmp_path, mlflow={"tracking_uri": uri})), "-v"]) == 2
    assert f"the MLflow store {uri} cannot be opened" in _one_line(capsys)
    assert not ray.is_initialized()
    finding = doctor.mlflow_store(uri)
    assert not finding.ok and "is not an SQLite database" in finding.what


def test_doctor_wants_a_writable_storage_folder(tmp_path):
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    for root, why in (("/dev/null", "it is not a folder"), (str(tmp_path / "loop"), "symbolic links")):
        finding = doctor.storage_folder(root)
        assert not finding.ok and why in finding.what and root in finding.what, finding
        assert not doctor.free_disk(root).what.startswith("Traceback")  # and it answers, for the loop too
    assert doctor.storage_folder(str(tmp_path / "new" / "runs")).ok
    assert not (tmp_path / "new").exists()  # checked, not left behind


def test_a_storage_root_in_a_symlink_loop_is_one_sentence_before_ray(tmp_path, capsys):
    import ray
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    spec = write_spec(tmp_path / "space.yaml", **tiny_sweep("tracebacks", storage={"root": str(loop)},
                                                           mlflow={"tracking_uri": f"sqlite:///{tmp_path / 'm.db'}"}))
    assert sweep.main([str(spec), "-v"]) == 2
    assert f"storage.root {loop} cannot be written (Too many levels of symbolic links)" in _one_line(capsys)
    assert not ray.is_initialized() and not (tmp_path / "m.db").exists()


@pytest.mark.parametrize("weights", ["/dev/zero", "no/such/inception.pt"])
def test_inception_weights_that_are_no_file_are_refused_by_the_dry_run(tmp_path, capsys, weights):
    spec = _spec(tmp_path)
    assert sweep.main([str(spec), "--dry-run", "--set", f"evaluation.inception_weights={weights}"]) == 2
    line = _one_line(capsys)
    assert f"inception_weights {weights!r} is not a file" in line and str(spec) in line


def test_generate_refuses_a_checkpoint_whose_dataset_has_other_bands_and_writes_nothing(store, tmp_path, capsys):
    uri, _, runs = store
    out = tmp_path / "out"
    assert generate.main([runs["80 bands"], "--tracking-uri", uri, "--out", str(out), "-n", "2"]) == 2
    line = _one_line(capsys)
    assert runs["80 bands"] in line and "the model makes 64 x 64 mels, its dataset has 80 bands" in line
    assert not out.exists()


@pytest.mark.parametrize("case", ["a symlink out of the store", "a dangling symlink"])
def test_a_checkpoint_artifact_that_is_a_symlink_is_left_out_of_the_listening_test(store, tmp_path, caplog, capsys,
                                                                                  case):
    uri, client, runs = store
    chosen = [client.get_run(runs[case]), client.get_run(runs["good"])]
    with caplog.at_level(logging.WARNING, logger="platform.blind_test.clips"):
        clips = prepare_clips(client, chosen, None, tmp_path / "listening", per_trial=1, reals=0)
    assert [c["run_id"] for c in clips] == [runs["good"]]
    left_out, = [r.getMessage() for r in caplog.records if "left out of the listening test" in r.getMessage()]
    assert f"run {runs[case]}'s artifact checkpoints/best/{CHECKPOINT_FILE} cannot be read" in left_out
    assert generate.main([runs[case], "--tracking-uri", uri, "--out", str(tmp_path / "out")]) == 2
    assert "cannot be read" in _one_line(capsys)
    assert not (tmp_path / "out").exists()


def test_report_draws_a_sweep_with_infinite_fids(store, tmp_path, capsys):
    uri, client, _ = store
    assert report.main(["infinite", "--tracking-uri", uri, "--out", str(tmp_path), "--no-log"]) == 0
    assert (tmp_path / "fid_curves.png").stat().st_size > 0 and (tmp_path / "report.html").is_file()
    assert "Traceback" not in capsys.readouterr().err


def test_generate_out_inside_a_symlink_loop_is_one_sentence(store, tmp_path, capsys):
    uri, _, runs = store
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    assert generate.main([runs["good"], "--tracking-uri", uri, "--out", str(tmp_path / "loop" / "out")]) == 2
    assert "--out" in (line := _one_line(capsys)) and "symbolic links" in line, line


def test_duplicate_keys_are_refused_with_their_lines(tmp_path):
    text = yaml.safe_dump(tiny_sweep("dup"), sort_keys=False)
    (tmp_path / "dup.yaml").write_text(text + "training:\n  batch_size: 8\n")
    first = 1 + text.splitlines().index("training:")
    last = len(text.splitlines()) + 1
    with pytest.raises(spaces.SpecError) as refused:
        spaces.read(tmp_path / "dup.yaml")
    assert f"the key 'training' is given twice, at lines {first} and {last}" in str(refused.value)
    merged = "a: &base {x: 1}\nb: {<<: *base, x: 2}\n"  # a merge key may still be overridden
    assert yaml.load(merged, Loader=spaces.SpecLoader) == {"a": {"x": 1}, "b": {"x": 2}}
