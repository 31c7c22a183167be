"""The dry run states a sweep's cost: steps, images, evaluations, data, time and a resources warning."""
import contextlib
import dataclasses
import io
from pathlib import Path

import pytest

from platform.driver import calibration, cost
from platform.spec import spaces
from tests.builders import images, trial_config
from trainables.trainer import GANTrainer

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _storage(tmp_path, monkeypatch):
    monkeypatch.setenv("PLATFORM_STORAGE_ROOT", str(tmp_path / "runs"))


@pytest.mark.parametrize("family,training", [
    ("dcgan1", {"epochs": 2.5}),
    ("wgan_gp", {"epochs": 3, "data_fraction": 0.5}),
    ("dcgan2", {"iterations": 3}),
])
def test_the_plan_is_the_length_the_trainer_runs(family, training, tmp_path):
    cfg = trial_config(family, **{"iterations": None, **training})
    spec = spaces.SweepSpec(name="t", model=cfg.model, training=cfg.training, evaluation=cfg.evaluation)
    (plan,) = cost.plan(spec, 40)
    trainer = GANTrainer(cfg, images(plan.rows), __import__("torch").device("cpu"))
    assert (plan.steps, plan.iterations) == (trainer.total_steps, trainer.length)
    assert plan.evaluated[-1] == plan.iterations  # a trial's last iteration always carries fid


def test_the_study_file_states_each_experiments_cost_and_the_missing_gpu(monkeypatch):
    monkeypatch.setenv("PLATFORM_CALIBRATION", "0")
    from platform import sweep
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert sweep.main([str(ROOT / "search_spaces/paper.yaml"), "--dry-run"]) == 0
    text = out.getvalue()
    # 12,000 synthetic segments; DCGAN 1 on all of them for 7 epochs of 187 batches
    assert "# cost: dataset 12,000 segments of 64 x 64 (the synthetic generator's settings), 0.09 GiB" in text
    assert "dcgan1_all_7ep: 1 trial(s) x 1,309 steps" in text and "83,776 images" in text
    assert "dcgan2_30k_7ep: 1 trial(s) x 147 steps" in text and "1,380 rows" in text
    assert text.count("on 2048 samples") == 6 and "(time not estimated" in text
    assert "# warning: tune.resources_per_trial.gpu is 0.16 but this machine has no GPUs" in text
    assert "--set tune.resources_per_trial.gpu=0" in text


@pytest.mark.parametrize("name", sorted(p.name for p in (ROOT / "search_spaces").glob("*.yaml")))
def test_every_shipped_file_states_its_cost(name, monkeypatch):
    monkeypatch.setenv("PLATFORM_CALIBRATION", "0")
    spec = spaces.load(ROOT / "search_spaces" / name, [])
    lines = cost.dry_run_lines(spec, measure=False)
    assert lines[0].startswith("cost: dataset ")
    if cost.dataset_segments(spec)[0] is not None:
        assert all(" steps (" in line and "fid at " in line for line in lines[1:1 + max(1, len(spec.experiments))])


def test_time_comes_from_a_measurement_cached_per_machine(tmp_path, monkeypatch):
    cfg = trial_config("dcgan1")
    measured = calibration.Calibration(str(tmp_path), "cpu", 1)
    seconds = measured.step_seconds(cfg.model, dataclasses.replace(cfg.training, batch_size=32))
    small, large = (measured.step_seconds(cfg.model, dataclasses.replace(cfg.training, batch_size=b))
                    for b in calibration.STEP_BATCHES)
    per_image = max(0.0, (large - small) / (12 - 4))  # the line through batches 4 and 12, to 32
    assert 0 < small and seconds == pytest.approx(large + per_image * (32 - 12))
    monkeypatch.setattr(calibration.Calibration, "_time_steps", lambda *a: pytest.fail("measured again"))
    again = calibration.Calibration(str(tmp_path), "cpu", 1)
    assert again.step_seconds(cfg.model, dataclasses.replace(cfg.training, batch_size=32)) == seconds
    other = calibration.Calibration(str(tmp_path), "cpu", 2)  # another thread count is another setting
    with pytest.raises(pytest.fail.Exception, match="measured again"):
        other.step_seconds(cfg.model, cfg.training)


def test_a_dry_run_with_time_says_where_it_was_measured(tmp_path, monkeypatch):
    spec = spaces.load(ROOT / "search_spaces/quickstart.yaml", ["evaluation.embedding=mel-stats"])
    monkeypatch.setattr(calibration.Calibration, "_time_steps", lambda self, model, training: 0.01)
    monkeypatch.setattr(calibration.Calibration, "_time_embedding", lambda self, evaluation, spec: 0.001)
    lines = cost.dry_run_lines(spec)
    assert any("about" in line and "a trial" in line for line in lines[1:])
    assert any(line.startswith("  in all: ") and "of wall" in line for line in lines)
    assert any("times measured on this machine's CPU" in line for line in lines)
