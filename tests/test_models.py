"""The four networks, their losses, weight clipping and the gradient penalty, on CPU at tiny widths."""
import dataclasses
import math
import re

import pytest
import torch
from torch import nn

from trainables import losses, models
from trainables.config import FAMILIES, ModelConfig
from trainables.trainer import GANTrainer
from tests.builders import images, model_config, saved_and_loaded, trial_config


@pytest.mark.parametrize("size", [64, 128])
@pytest.mark.parametrize("family", FAMILIES)
def test_output_shapes(family, size):
    G, D = models.build(model_config(family, image_size=size))
    fake = G(torch.randn(3, 8))
    assert fake.shape == (3, 1, size, size)
    assert fake.abs().max() <= 1  # tanh out
    assert D(fake).shape == (3,)


def count_layers(net: nn.Module) -> int:
    """Convolution layers: the study describes its networks by this count."""
    return sum(isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)) for m in net.modules())


@pytest.mark.parametrize("family, layers", [("dcgan1", 5), ("dcgan2", 4), ("wgan_clip", 5), ("wgan_gp", 5)])
def test_layer_counts_follow_the_study(family, layers):
    G, D = models.build(model_config(family))
    assert count_layers(G) == layers and count_layers(D) == layers
    G, D = models.build(model_config(family, image_size=128))  # one more stage each
    assert count_layers(G) == layers + 1 and count_layers(D) == layers + 1


def test_dcgan2_has_two_dropouts_in_g_and_one_in_d_with_their_rates():
    G, D = models.build(model_config("dcgan2", dropout_g=0.4, dropout_d=0.2))
    assert [m.p for m in G.modules() if isinstance(m, nn.Dropout)] == [0.4, 0.4]
    assert [m.p for m in D.modules() if isinstance(m, nn.Dropout)] == [0.2]
    for family in ("dcgan1", "wgan_clip", "wgan_gp"):
        assert not any(isinstance(m, nn.Dropout) for net in models.build(model_config(family)) for m in net.modules())


@pytest.mark.parametrize("norm, present, absent", [("layer", nn.GroupNorm, nn.BatchNorm2d),
                                                   ("none", None, (nn.GroupNorm, nn.BatchNorm2d))])
def test_wgan_gp_critic_has_no_batch_norm(norm, present, absent):
    _, D = models.build(model_config("wgan_gp", critic_norm=norm))
    assert not any(isinstance(m, absent) for m in D.modules())
    if present:
        assert any(isinstance(m, present) for m in D.modules())


def test_inference_generates_in_eval_mode_and_restores_the_mode_even_on_error():
    generator = models.Generator(ModelConfig(family="dcgan2", latent_dim=8, width=4))
    with models.inference(generator) as g:
        assert not g.training and not torch.is_grad_enabled()
        assert torch.equal(g(torch.ones(2, 8)), g(torch.ones(2, 8))), "dropout is off"
    with pytest.raises(RuntimeError), models.inference(generator):
        raise RuntimeError("a failed generation")
    assert generator.training and torch.is_grad_enabled()
    with models.inference(generator.eval()):
        pass
    assert not generator.training, "an eval-mode generator stays in eval mode"


def test_wgan_gp_with_batch_norm_is_refused_in_one_sentence():
    with pytest.raises(ValueError, match="cannot use batch norm"):
        ModelConfig(family="wgan_gp", critic_norm="batch")


@pytest.mark.parametrize("family", FAMILIES)
def test_one_step_changes_both_networks_and_gives_finite_losses(family):
    trainer = GANTrainer(trial_config(family, steps_per_iteration=1), images(), torch.device("cpu"))
    before = [{k: v.clone() for k, v in net.state_dict().items()} for net in (trainer.G, trainer.D)]
    metrics = trainer.run_iteration()
    assert all(torch.isfinite(torch.tensor(metrics[k])) for k in ("loss/D", "loss/G"))
    assert ("wasserstein" in metrics) == family.startswith("wgan")
    assert ("loss/gp" in metrics) == (family == "wgan_gp")
    for net, old in zip((trainer.G, trainer.D), before):
        changed = [name for name, p in net.named_parameters() if not torch.equal(p, old[name])]
        assert changed, f"{family}: no weight of {type(net).__name__} moved"


def test_weight_clipping_keeps_every_critic_weight_inside_the_clip():
    clip = 0.005  # below the N(0, 0.02) initial weights, so clipping has work to do
    trainer = GANTrainer(trial_config("wgan_clip", clip_value=clip, lr_d=0.05), images(), torch.device("cpu"))
    assert max(p.abs().max().item() for p in trainer.D.parameters()) > clip
    trainer.run_iteration()
    weights = torch.cat([p.flatten() for p in trainer.D.parameters()])
    assert weights.abs().max().item() <= clip
    assert (weights.abs() == clip).any()  # the clip was active, not merely unneeded


def test_gradient_penalty_of_a_linear_critic_is_its_weight_norm_minus_one_squared():
    # D(x) = <w, x>: its gradient is w at every point, whatever the mixing weights
    critic = nn.Sequential(nn.Flatten(), nn.Linear(2 * 2, 1, bias=False))
    with torch.no_grad():
        critic[1].weight.copy_(torch.tensor([[0.5, -1.0, 2.0, 0.0]]))  # ||w|| = sqrt(5.25)
    real, fake = torch.randn(5, 1, 2, 2), torch.randn(5, 1, 2, 2)
    penalty = losses.gradient_penalty(critic, real, fake)
    assert penalty.item() == pytest.approx((5.25 ** 0.5 - 1) ** 2, rel=1e-6)


