"""The model a run's settings describe: `vae.model.VAE`, or `vae.conditional.ConditionalVAE` when
the config lists `betas` (one β-conditional model for all of them). The one place both are built,
for training, checkpoints and tracking alike."""

from __future__ import annotations

from vae.config import TrainConfig
from vae.model import VAE


def build_model(cfg: TrainConfig, shape: tuple[int, int, int]) -> VAE:
    if cfg.conditional:
        from vae.conditional import ConditionalVAE

        return ConditionalVAE(*shape, z_dim=cfg.z_dim, base=cfg.width, beta_range=cfg.training_range,
                              hidden=cfg.film_hidden, conditioning=cfg.conditioning,
                              film_damping=cfg.film_damping)
    return VAE(*shape, z_dim=cfg.z_dim, base=cfg.width)
