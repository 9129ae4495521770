"""Checkpoints: state dicts and the run's config, loadable with `weights_only=True`.

A run folder holds checkpoint.pt (model, optimiser, epoch, history, config), config.json,
metrics.json and the image grids. Files are written to a temporary name and renamed, so an
interrupted run never leaves half a checkpoint.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from vae.atomic import atomic_write, atomic_write_text  # noqa: F401  (atomic_write_text: imported from here too)
from vae.build import build_model
from vae.config import TrainConfig
from vae.errors import CheckpointError, first_line
from vae.model import VAE
from vae.redact import redact

CHECKPOINT = "checkpoint.pt"


def save_checkpoint(run_dir: str | Path, *, model: VAE, optimizer, epoch: int, history: list[dict],
                    config: TrainConfig, measured: bool = True) -> Path:
    """`measured`: False for the last epoch's checkpoint written before the end-of-training
    measurements (vae/measure.py final), so that a resumed run measures instead of training again."""
    run_dir = Path(run_dir)
    path = run_dir / CHECKPOINT
    blob = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "epoch": epoch,
        "history": history,
        "config": config.record(),
        "shape": list(model.shape),
        "measured": measured,
    }
    atomic_write(path, lambda tmp: torch.save(blob, tmp))
    atomic_write_text(run_dir / "config.json", redact(json.dumps(config.record(), indent=2)) + "\n")
    return path


def load_checkpoint(run_dir: str | Path, device: str | torch.device = "cpu") -> dict:
    path = Path(run_dir)
    path = path / CHECKPOINT if path.is_dir() else path
    if not path.exists():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        # weights_only: a checkpoint from the internet cannot run code when loaded
        return torch.load(path, map_location=device, weights_only=True)
    except Exception as e:  # torch explains weights_only over several lines: the first says what is wrong
        raise CheckpointError(f"cannot read checkpoint {path}: {type(e).__name__}: {first_line(e)}") from None


def load_model(run_dir: str | Path, device: str | torch.device = "cpu") -> tuple[VAE, TrainConfig, dict]:
    """The trained model of a run folder (or checkpoint file), its config and the raw checkpoint."""
    blob = load_checkpoint(run_dir, device)
    try:
        config = TrainConfig.from_dict(blob["config"])
        model = build_model(config, tuple(blob["shape"]))
        model.load_state_dict(blob["model"])
    except CheckpointError:
        raise
    except Exception as e:
        raise CheckpointError(f"checkpoint in {run_dir} does not fit the model: {e}") from None
    return model.to(device).eval(), config, blob
