"""A convolutional VAE (Kingma & Welling, 2014) for C x H x W images.

    from vae.model import VAE
    model = VAE(channels=3, height=32, width=32, z_dim=100)
    recon, mu, logvar = model(x)        # x in [0, 1], recon in [0, 1]
    images = model.sample(64)

Encoder: three stride-2 4x4 convs (width, 2*width, 4*width channels) and a linear layer to
(mu, logvar); the decoder mirrors it and ends in a sigmoid. Inputs are zero-padded up to a
multiple of 8 (8x8 digits, 28x28 MNIST) and outputs cropped back, so any size from 8x8 up works.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

DOWNSAMPLE = 8  # three stride-2 convs


class VAE(nn.Module):
    def __init__(self, channels: int, height: int, width: int, z_dim: int, base: int = 32):
        super().__init__()
        self.shape = (channels, height, width)
        self.z_dim = z_dim
        self.padded = (math.ceil(height / DOWNSAMPLE) * DOWNSAMPLE, math.ceil(width / DOWNSAMPLE) * DOWNSAMPLE)
        c1, c2, c3 = base, 2 * base, 4 * base
        self.feature = (c3, self.padded[0] // DOWNSAMPLE, self.padded[1] // DOWNSAMPLE)
        n_feature = math.prod(self.feature)
        self.encoder = nn.Sequential(
            nn.Conv2d(channels, c1, 4, 2, 1), nn.ReLU(),
            nn.Conv2d(c1, c2, 4, 2, 1), nn.ReLU(),
            nn.Conv2d(c2, c3, 4, 2, 1), nn.ReLU(),
            nn.Flatten(),
        )
        self.to_posterior = nn.Linear(n_feature, 2 * z_dim)  # -> (mu, logvar)
        self.from_latent = nn.Linear(z_dim, n_feature)
        self.decoder = nn.Sequential(
            nn.ReLU(),
            nn.ConvTranspose2d(c3, c2, 4, 2, 1), nn.ReLU(),
            nn.ConvTranspose2d(c2, c1, 4, 2, 1), nn.ReLU(),
            nn.ConvTranspose2d(c1, channels, 4, 2, 1),
        )

    def _pad(self, x: torch.Tensor) -> torch.Tensor:
        _, h, w = self.shape
        ph, pw = self.padded
        return F.pad(x, (0, pw - w, 0, ph - h)) if (ph, pw) != (h, w) else x

    def _crop(self, out: torch.Tensor) -> torch.Tensor:
        _, h, w = self.shape
        return torch.sigmoid(out[:, :, :h, :w])

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.to_posterior(self.encoder(self._pad(x))).chunk(2, dim=1)
        return mu, logvar

    @staticmethod
    def reparameterize(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        return mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self._crop(self.decoder(self.from_latent(z).view(-1, *self.feature)))

    def forward(self, x: torch.Tensor):
        mu, logvar = self.encode(x)
        return self.decode(self.reparameterize(mu, logvar)), mu, logvar

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        device = next(self.parameters()).device
        z = torch.randn(n, self.z_dim, generator=generator, device=device)
        return self.decode(z)
