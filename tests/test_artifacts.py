"""The pieces of a trial's MLflow artifacts, without Ray: the dB scale of the mel figures,
the WAVs, the metric history and the sweep's results table."""
import csv
from pathlib import Path
import tempfile

import numpy as np
import pytest
import soundfile
from mlflow import MlflowClient

from data import mel
from data.spec import DatasetSpec, MelParams, SegmentParams
from trainables.artifacts import dataset_info, write_wav
from trainables.figures import loss_figure, mel_figure, to_db

SPEC = DatasetSpec(mel=MelParams(sample_rate=16000, n_mels=64, frames=64), segment=SegmentParams(seconds=5.0))
INFO = dataset_info({"fingerprint": "f" * 16, "scaling": mel.scaling(SPEC),
                     "spec": {"mel": vars(SPEC.mel), "segment": vars(SPEC.segment)}})


def test_db_scale_undoes_the_manifest_scaling():
    rng = np.random.default_rng(0)
    waves = rng.normal(size=(2, 5 * 16000)).astype(np.float32)
    image = mel.to_image(waves, SPEC)
    db = to_db(image, INFO["scaling"])
    assert db.min() >= -SPEC.mel.top_db and db.max() == pytest.approx(0.0, abs=1e-3)  # each segment's peak is 0 dB
    assert to_db(np.array([-1.0, 0.0, 1.0]), INFO["scaling"]).tolist() == [-80.0, -40.0, 0.0]


def test_mel_figure_has_time_frequency_axes_and_a_db_colour_bar(tmp_path):
    images = np.linspace(-1, 1, 3 * 64 * 64).reshape(3, 64, 64)
    fig = mel_figure(images, INFO, columns=2, title="t")
    panels = [ax for ax in fig.axes if ax.images]
    colour_bar = [ax for ax in fig.axes if "dB" in ax.get_ylabel()]
    assert len(panels) == 3 and len(colour_bar) == 1
    assert panels[-1].get_xlabel() == "time (s)" and "Hz" in panels[0].get_ylabel()
    assert panels[0].images[0].get_extent()[:2] == [0, 5.0]
    assert panels[0].images[0].get_clim() == (-80.0, 0.0)
    fig.savefig(tmp_path / "grid.png")
    assert (tmp_path / "grid.png").read_bytes()[:4] == b"\x89PNG"


def test_wav_has_the_dataset_rate_and_segment_length(tmp_path):
    image = mel.to_image(np.random.default_rng(1).normal(size=(1, 80000)).astype(np.float32), SPEC)[0]
    write_wav(tmp_path / "a.wav", image, INFO, n_iter=4)
    audio, rate = soundfile.read(tmp_path / "a.wav")
    assert rate == 16000 and len(audio) == 80000 and 0 < np.abs(audio).max() <= 1


@pytest.fixture
def store(tmp_path):
    """A parent run with two trial runs, as a sweep leaves them (no Ray)."""
    from trainables.mlflow_run import TrackingTarget
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    experiment = client.create_experiment("e", artifact_location=str(tmp_path / "mlruns"))
    parent = client.create_run(experiment, run_name="sweep", tags={"sweep": "parent"}).info.run_id
    children = []
    for n, fids in enumerate(([9.0, 4.0, 6.0], [5.0, 5.0, 5.0])):
        run = client.create_run(experiment, run_name=f"trial{n}",
                                tags={"mlflow.parentRunId": parent, "tune.trial_id": f"x_{n:05d}"}).info.run_id
        client.log_param(run, "model.family", ["dcgan1", "wgan_clip"][n])
        for step, fid in zip((10, 20, 30), fids):
            client.log_metric(run, "fid", fid, step=step)
            client.log_metric(run, "loss/D", 1.0 / step, step=step)
        if n == 0:  # the second is left RUNNING, as by a trial Tune stopped before it ended its run
            client.set_terminated(run)
        children.append(run)
    return client, TrackingTarget(uri, experiment, parent), children


def test_metric_history_keeps_the_last_value_of_a_repeated_step(store):
    from trainables.mlflow_run import metric_history
    client, _, children = store
    client.log_metric(children[0], "fid", 3.5, step=20)  # an iteration redone after a restore
    history = metric_history(client, children[0], ("fid", "loss/G"))
    assert history == {"fid": [(10, 9.0), (20, 3.5), (30, 6.0)]}


def test_results_table_and_loss_curves_on_sweep_end(store):
    from platform.driver import tracking
    client, target, children = store
    best = tracking.finish_sweep(target, {})
    assert best["run_id"] == children[0] and best["best_fid"] == 4.0  # the verdict's winner
    path = client.download_artifacts(target.parent_run_id, "results.csv", tempfile.mkdtemp())
    rows = list(csv.DictReader(open(path)))
    assert [r["run_id"] for r in rows] == children  # best first: 4.0 then 5.0
    assert [(r["best_fid"], r["final_fid"]) for r in rows] == [("4.0", "6.0"), ("5.0", "5.0")]
    assert [r["model.family"] for r in rows] == ["dcgan1", "wgan_clip"]
    assert all(r["status"] == "FINISHED" for r in rows) and rows[1]["trial_id"] == "x_00001"
    for run in children:  # no worker drew them: the driver did
        assert "loss_curves.png" in [a.path for a in client.list_artifacts(run)]


