"""The reference "textbook" VAE training loop, in the style of pytorch/examples' vae/main.py:
a torchvision dataset with ToTensor, a DataLoader, default Adam, `.item()` every batch.

The benchmark races vae.train against it; tests check both compute the same losses when fed the
same batches (`order`) and the same noise (per-epoch seeds as in vae.train).
"""

from __future__ import annotations

import time

import torch
from torch.utils.data import DataLoader, Sampler

from vae.loss import vae_loss
from vae.model import VAE


class FixedOrder(Sampler):
    """Yields a given permutation per epoch (to match vae.train's shuffles in tests)."""

    def __init__(self, orders):
        self.orders, self.epoch = orders, 0

    def __iter__(self):
        order = self.orders(self.epoch)
        self.epoch += 1
        return iter(order.tolist())

    def __len__(self):
        return len(self.orders(0))


def textbook_train(dataset, shape, z_dim: int, beta: float, epochs: int, batch_size: int, lr: float = 1e-3,
                   width: int = 32, seed: int = 0, orders=None, model: VAE | None = None) -> list[dict]:
    """Train on a map-style dataset of (image tensor in [0,1], label); return per-epoch train losses."""
    torch.manual_seed(seed)
    model = model or VAE(*shape, z_dim=z_dim, base=width)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    sampler = FixedOrder(orders) if orders else None
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=sampler is None, sampler=sampler)
    history = []
    for epoch in range(1, epochs + 1):
        torch.manual_seed(seed * 100_003 + epoch)  # the noise vae.train draws in this epoch
        model.train()
        total, r_total, kld_total, n = 0.0, 0.0, 0.0, 0
        t0 = time.perf_counter()
        for x, _ in loader:
            recon, mu, logvar = model(x)
            terms = vae_loss(recon, x, mu, logvar, beta)
            optimizer.zero_grad()
            terms.loss.backward()
            optimizer.step()
            total += terms.loss.item() * len(x)
            r_total += terms.r_loss.item() * len(x)
            kld_total += terms.kld_loss.item() * len(x)
            n += len(x)
        history.append({"epoch": epoch, "train/loss": total / n, "train/r_loss": r_total / n,
                        "train/kld_loss": kld_total / n, "time/epoch_s": time.perf_counter() - t0,
                        "time/images_per_s": n / (time.perf_counter() - t0)})
    return history
