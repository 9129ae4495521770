"""The VAE loss, normalised as in the original README, plus the raw terms in nats.

For one image x with D = C*H*W pixels and a latent of z_dim dimensions:

    R-loss   = sum((x - recon)^2) / D                 (mean squared error per pixel)
    KLD-loss = KL(q(z|x) || N(0, I)) / z_dim          (nats per latent dimension)
    loss     = R-loss + beta * KLD-loss

each averaged over the batch. KL is the closed form of Kingma & Welling (2014), appendix B:
KL = -1/2 * sum(1 + logvar - mu^2 - exp(logvar)).

Units. Every value here is *per image*. The original README's table appears to report sums over
a batch of 64, so multiply R-loss and KLD-loss by the batch size to compare with it
(`sse` and `kl` are the unnormalised per-image terms: sse = R-loss * D, kl = KLD-loss * z_dim).

`sigma-vae` (Rybkin et al., 2021) replaces the fixed trade-off by a Gaussian decoder whose shared
variance is set to its analytic optimum sigma^2 = MSE of the batch; its loss is the negative ELBO
in nats per image divided by D, and `beta` is then the KL weight (1 for the ELBO; less only
during a KL warm-up). `free_bits` (Kingma et al., 2016) floors each dimension's
batch-averaged KL at lambda nats.

`beta` may be a tensor of one weight per image (B,): the loss-conditional training of
vae/conditional.py, where loss = mean over the batch of (R-loss_i + beta_i * KLD-loss_i), each
image's term times `weight_i` where given (vae/conditional.py loss_weights).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass
class LossTerms:
    loss: torch.Tensor
    """what is minimised (a scalar)"""
    r_loss: torch.Tensor
    """SSE / D, batch mean"""
    kld_loss: torch.Tensor
    """KL / z_dim, batch mean"""
    sse: torch.Tensor
    """sum of squared error per image, batch mean"""
    kl: torch.Tensor
    """KL in nats per image, batch mean"""
    sse_i: torch.Tensor | None = None
    """sum of squared error of each image (B,): what the batch means come from, for the standard
    errors of vae/measure.py (already computed; nothing extra per step)"""
    kl_dims: torch.Tensor | None = None
    """KL of each image and latent dimension in nats (B x z_dim), likewise"""


def kl_per_dim(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, 1)) per sample and dimension, in nats (B x z_dim)."""
    return -0.5 * (1 + logvar - mu.pow(2) - logvar.exp())


def vae_loss(recon: torch.Tensor, x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor,
             beta: float | torch.Tensor, kind: str = "beta", free_bits: float = 0.0,
             weight: torch.Tensor | None = None) -> LossTerms:
    recon, mu, logvar = recon.float(), mu.float(), logvar.float()  # loss in fp32 under autocast
    d, z_dim = x[0].numel(), mu.shape[1]
    sse_i = (x - recon).pow(2).flatten(1).sum(1)  # (B,)
    sse = sse_i.mean()
    kl_full = kl_per_dim(mu, logvar)  # B x z_dim
    kl_dims = kl_full.mean(0)  # batch-averaged, per dimension
    kl = kl_dims.sum()
    kl_objective = kl_dims.clamp(min=free_bits).sum() if free_bits > 0 else kl
    if torch.is_tensor(beta) and beta.dim() == 1:  # per-image weights (loss-conditional training)
        per_image = sse_i / d + beta * kl_full.sum(1) / z_dim
        loss = (per_image if weight is None else per_image * weight).mean()
    elif kind == "sigma-vae":
        # Gaussian NLL with sigma^2 = MSE (the optimum, detached as in the paper's analytic
        # variant): D/2 * log(2*pi*sigma^2) + SSE / (2*sigma^2)
        var = (sse / d).detach().clamp(min=1e-6)
        nll = 0.5 * d * torch.log(2 * math.pi * var) + sse / (2 * var)
        loss = (nll + beta * kl_objective) / d
    else:
        loss = sse / d + beta * kl_objective / z_dim
    return LossTerms(loss=loss, r_loss=sse / d, kld_loss=kl / z_dim, sse=sse, kl=kl, sse_i=sse_i, kl_dims=kl_full)