def test_gradient_penalty_of_a_quadratic_critic_matches_the_hand_computation():
    # D(x) = a/2 ||x||^2 has gradient a x, so the penalty is mean((a ||x_mix|| - 1)^2)
    class Quadratic(nn.Module):
        def forward(self, x):
            return 0.75 * (x ** 2).flatten(1).sum(1) / 2

    real, fake = torch.randn(6, 1, 3, 3), torch.randn(6, 1, 3, 3)
    penalty = losses.gradient_penalty(Quadratic(), real, fake, torch.Generator().manual_seed(3))
    eps = torch.rand(6, 1, 1, 1, generator=torch.Generator().manual_seed(3))
    mixed = eps * real + (1 - eps) * fake
    by_hand = ((0.75 * mixed.flatten(1).norm(dim=1) - 1) ** 2).mean()
    assert penalty.item() == pytest.approx(by_hand.item(), rel=1e-6)


def test_gradient_penalty_pulls_the_critic_gradient_towards_norm_one():
    # the penalty must be differentiable in the critic's weights (create_graph), or it trains nothing
    critic = nn.Sequential(nn.Flatten(), nn.Linear(4, 1, bias=False))
    penalty = losses.gradient_penalty(critic, torch.randn(3, 1, 2, 2), torch.randn(3, 1, 2, 2))
    penalty.backward()
    assert critic[1].weight.grad is not None and critic[1].weight.grad.abs().sum() > 0


def test_image_size_must_match_the_dataset():
    with pytest.raises(ValueError, match=r"mel images are 64 x 64 .* model.image_size is 128"):
        GANTrainer(trial_config("dcgan1", image_size=128), images(size=64), torch.device("cpu"))


def test_search_keys_reach_the_networks():
    cfg = trial_config("dcgan1")
    wide = dataclasses.replace(cfg.model, width=8, latent_dim=16)
    G, D = models.build(wide)
    assert G.net[0].in_channels == 16 and D.net[0].out_channels == 8


STUDY = {  # DESIGN.md's table and the study's experiments
    "dcgan1": {"optimizer": "adam", "critic_steps": 1, "epochs": 7, "max_segments": None},
    "dcgan2": {"optimizer": "adam", "critic_steps": 1, "epochs": 6, "max_segments": 60000},
    "wgan_clip": {"optimizer": "rmsprop", "critic_steps": 5, "clip_value": 0.01, "epochs": 5, "max_segments": 60000},
    "wgan_gp": {"optimizer": "adam", "critic_steps": 5, "gp_lambda": 10.0, "epochs": 5, "max_segments": 60000},
}


@pytest.mark.parametrize("family", FAMILIES)
def test_each_family_search_space_is_centred_on_the_study(family):
    from platform.spec import spaces
    from tests.helpers import ROOT
    spec = spaces.load(ROOT / "search_spaces" / f"{family}.yaml")
    assert spec.model.family == family and spec.model.latent_dim == 100 and spec.model.image_size == 64
    t = spec.training
    assert (t.batch_size, t.lr_g, t.lr_d) == (64, 2e-4, 2e-4)
    if t.optimizer == "adam":
        assert t.beta1 == 0.5
    for key, value in STUDY[family].items():
        assert getattr(t, key) == value, key
    assert spec.dataset.mel.n_mels == spec.dataset.mel.frames == spec.model.image_size
    for path, domain in spec.search.items():  # every searched range contains the study's value
        section, key = path.split(".")
        centre = getattr(getattr(spec, section), key)
        if domain.kind in ("loguniform", "uniform"):
            assert domain.values[0] <= centre <= domain.values[1], path
        else:
            assert centre in domain.values, path


@pytest.mark.parametrize("family", FAMILIES)
def test_non_square_images_train_and_resume_from_a_checkpoint(family):
    # the HiFi-GAN preset's 80 x 432, at tiny width: a 5 x 27 core, the stages of the 64 x 64 nets
    cfg = dataclasses.replace(trial_config(family, steps_per_iteration=2),
                              model=model_config(family, image_size=[80, 432]))
    g = torch.Generator().manual_seed(0)
    data = (torch.rand(8, 1, 80, 432, generator=g) * 2 - 1).half()
    trainer = GANTrainer(cfg, data, torch.device("cpu"))
    metrics = trainer.run_iteration()
    assert math.isfinite(metrics["loss/D"]) and math.isfinite(metrics["loss/G"]) and trainer.step == 2
    assert models.core(cfg.model) == (5, 27)
    restored = GANTrainer(cfg, data, torch.device("cpu"))
    restored.load_state_dict(saved_and_loaded(trainer.state_dict()))
    z = torch.randn(2, 8)
    trainer.G.eval(), restored.G.eval()
    out = restored.G(z)
    assert out.shape == (2, 1, 80, 432) and torch.equal(out, trainer.G(z))
    assert restored.D(out).shape == (2,)


@pytest.mark.parametrize("size, problem", [([80, 430], "multiple of 16"), ([48, 432], "at least 64"),
                                           ([80], "two sides"), (96, "one of (64, 128) or a [bands, frames] pair")])
def test_image_size_pairs_need_sides_the_stages_can_halve(size, problem):
    with pytest.raises(ValueError, match=re.escape(problem)):
        ModelConfig(image_size=size)


def test_square_sizes_keep_their_shape_and_pairs_become_tuples():
    assert ModelConfig().shape == (64, 64) and ModelConfig(image_size=128).shape == (128, 128)
    assert ModelConfig(image_size=[80, 432]).image_size == (80, 432)
