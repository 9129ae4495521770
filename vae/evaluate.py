"""Evaluate a saved run: validation and test losses, diagnostics and image grids.

    vae evaluate runs/cifar10-z100-b0.01
    # or: from vae.evaluate import evaluate_run; evaluate_run("runs/x")

Writes evaluation.json, kl_per_dim.json, recon.png and samples.png into the run folder (for a
beta-conditional run: per beta, in b<beta>/, and rd_curve.json). Every
number is seeded by the run's seed: evaluating the same run twice gives identical numbers.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from vae.checkpoint import atomic_write_text, load_model
from vae.data import folder_shape, load_dataset, validation_split
from vae.errors import ConfigError
from vae.measure import final, grids, measure
from vae.paths import check_folder
from vae.runtime import pick_device


def evaluate_run(run_dir: str | Path, data_dir: str | None = None, device: str = "auto",
                 iw_samples: int = 100, fid_samples: int | None = None, betas: list[float] | None = None) -> dict:
    """`betas`: a beta-conditional run measured at these betas (inside the range it was trained
    on) instead of those it was trained for."""
    run_dir = Path(run_dir)
    model, cfg, blob = load_model(run_dir, pick_device(device))
    replace(cfg, iw_samples=iw_samples).validate()  # the rule of `vae train --iw-samples`
    check_folder(run_dir, "RUN_DIR")  # the results are written there
    cfg = replace(cfg, data_dir=data_dir or cfg.data_dir, iw_samples=iw_samples,
                  fid_samples=cfg.fid_samples if fid_samples is None else fid_samples).validate()
    if betas:
        if not cfg.conditional:
            raise ConfigError(f"--betas needs a β-conditional run; {run_dir} was trained for one beta")
        low, high = cfg.training_range
        outside = [b for b in betas if not low <= b <= high]
        if outside:
            raise ConfigError(f"beta {outside[0]:g} is outside the range {run_dir} was trained on "
                              f"[{low:g}, {high:g}]; a conditional model answers only inside it")
        # the model's own normalisation; not validated again: one beta is fine to measure at
        cfg = replace(cfg, betas=list(betas), beta_range=[low, high], beta_span=None)
    _check_shape(run_dir, cfg, tuple(blob["shape"]), folder_shape(cfg.dataset))  # before decoding: no cache
    data = load_dataset(cfg.dataset, cfg.data_dir, cfg.limit, cfg.seed)
    _check_shape(run_dir, cfg, tuple(blob["shape"]), tuple(data.test.shape[1:]))
    _, x_val = validation_split(data.train, cfg.val_size)
    result = {"epoch": blob["epoch"], "data/val_images": len(x_val), "data/test_images": len(data.test)}
    result.update(measure(model, {"val": x_val, "test": data.test}, cfg))
    result.update(final(model, data, cfg, run_dir, x_val))  # and kl_per_dim.json (rd_curve.json when conditional)
    grids(model, data.test, run_dir, cfg)
    atomic_write_text(run_dir / "evaluation.json", json.dumps(result, indent=2) + "\n")
    return result


def _check_shape(run_dir: Path, cfg, trained: tuple, now: tuple | None) -> None:
    """The data must have the shape the model was built for (an image folder may change format)."""
    if now is not None and tuple(now) != trained:
        raise ConfigError(f"{run_dir} was trained on images of shape {trained} (channels, height, "
                          f"width); --dataset {cfg.dataset} now holds {tuple(now)}: evaluate it on "
                          "images of that shape, or train a new run")
