"""A model to take away: `load_model` makes any checkpoint ready to use; `vae export` writes the folder.

    import torch, vae
    model = vae.load_model("chosen")             # an exported folder, a run folder or a checkpoint.pt
    x = model.to_input(images)                   # uint8 pixels (N, C, H, W), (N, H, W, C) or PIL -> [0, 1]
    with torch.no_grad():
        recon = model.decode(model.encode(x)[0]) # the posterior mean's reconstruction; model.to_uint8(recon): pixels
        samples = model.sample(16)               # 16 images from the prior
    model.config                                 # its TrainConfig: z_dim, beta, dataset, epochs, ...

An exported folder (pipelines/usecases/export.py) holds checkpoint.pt as the trial's MLflow run logged it
(state dicts and the run's config; it loads with `torch.load(weights_only=True)`, so it cannot run
code), the run's config.json, export.json (study, trial, run, the beta it was exported at, its test
numbers) and a README.md. A beta-conditional model (vae/conditional.py) answers every beta of its
range; exported at one beta, it loads as the ordinary VAE interface at that beta (`AtBeta`), with
`config` that of an ordinary run at that beta: what that beta's numbers were measured with.
"""

from __future__ import annotations

import json
from pathlib import Path

from vae.config import TrainConfig
from vae.errors import CheckpointError, ConfigError

EXPORT_INFO = "export.json"


def read_info(path: str | Path) -> dict | None:
    """export.json of an exported folder (or of the folder of its checkpoint.pt); None elsewhere."""
    path = Path(path)
    info = (path if path.is_dir() else path.parent) / EXPORT_INFO
    if not info.exists():
        return None
    try:
        return json.loads(info.read_text())
    except (OSError, ValueError) as e:
        raise CheckpointError(f"cannot read {info}: {e}") from None


def check_beta(cfg: TrainConfig, beta: float, where: str) -> float:
    """`beta` if a conditional model of `cfg` answers it (inside its training range), else ConfigError."""
    low, high = cfg.training_range
    if not low <= beta <= high:
        raise ConfigError(f"beta {beta:g} is outside the range {where} was trained on [{low:g}, {high:g}] "
                          f"(its betas: {', '.join(f'{b:g}' for b in cfg.betas)}); a conditional model answers only "
                          "inside it")
    return float(beta)


def load_model(path: str | Path, device: str = "cpu", beta: float | None = None):
    """The trained model in `path`, in eval mode, ready to reconstruct and sample.

    path: a folder written by `vae export`, a run folder (`vae train --out`) or a checkpoint.pt.
    device: where its weights go (`cpu`, `cuda`, ...; `auto`: cuda, then mps, then cpu).
    beta: for a beta-conditional model, the beta to answer at; default: the beta it was exported
    at (export.json). Required for a conditional run folder; not allowed for an ordinary model.

    Returns a `vae.model.VAE` (a conditional model: its view at one beta, `AtBeta`, with the same
    encode / decode / sample / forward), with `config` (the TrainConfig it was trained with; at one
    beta: `config.at(beta)`), `epoch` (epochs trained), `exported` (the export.json dict, None for a
    run folder), and `to_input(images)` / `to_uint8(x)`: pixels into its input and back, the
    scaling its training used (vae/pixels.py; digits: `vae.pixels.digits_input`). `vae.measure.evaluate(model, x, model.config)` gives
    the numbers training measured on images x. Raises CheckpointError or ConfigError (one line).
    """
    from vae.checkpoint import load_model as load_checkpoint_model

    if device == "auto":
        from vae.runtime import pick_device

        device = pick_device(device)
    info = read_info(path)
    model, cfg, blob = load_checkpoint_model(path, device)
    if cfg.conditional:
        beta = beta if beta is not None else (info or {}).get("beta")
        if beta is None:
            low, high = cfg.training_range
            raise CheckpointError(f"{path} holds a β-conditional model: pass beta= (its betas "
                                  f"{', '.join(f'{b:g}' for b in cfg.betas)}, or any in [{low:g}, {high:g}])")
        beta = check_beta(cfg, beta, str(path))
        model, cfg = model.at(beta), cfg.at(beta)
    elif beta is not None and beta != cfg.beta:
        trained = "as a σ-VAE" if cfg.training == "sigma-vae" else f"at beta {cfg.beta:g}"
        raise ConfigError(f"beta= is for a β-conditional model; {path} was trained {trained}")
    model.config, model.epoch, model.exported = cfg, blob["epoch"], info
    from vae import pixels

    model.to_input = lambda images: pixels.to_input(images, channels=model.shape[0])  # pixels -> its input
    model.to_uint8 = pixels.to_uint8                                                   # its output -> pixels
    return model.eval()
