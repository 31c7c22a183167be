"""The training loop without Tune: exact resume from a saved state, epochs, divergence."""
import dataclasses
import math

import pytest
import torch

from tests.builders import images, saved_and_loaded, trial_config
from trainables.config import FAMILIES
from trainables.trainer import GANTrainer, TrainingDiverged

CPU = torch.device("cpu")


@pytest.mark.parametrize("family", FAMILIES)
def test_a_restored_trainer_continues_with_the_same_losses_as_one_that_never_stopped(family):
    # 10 images and batch 4: epochs roll over mid-iteration, so the sampler's position matters;
    # dcgan2's dropout and wgan_gp's mixing weights draw random numbers every step
    cfg = trial_config(family, iterations=4, steps_per_iteration=2, deterministic=True)
    data = images(count=10)

    straight = GANTrainer(cfg, data, CPU)
    expected = [straight.run_iteration() for _ in range(4)]

    first = GANTrainer(cfg, data, CPU)
    got = [first.run_iteration() for _ in range(2)]
    state = saved_and_loaded(first.state_dict())
    torch.manual_seed(12345)  # whatever ran in between must not matter
    resumed = GANTrainer(cfg, data, CPU)
    resumed.load_state_dict(state)
    got += [resumed.run_iteration() for _ in range(2)]

    drop = "throughput/img_s"
    assert [{k: v for k, v in m.items() if k != drop} for m in got] == \
        [{k: v for k, v in m.items() if k != drop} for m in expected]
    for a, b in ((straight.G, resumed.G), (straight.D, resumed.D)):
        for (name, x), y in zip(a.state_dict().items(), b.state_dict().values()):
            assert torch.equal(x, y), f"{family}: {name} differs after resume"
    assert resumed.finished and resumed.step == 8


def test_without_the_saved_random_state_the_losses_differ():
    # the resume test above could pass by accident if nothing random happened in a step
    cfg = trial_config("dcgan2", iterations=2, steps_per_iteration=2, deterministic=True)
    straight = GANTrainer(cfg, images(count=10), CPU)
    expected = [straight.run_iteration()["loss/D"] for _ in range(2)]
    first = GANTrainer(cfg, images(count=10), CPU)
    first.run_iteration()
    state = first.state_dict()
    del state["rng"], state["noise"]
    resumed = GANTrainer(cfg, images(count=10), CPU)
    resumed.load_state_dict({**state, "rng": resumed.state_dict()["rng"], "noise": resumed.noise.get_state()})
    assert resumed.run_iteration()["loss/D"] != expected[1]


def test_epochs_end_the_training_and_are_reported():
    # 12 images, batch 4: 3 batches an epoch; 2 epochs are 6 generator steps (critic_steps 1)
    cfg = trial_config("dcgan1", epochs=2.0, iterations=None, steps_per_iteration=4)
    trainer = GANTrainer(cfg, images(), CPU)
    reports = []
    while not trainer.finished:
        reports.append(trainer.run_iteration())
    assert [r["step"] for r in reports] == [4, 6]
    # the length the driver resolves for the sweep from the dataset's size is the one it ran
    from platform.spec.tune_space import SweepLengths
    assert trainer.length == len(reports) == SweepLengths(12, 0).of({"training": dataclasses.asdict(cfg.training)})
    assert reports[-1]["epoch"] == pytest.approx(2.0)


def test_wgan_epochs_count_the_critic_batches():
    trainer = GANTrainer(trial_config("wgan_gp", epochs=2.0, iterations=None, steps_per_iteration=10), images(), CPU)
    assert trainer.total_steps == 3  # 6 batches of reals at 2 critic steps per generator step


def test_non_finite_losses_stop_the_trainer_with_the_step_and_the_values():
    trainer = GANTrainer(trial_config("dcgan1", steps_per_iteration=3), images(), CPU)
    trainer.run_iteration()
    with torch.no_grad():
        trainer.D.net[0].weight[0, 0, 0, 0] = math.nan  # a diverged weight
    with pytest.raises(TrainingDiverged, match=r"losses are not finite .* up to step 6 \(loss/D=nan"):
        trainer.run_iteration()


def test_an_absurd_learning_rate_diverges_and_is_caught():
    # the same thing, reached the way a sweep reaches it: a learning rate far out of range
    trainer = GANTrainer(trial_config("wgan_clip", optimizer="adam", lr_d=1e30, lr_g=1e30, clip_value=1e30,
                                      steps_per_iteration=5, iterations=4), images(), CPU)
    with pytest.raises(TrainingDiverged):
        while not trainer.finished:
            trainer.run_iteration()