def test_loss_figure_draws_wasserstein_when_logged():
    fig = loss_figure({"loss/D": [(1, 0.5)], "loss/G": [(1, 0.7)], "wasserstein": [(1, 0.1)], "fid": [(1, 9.0)]})
    assert [line.get_label() for line in fig.axes[0].lines] == ["loss/D", "loss/G", "wasserstein"]


@pytest.mark.parametrize("module", ["generate", "report"])
def test_commands_refuse_a_store_that_is_not_there(module, tmp_path, capsys):
    import importlib
    main = importlib.import_module(f"platform.{module}").main
    assert main(["x", "--tracking-uri", f"sqlite:///{tmp_path / 'none.db'}", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    # generate's first line says what it looks for at once; the error is one line after it
    *before, last = err.splitlines()
    assert last.startswith("error: there is no MLflow store at") and len(before) == (module == "generate"), err
    assert not (tmp_path / "none.db").exists() and not (tmp_path / "o").exists()


@pytest.mark.parametrize("columns, n", [(1, 1), (4, 16)])
def test_a_long_title_fits_its_image(columns, n):
    """generate's per-sample PNG (one mel, 480 px at 100 dpi) and a trial's grid, titled with a long trial name."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    title = "dcgan1 #3 lr_g=3.0e-4 lr_d=2.6e-4 beta1=0.47 width=16, step 640, seed 0, #0, best checkpoint"
    fig = mel_figure(np.zeros((n, 64, 64)), INFO, columns=columns, title=title)
    renderer = FigureCanvasAgg(fig).get_renderer()
    fig.draw(renderer)
    box, page = fig._suptitle.get_window_extent(renderer), fig.bbox
    assert page.x0 <= box.x0 and box.x1 <= page.x1 and box.y1 <= page.y1, (box, page)
    assert fig._suptitle.get_text().replace("\n", " ") == title


class _Run:
    """What TrialArtifacts asks of a trial's run: its logged artifacts, by folder."""
    run_id, run_name = "r", "dcgan1 #0"

    def __init__(self):
        self.logged = []

    def tags(self):
        return {"tune.trial_id": "t"}

    def log_dict(self, *args):
        pass

    def metric_history(self, keys):
        return {}

    def log_figure(self, figure, name):
        self.logged.append(name)

    def log_artifact(self, path, folder):
        self.logged.append(f"{folder}/{Path(path).name}")


def test_samples_are_logged_at_the_step_each_new_best_fid_is_reached(tmp_path, monkeypatch):
    """A trial is scored at its lowest fid: that step has its grid and sound for the report,
    even when it is neither the first, an `artifacts_every`-th nor the last evaluation."""
    import torch
    from trainables import artifacts
    from trainables.config import EvaluationConfig, ModelConfig, TrainingConfig, TrialConfig
    monkeypatch.setattr(artifacts, "read_manifest", lambda path: {
        "fingerprint": "f" * 16, "scaling": INFO["scaling"], "spec": INFO["spec"]})
    cfg = TrialConfig(model=ModelConfig(), training=TrainingConfig(checkpoint_every=100),
                      evaluation=EvaluationConfig(grid_images=2, audio_clips=1, griffin_lim_iters=2,
                                                  artifacts_every=100, checkpoint_artifacts=False))
    run = _Run()
    logged = artifacts.TrialArtifacts(run, cfg, "unused", torch.zeros(4, 8), resumed=False)
    # the generator's output: one 64 x 64 mel per latent
    monkeypatch.setattr(artifacts, "generate", lambda G, z: np.zeros((len(z), 64, 64), dtype=np.float32))

    class Trainer:
        G, finished, iteration, step = None, False, 0, 0
    trainer = Trainer()
    fids = {1: 50.0, 2: 40.0, 3: 45.0, 4: 30.0, 5: 35.0, 6: 38.0}  # best at 4, neither first nor last
    for iteration, fid in fids.items():
        trainer.iteration, trainer.step, trainer.finished = iteration, iteration * 10, iteration == 6
        logged.after_iteration(trainer, {"fid": fid, "loss/D": 1.0, "loss/G": 1.0}, {})
    grids = sorted(p for p in run.logged if p.startswith("samples/"))
    assert grids == [artifacts.sample_name(step) for step in (10, 20, 40, 60)], grids
    assert artifacts.audio_name(40, 0) in run.logged


def test_checkpoints_go_to_mlflow_once_per_kind_and_samples_only_at_evaluated_steps(monkeypatch):
    """Tune keeps a checkpoint every checkpoint_every iterations; the run gets the best at each
    new best fid and the last once, at the trial's end; a trial stopped before its end has no
    last. Sample grids and audio come with evaluated iterations only."""
    import torch
    from trainables import artifacts
    from trainables.config import EvaluationConfig, ModelConfig, TrainingConfig, TrialConfig
    monkeypatch.setattr(artifacts, "read_manifest", lambda path: {
        "fingerprint": "f" * 16, "scaling": INFO["scaling"], "spec": INFO["spec"]})
    monkeypatch.setattr(artifacts, "generate", lambda G, z: np.zeros((len(z), 64, 64), dtype=np.float32))
    saved = []

    class Checkpoint:  # the trainer's state is beside the point: count the files written
        def __init__(self, state, *args, **kwargs):
            self.state = state

        def save(self, path):
            saved.append(self.state)
            Path(path).write_bytes(b"state")
    monkeypatch.setattr(artifacts, "Checkpoint", Checkpoint)
    cfg = TrialConfig(model=ModelConfig(), training=TrainingConfig(checkpoint_every=1),
                      evaluation=EvaluationConfig(grid_images=2, audio_clips=0, artifacts_every=100))

    class Trainer:
        G, finished, iteration, step = None, False, 0, 0

        def state_dict(self):
            return self.step

    def trial(fids: dict, length: int) -> list[str]:
        run, trainer = _Run(), Trainer()
        logged = artifacts.TrialArtifacts(run, cfg, "unused", torch.zeros(4, 8), resumed=False)
        for iteration in range(1, max(fids) + 1):
            trainer.iteration, trainer.step, trainer.finished = iteration, iteration * 10, iteration == length
            logged.after_iteration(trainer, {"loss/D": 1.0, "loss/G": 1.0, **({"fid": fids[iteration]}
                                                                               if iteration in fids else {})}, {})
        return run.logged

    # evaluated at 2, 4 and 8 (ASHA's rungs), a new best at 2 and 8: 8 iterations, each a Tune checkpoint
    saved.clear()
    logged = trial({2: 50.0, 4: 60.0, 8: 40.0}, length=8)
    best, last = (f"{artifacts.CHECKPOINTS[k]}/state.pt" for k in ("best", "last"))
    assert logged.count(best) == 2 and logged.count(last) == 1, logged
    assert saved == [20, 80], "one file at each step it is logged at, for both kinds"
    assert sorted(p for p in logged if p.startswith("samples/")) == \
           [artifacts.sample_name(s) for s in (20, 80)], "the first, the new best and the last evaluation"
    # stopped by ASHA after its first rung: its best, no last
    logged = trial({2: 50.0}, length=8)
    assert logged.count(best) == 1 and last not in logged, logged


@pytest.mark.slow  # seconds: generate in this process, through MLflow's store
def test_generate_from_a_trial_stopped_before_its_end_takes_its_best_and_says_so(store, tmp_path, capsys):
    """A trial ASHA stopped has a best checkpoint and no last (trainables/artifacts.py):
    `generate` works from it, and `--checkpoint last` says it takes the best instead."""
    import dataclasses

    import torch
    from platform import generate
    from tests.builders import images, trial_config
    from trainables.checkpoint import CHECKPOINT_FILE, Checkpoint
    from trainables.trainer import GANTrainer
    client, target, (stopped, _) = store
    cfg = trial_config("dcgan1")
    trainer = GANTrainer(cfg, images(count=8), torch.device("cpu"))
    saved = tmp_path / "best" / CHECKPOINT_FILE
    saved.parent.mkdir()
    Checkpoint(trainer.state_dict(), dataclasses.asdict(cfg), stopped, dataset=INFO).save(saved)
    client.log_artifact(stopped, str(saved), "checkpoints/best")
    for which in ("best", "last"):
        out = tmp_path / which
        assert generate.main([stopped, "--checkpoint", which, "-n", "1", "--griffin-lim-iters", "1",
                              "--tracking-uri", target.tracking_uri, "--out", str(out)]) == 0
        err = capsys.readouterr().err
        assert (out / "sample_000.wav").exists() and (out / "grid.png").exists()
        assert ("has no last checkpoint: its best instead" in err) == (which == "last"), err


def test_a_worker_voices_once_before_its_first_evaluation_and_leaves_the_generators_alone(monkeypatch):
    """warm_up_voice: the first WAV's imports move to the worker's start-up, once per vocoder,
    with no draw from the global generators a trial's training and resume depend on."""
    import torch
    from data import mel as mel_module
    from trainables import artifacts
    monkeypatch.setattr(artifacts, "_voiced_by", set())
    calls = []
    real = mel_module.to_audio
    monkeypatch.setattr(mel_module, "to_audio", lambda *a, **k: calls.append(k) or real(*a, **k))
    np.random.seed(5)
    torch.manual_seed(5)
    numpy_state, torch_state = np.random.get_state()[1].copy(), torch.random.get_rng_state().clone()
    for _ in range(2):
        artifacts.warm_up_voice(INFO, "griffin-lim")
    assert len(calls) == 1 and calls[0]["seed"] == 0
    assert (np.random.get_state()[1] == numpy_state).all() and torch.equal(torch.random.get_rng_state(), torch_state)
