"""A β-conditional VAE: one network for a whole range of betas (loss-conditional training).

    from vae.conditional import ConditionalVAE
    model = ConditionalVAE(channels=3, height=32, width=32, z_dim=100, beta_range=(0.005, 0.1))
    recon, mu, logvar = model(x, beta)          # beta: (B,) one weight per image
    at = model.at(0.01)                         # a VAE-like view: encode, decode, sample, forward(x)

Dosovitskiy & Djolonga, "You Only Train Once: Loss-Conditional Training of Deep Networks"
(ICLR 2020): train with the loss weight drawn per example and fed to the network, so that one
model answers every weight. As in their VAE code (google-research/yoto), the conditioning is FiLM
(Perez et al., 2018): an MLP with one hidden layer of 512 units maps log beta to a per-channel
scale and shift after each conv block of encoder and decoder, scale = 1 + 0.1*MLP, shift =
0.1*MLP, so that a fresh network starts close to an unconditioned one. Beta is drawn per image,
log-uniform over the training range (`sample_betas`).

The rest of the package sees a conditional model at one beta through `at(beta)`: the same
encode/decode/sample/forward as `vae.model.VAE`, so the losses, diagnostics, FID and image grids
work unchanged. Metric keys of one beta carry the prefix `b<beta>/` (`prefix`, `split`).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from vae.model import VAE

FILM_SCALE = 0.1
"""YOTO's damping of the FiLM outputs: scale = 1 + 0.1*MLP, shift = 0.1*MLP."""


class FiLM(nn.Module):
    """log beta -> (scale, shift) for each of several feature maps (channel counts `channels`)."""

    def __init__(self, channels: list[int], hidden: int = 512):
        super().__init__()
        self.channels = list(channels)
        self.mlp = nn.Sequential(nn.Linear(1, hidden), nn.ReLU(), nn.Linear(hidden, 2 * sum(channels)))

    def forward(self, t: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        # t: (B,) normalised log beta -> one (scale, shift) pair of shape (B, C, 1, 1) per feature map
        out = FILM_SCALE * self.mlp(t.view(-1, 1).float())
        scale, shift = out.split(sum(self.channels), dim=1)
        pairs = []
        for s, b in zip(scale.split(self.channels, dim=1), shift.split(self.channels, dim=1)):
            pairs.append(((1 + s)[:, :, None, None], b[:, :, None, None]))
        return pairs


class ConditionalVAE(VAE):
    """`vae.model.VAE` with FiLM after every ReLU of encoder and decoder, conditioned on log beta."""

    def __init__(self, channels: int, height: int, width: int, z_dim: int, base: int = 32,
                 beta_range: tuple[float, float] = (0.001, 0.1), hidden: int = 512):
        super().__init__(channels, height, width, z_dim, base)
        self.beta_range = (float(beta_range[0]), float(beta_range[1]))
        # the feature maps after each ReLU: encoder c1, c2, c3; decoder c3, c2, c1
        enc = [m.out_channels for m in self.encoder if isinstance(m, nn.Conv2d)]
        dec = [self.feature[0]] + [m.out_channels for m in self.decoder if isinstance(m, nn.ConvTranspose2d)][:-1]
        self.film_encoder = FiLM(enc, hidden)
        self.film_decoder = FiLM(dec, hidden)

    def condition(self, beta: torch.Tensor | float, n: int) -> torch.Tensor:
        """log beta scaled to [-1, 1] over the training range (an input of unit scale for the MLP)."""
        device = self.to_posterior.weight.device
        beta = torch.as_tensor(beta, dtype=torch.float32, device=device).expand(n) if not torch.is_tensor(
            beta) or beta.dim() == 0 else beta.to(device)
        lo, hi = (math.log(b) for b in self.beta_range)
        return (2 * (beta.log() - lo) / (hi - lo) - 1) if hi > lo else torch.zeros_like(beta)

    @staticmethod
    def _modulated(layers: nn.Sequential, h: torch.Tensor, films) -> torch.Tensor:
        films = iter(films)
        for layer in layers:
            h = layer(h)
            if isinstance(layer, nn.ReLU):
                scale, shift = next(films)
                h = h * scale + shift
        return h

    def encode(self, x: torch.Tensor, beta=None) -> tuple[torch.Tensor, torch.Tensor]:
        # x.shape[0], not len(x): under torch.export (the MLflow model) the batch size stays symbolic
        x = self._pad(x)
        h = self._modulated(self.encoder, x, self.film_encoder(self.condition(beta, x.shape[0])))
        mu, logvar = self.to_posterior(h).chunk(2, dim=1)
        return mu, logvar

    def decode(self, z: torch.Tensor, beta=None) -> torch.Tensor:
        h = self.from_latent(z).view(-1, *self.feature)
        out = self._modulated(self.decoder, h, self.film_decoder(self.condition(beta, z.shape[0])))
        return self._crop(out)

    def forward(self, x: torch.Tensor, beta=None):
        mu, logvar = self.encode(x, beta)
        return self.decode(self.reparameterize(mu, logvar), beta), mu, logvar

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None, beta=None) -> torch.Tensor:
        z = torch.randn(n, self.z_dim, generator=generator, device=self.to_posterior.weight.device)
        return self.decode(z, beta)

    def at(self, beta: float) -> AtBeta:
        return AtBeta(self, beta)


class AtBeta(nn.Module):
    """A conditional model fixed at one beta, with the interface of `vae.model.VAE`."""

    def __init__(self, model: ConditionalVAE, beta: float):
        super().__init__()
        self.model, self.beta = model, float(beta)
        self.shape, self.z_dim = model.shape, model.z_dim

    def encode(self, x):
        return self.model.encode(x, self.beta)

    def decode(self, z):
        return self.model.decode(z, self.beta)

    def forward(self, x):
        return self.model(x, self.beta)

    def sample(self, n: int, generator: torch.Generator | None = None):
        return self.model.sample(n, generator, self.beta)


def sample_betas(n: int, beta_range: tuple[float, float], device, generator: torch.Generator | None = None) -> torch.Tensor:
    """n betas, log-uniform over beta_range (YOTO's distribution for loss weights): (n,)."""
    lo, hi = (math.log(b) for b in beta_range)
    u = torch.rand(n, generator=generator, device=device)
    return torch.exp(lo + (hi - lo) * u)


def curve_betas(beta_range: tuple[float, float], n: int = 25) -> list[float]:
    """n log-spaced betas over the range: where the continuous rate-distortion curve is evaluated."""
    lo, hi = (math.log(b) for b in beta_range)
    return [float(f"{math.exp(lo + (hi - lo) * i / (n - 1)):.6g}") for i in range(n)]


def prefix(beta: float) -> str:
    """The namespace of one beta's metrics in a conditional run: `b0.01/` (`b0.01/val/r_loss`)."""
    return f"b{beta:g}/"


def split(metrics: dict, betas: list[float]) -> tuple[dict, dict[float, dict]]:
    """A conditional run's metrics -> (the run's own, {beta: that beta's metrics without prefix})."""
    per = {b: {} for b in betas}
    own = {}
    names = {prefix(b): b for b in betas}
    for key, value in metrics.items():
        head = key.split("/", 1)[0] + "/"
        if head in names:
            per[names[head]][key[len(head):]] = value
        else:
            own[key] = value
    if "epoch" in metrics:
        for values in per.values():
            values["epoch"] = metrics["epoch"]
    return own, per
