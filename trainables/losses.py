"""The two GAN objectives of the study, and the two ways of keeping a critic 1-Lipschitz.

BCE (DCGAN 1 and 2): the discriminator classifies real against fake; the generator uses
the non-saturating loss -log D(G(z)), which is what "minus the discriminator's loss on
generated images" means in practice (the DCGAN paper, the PyTorch tutorial).
Wasserstein (both WGANs): the critic maximises E[f(real)] - E[f(fake)], the generator
maximises E[f(fake)]. The estimate E[f(real)] - E[f(fake)] is reported as `wasserstein`.
"""
import torch
from torch import nn
from torch.nn import functional as F


def bce_critic_loss(D: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    # two passes, as in the DCGAN tutorial: batch norm sees all-real and all-fake batches
    out_real, out_fake = D(real).float(), D(fake).float()
    return (F.binary_cross_entropy_with_logits(out_real, torch.ones_like(out_real))
            + F.binary_cross_entropy_with_logits(out_fake, torch.zeros_like(out_fake)))


def bce_generator_loss(D: nn.Module, fake: torch.Tensor) -> torch.Tensor:
    out = D(fake).float()
    return F.binary_cross_entropy_with_logits(out, torch.ones_like(out))


def wasserstein_estimate(D: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    return D(real).float().mean() - D(fake).float().mean()


def wasserstein_generator_loss(D: nn.Module, fake: torch.Tensor) -> torch.Tensor:
    return -D(fake).float().mean()


def gradient_penalty(D: nn.Module, real: torch.Tensor, fake: torch.Tensor,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """E[(||grad_x D(x)||_2 - 1)^2] at random points x between real and fake samples."""
    eps = torch.rand(len(real), 1, 1, 1, device=real.device, generator=generator)
    mixed = (eps * real.float() + (1 - eps) * fake.float()).requires_grad_(True)
    (grad,) = torch.autograd.grad(D(mixed).float().sum(), mixed, create_graph=True)
    return ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()


@torch.no_grad()
def clip_weights(D: nn.Module, clip: float) -> None:
    """Weight clipping (Arjovsky et al.): every critic parameter into [-clip, clip]."""
    for p in D.parameters():
        p.clamp_(-clip, clip)
