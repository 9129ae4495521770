"""Images into a model's input and its output back into images: the one scaling every run uses.

    x = to_input(images)          # uint8 (N, C, H, W) / (N, H, W) / (H, W, C) array, tensor or PIL images -> floats in [0, 1]
    pictures = to_uint8(recon)    # a model's output -> uint8, the same scale
    x = digits_input(load_digits().images)   # scikit-learn's 8x8 digits (values 0-16), as `--dataset digits` scales them

Training reads every dataset as uint8 pixels and divides by 255 (vae/data.py decodes, vae/train.py
scales); a model's input is therefore floats in [0, 1], channels first. scikit-learn's digits are
0-16, quantised to uint8 as round(x · 255 / 16) before that (vae/data.py `_digits`): a model trained
on them expects the same.
"""

from __future__ import annotations

import numpy as np
import torch


def to_input(images, channels: int | None = None) -> torch.Tensor:
    """Pixels (0-255) as a model's input: float32 (N, C, H, W) in [0, 1]. Takes a uint8 tensor or
    array (N, C, H, W), (N, H, W) (grey) or (N, H, W, C) when the last axis is 1 or 3, or a list of
    PIL images; `channels`: the model's (model.shape[0]), to say which layout a 3-axis array is."""
    if isinstance(images, list):  # PIL images
        images = np.stack([np.asarray(im) for im in images])
    x = torch.as_tensor(np.asarray(images) if not isinstance(images, torch.Tensor) else images)
    if x.ndim == 2 or (x.ndim == 3 and channels == 1 and x.shape[0] != 1):
        x = x.unsqueeze(0) if x.ndim == 2 else x
        x = x.unsqueeze(1)  # grey: (N, H, W) -> (N, 1, H, W)
    elif x.ndim == 3:
        x = x.unsqueeze(0)
    if x.shape[1] not in (1, 3) and x.shape[-1] in (1, 3):
        x = x.permute(0, 3, 1, 2)  # channels last, as PIL and numpy keep them
    return x.float().div(255).contiguous()


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """A model's output (floats in [0, 1]) as uint8 pixels, the scale of its input."""
    return (x.detach().clamp(0, 1) * 255).round().to(torch.uint8)


def digits_input(images) -> torch.Tensor:
    """scikit-learn's digits (values 0-16) as a digits model's input: quantised as training did."""
    x16 = torch.as_tensor(np.asarray(images), dtype=torch.float64)
    return to_input((x16 * (255 / 16)).round().to(torch.uint8), channels=1)
