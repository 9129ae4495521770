"""Image grids with torchvision: reconstructions (originals above them) and prior samples.

Grids of images smaller than 32 px are upscaled (nearest neighbour) so that they can be seen.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torchvision.utils import make_grid, save_image

from vae.atomic import atomic_write

MIN_SIDE = 32
RECON_IMAGES, RECON_COLUMNS = 16, 8  # recon_grid's default layout: 2 x (originals row, reconstructions row)


def _visible(x: torch.Tensor) -> torch.Tensor:
    scale = math.ceil(MIN_SIDE / min(x.shape[-2:]))
    return F.interpolate(x, scale_factor=scale, mode="nearest") if scale > 1 else x


@torch.no_grad()
def recon_grid(model, x: torch.Tensor, n: int = RECON_IMAGES, ncol: int = RECON_COLUMNS) -> torch.Tensor:
    """Rows alternate: ncol test images, then their reconstructions from the posterior mean."""
    model.eval()
    device = next(model.parameters()).device
    # evenly spaced: folder datasets are sorted by class, so the first n would all be one class
    pick = torch.linspace(0, len(x) - 1, min(n, len(x))).long()
    x = x[pick.to(x.device)].to(device).float() / 255
    recon = model.decode(model.encode(x)[0])
    rows = []
    for i in range(0, len(x), ncol):
        rows += [x[i:i + ncol], recon[i:i + ncol]]
    return make_grid(_visible(torch.cat(rows).float().cpu()), nrow=ncol, padding=2, pad_value=1.0)


def recon_rows(n: int = RECON_IMAGES, ncol: int = RECON_COLUMNS) -> list[str]:
    """What each row of a recon_grid image shows, top to bottom (for labels drawn beside it)."""
    return ["originals", "reconstructions"] * math.ceil(n / ncol)


@torch.no_grad()
def sample_grid(model, n: int = 64, seed: int = 0) -> torch.Tensor:
    """Decoded draws from the prior N(0, I), seeded so that grids compare across epochs."""
    model.eval()
    device = next(model.parameters()).device
    g = torch.Generator(device=device).manual_seed(seed)
    samples = model.sample(n, generator=g)
    return make_grid(_visible(samples.float().cpu()), nrow=int(math.sqrt(n)), padding=2, pad_value=1.0)


def save_grids(model, x_test: torch.Tensor, out_dir: str | Path, suffix: str = "") -> dict[str, Path]:
    """Write recon{suffix}.png and samples{suffix}.png; return their paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"recon": out_dir / f"recon{suffix}.png", "samples": out_dir / f"samples{suffix}.png"}
    recon, samples = recon_grid(model, x_test), sample_grid(model)  # each file whole or not at all
    atomic_write(paths["recon"], lambda tmp: save_image(recon, tmp, format="png"))
    atomic_write(paths["samples"], lambda tmp: save_image(samples, tmp, format="png"))
    return paths
