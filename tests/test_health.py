"""Degenerate trials are told apart from healthy ones (trainables/health.py)."""
import torch

from tests.builders import images, trial_config
from trainables import health
from trainables.trainer import GANTrainer


def _verdicts(lr: float, iterations: int = 6) -> list[str]:
    trainer = GANTrainer(trial_config("dcgan1", iterations=iterations, steps_per_iteration=10, lr_g=lr, lr_d=lr),
                         images(count=12), torch.device("cpu"))
    verdicts = []
    for _ in range(iterations):
        metrics = trainer.run_iteration()
        verdicts.append(health.verdict(health.assess(metrics, trainer.loss_ranges, trainer.wasserstein)))
    return verdicts


def test_learning_rates_of_10_collapse_the_discriminator_and_the_study_rate_does_not():
    collapsed = _verdicts(10.0)
    assert collapsed[0] == "ok" and collapsed[-1] == "d_collapsed", collapsed
    assert set(_verdicts(2e-4)) == {"ok"}


def test_each_state_from_its_own_signal():
    moving = {"loss/D": 0.4, "loss/G": 0.5}
    assert health.assess({"loss/D": 1.2, "loss/G": 0.8}, moving, wasserstein=False) == {
        "d_collapsed": False, "constant_losses": False, "mode_collapse": False}
    stuck = health.assess({"loss/D": 3.0, "loss/G": 22443.7}, {"loss/D": 0.0, "loss/G": 0.0}, wasserstein=True)
    assert health.verdict(stuck) == "constant_losses"
    # a WGAN critic's loss near 0 is no collapse; one step cannot be judged constant
    assert health.verdict(health.assess({"loss/D": 0.0, "loss/G": 1.0}, {}, wasserstein=True)) == "ok"
    collapsed = {"loss/D": 1.0, "loss/G": 1.0, "coverage": 0.02, "density": 1.4}
    assert health.verdict(health.assess(collapsed, moving, wasserstein=False)) == "mode_collapse"
    early = {**collapsed, "density": 0.0}  # fakes far from everything: not yet trained, not collapsed
    assert health.verdict(health.assess(early, moving, wasserstein=False)) == "ok"
    assert health.metrics(stuck) == {"health/d_collapsed": 0.0, "health/constant_losses": 1.0,
                                     "health/mode_collapse": 0.0}

