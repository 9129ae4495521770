"""A β-conditional VAE: one network for a whole range of betas (loss-conditional training).

    from vae.conditional import ConditionalVAE
    model = ConditionalVAE(channels=3, height=32, width=32, z_dim=100, beta_range=(0.005, 0.1))
    recon, mu, logvar = model(x, beta)          # beta: (B,) one weight per image
    at = model.at(0.01)                         # a VAE-like view: encode, decode, sample, forward(x)

Dosovitskiy & Djolonga, "You Only Train Once: Loss-Conditional Training of Deep Networks"
(ICLR 2020): train with the loss weight drawn per example and fed to the network, so that one
model answers every weight. Beta is drawn per image, log-uniform over the training range
(`sample_betas`). Two ways to feed it to the network (`conditioning`):

- `film` (YOTO's VAE code, google-research/yoto): FiLM (Perez et al., 2018), an MLP with one
  hidden layer of 512 units maps log beta to a per-channel scale and shift after each conv block
  of encoder and decoder, scale = 1 + d*MLP, shift = d*MLP with YOTO's damping d = 0.1, so that a
  fresh network starts close to an unconditioned one (`film_damping`; 1 = undamped).
- `mrvae` (Bae et al., "Multi-Rate VAE: Train Once, Get the Full Rate-Distortion Curve", ICLR
  2023; src/hyper/layers.py of pomonam/mr-vae): every hidden conv's pre-activation is multiplied
  per channel by a gate of u, the standardised log beta (uniform on [-sqrt 3, sqrt 3] under the
  log-uniform draw: unit variance), one Linear(1, C) per layer: 2*sigmoid(w*u + b) in the encoder,
  sqrt(relu(1 - exp(w*u + b))) in the decoder, the shape of the exact solution of a linear VAE,
  whose decoder directions close one by one as beta grows. The heads (to_posterior), the first
  decoder layer (from_latent) and the output layer are not gated. Two departures from the
  reference, both because this network has no BatchNorm after its convs (the reference's
  BatchNorm rescales what follows every gate): the encoder gate is 2*sigmoid, not sigmoid, so a
  fresh gate is 1 at the centre of the range instead of halving each layer; the biases start at
  0 (encoder) and -1 (decoder: gate 0.8 at the centre), not U(-1, 1), under which about one
  decoder channel in seven starts closed at every beta of the range with no gradient to reopen it.

`loss_weights`: YOTO's `normalize_loss_weights`, each image's weights (1 for R-loss, beta for
KLD-loss) divided by their geometric mean.

The rest of the package sees a conditional model at one beta through `at(beta)`: the same
encode/decode/sample/forward as `vae.model.VAE`, so the losses, diagnostics, FID and image grids
work unchanged. Metric keys of one beta carry the prefix `b<beta>/` (`prefix`, `split`).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from vae.config import CONDITIONINGS, FILM_DAMPING
from vae.model import VAE

SQRT3 = math.sqrt(3.0)  # u = sqrt(3) * t: t uniform on [-1, 1] -> u of unit variance (MR-VAE's standardisation)


class FiLM(nn.Module):
    """log beta -> (scale, shift) for each of several feature maps (channel counts `channels`)."""

    def __init__(self, channels: list[int], hidden: int = 512, damping: float = FILM_DAMPING):
        super().__init__()
        self.channels = list(channels)
        self.damping = float(damping)
        self.mlp = nn.Sequential(nn.Linear(1, hidden), nn.ReLU(), nn.Linear(hidden, 2 * sum(channels)))

    def forward(self, t: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        # t: (B,) normalised log beta -> one (scale, shift) pair of shape (B, C, 1, 1) per feature map
        out = self.damping * self.mlp(t.view(-1, 1).float())
        scale, shift = out.split(sum(self.channels), dim=1)
        pairs = []
        for s, b in zip(scale.split(self.channels, dim=1), shift.split(self.channels, dim=1)):
            pairs.append(((1 + s)[:, :, None, None], b[:, :, None, None]))
        return pairs


class Gates(nn.Module):
    """MR-VAE's gates: u -> one per-channel multiplier (B, C, 1, 1) for each of several layers,
    2*sigmoid(w*u + b) (encoder) or sqrt(relu(1 - exp(w*u + b))) (decoder); see the module docstring."""

    def __init__(self, channels: list[int], decoder: bool):
        super().__init__()
        self.decoder = decoder
        self.layers = nn.ModuleList(nn.Linear(1, c) for c in channels)
        for layer in self.layers:  # weights as PyTorch draws them (the reference's); biases: see above
            nn.init.constant_(layer.bias, -1.0 if decoder else 0.0)

    def forward(self, t: torch.Tensor) -> list[tuple[torch.Tensor, None]]:
        u = SQRT3 * t.view(-1, 1).float()
        gates = []
        for layer in self.layers:
            raw = layer(u)
            gate = torch.sqrt(torch.relu(1 - torch.exp(raw))) if self.decoder else 2 * torch.sigmoid(raw)
            gates.append((gate[:, :, None, None], None))
        return gates


class ConditionalVAE(VAE):
    """`vae.model.VAE` conditioned on log beta: FiLM after every ReLU of encoder and decoder, or
    MR-VAE's gates on every hidden conv's pre-activation (`conditioning`)."""

    def __init__(self, channels: int, height: int, width: int, z_dim: int, base: int = 32,
                 beta_range: tuple[float, float] = (0.001, 0.1), hidden: int = 512,
                 conditioning: str = "film", film_damping: float = FILM_DAMPING):
        super().__init__(channels, height, width, z_dim, base)
        if conditioning not in CONDITIONINGS:
            raise ValueError(f"conditioning must be one of {', '.join(CONDITIONINGS)}, got {conditioning!r}")
        self.beta_range = (float(beta_range[0]), float(beta_range[1]))
        self.conditioning = conditioning
        convs = [i for i, m in enumerate(self.encoder) if isinstance(m, nn.Conv2d)]
        deconvs = [i for i, m in enumerate(self.decoder) if isinstance(m, nn.ConvTranspose2d)]
        if conditioning == "film":
            # after each ReLU: encoder c1, c2, c3; decoder c3 (after from_latent), c2, c1
            self.sites = ([i for i, m in enumerate(self.encoder) if isinstance(m, nn.ReLU)],
                          [i for i, m in enumerate(self.decoder) if isinstance(m, nn.ReLU)])
            enc = [self.encoder[i].out_channels for i in convs]
            dec = [self.feature[0]] + [self.decoder[i].out_channels for i in deconvs][:-1]
            self.film_encoder = FiLM(enc, hidden, film_damping)  # attribute names: the checkpoints' keys
            self.film_decoder = FiLM(dec, hidden, film_damping)
        else:
            # on each hidden conv's output, before its ReLU: encoder c1, c2, c3; decoder c2, c1 (not the output)
            self.sites = (convs, deconvs[:-1])
            self.gates_encoder = Gates([self.encoder[i].out_channels for i in self.sites[0]], decoder=False)
            self.gates_decoder = Gates([self.decoder[i].out_channels for i in self.sites[1]], decoder=True)

    def condition(self, beta: torch.Tensor | float, n: int) -> torch.Tensor:
        """log beta scaled to [-1, 1] over the training range (an input of unit scale for the MLP)."""
        device = self.to_posterior.weight.device
        beta = torch.as_tensor(beta, dtype=torch.float32, device=device).expand(n) if not torch.is_tensor(
            beta) or beta.dim() == 0 else beta.to(device)
        lo, hi = (math.log(b) for b in self.beta_range)
        return (2 * (beta.log() - lo) / (hi - lo) - 1) if hi > lo else torch.zeros_like(beta)

    def _conditioners(self) -> tuple[nn.Module, nn.Module]:
        if self.conditioning == "film":
            return self.film_encoder, self.film_decoder
        return self.gates_encoder, self.gates_decoder

    @staticmethod
    def _modulated(layers: nn.Sequential, h: torch.Tensor, mods, sites: list[int]) -> torch.Tensor:
        mods = iter(mods)
        for i, layer in enumerate(layers):
            h = layer(h)
            if i in sites:
                scale, shift = next(mods)
                h = h * scale if shift is None else h * scale + shift
        return h

    def encode(self, x: torch.Tensor, beta=None) -> tuple[torch.Tensor, torch.Tensor]:
        # x.shape[0], not len(x): under torch.export (the MLflow model) the batch size stays symbolic
        x = self._pad(x)
        mods = self._conditioners()[0](self.condition(beta, x.shape[0]))
        h = self._modulated(self.encoder, x, mods, self.sites[0])
        mu, logvar = self.to_posterior(h).chunk(2, dim=1)
        return mu, logvar

    def decode(self, z: torch.Tensor, beta=None) -> torch.Tensor:
        h = self.from_latent(z).view(-1, *self.feature)
        mods = self._conditioners()[1](self.condition(beta, z.shape[0]))
        return self._crop(self._modulated(self.decoder, h, mods, self.sites[1]))

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


def loss_weights(betas: torch.Tensor, beta_range: tuple[float, float]) -> torch.Tensor:
    """Per-image factors on R + beta*KLD that divide its weights (1, beta) by their geometric mean
    sqrt(beta) (YOTO's `normalize_loss_weights`), times sqrt(centre) so that the factor is 1 at
    the centre of the training range in log space (the loss keeps its scale there; a constant
    factor changes nothing else under Adam): sqrt(centre / beta), (B,). Small betas weigh more."""
    centre = math.sqrt(beta_range[0] * beta_range[1])
    return (centre / betas).sqrt()


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
