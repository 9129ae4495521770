"""Evaluate a saved run: test-set losses, diagnostics and image grids.

    vae evaluate runs/cifar10-z100-b0.01
    # or: from vae.evaluate import evaluate_run; evaluate_run("runs/x")

Writes evaluation.json, kl_per_dim.json, recon.png and samples.png into the run folder.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from vae.checkpoint import atomic_write_text, load_model
from vae.data import load_dataset
from vae.images import save_grids
from vae.metrics import diagnostics
from vae.paths import check_folder
from vae.train import evaluate, pick_device


def evaluate_run(run_dir: str | Path, data_dir: str | None = None, device: str = "auto",
                 iw_samples: int = 100) -> dict:
    run_dir = Path(run_dir)
    model, cfg, blob = load_model(run_dir, pick_device(device))
    replace(cfg, iw_samples=iw_samples).validate()  # the rule of `vae train --iw-samples`
    check_folder(run_dir, "RUN_DIR")  # the results are written there
    data = load_dataset(cfg.dataset, data_dir or cfg.data_dir, cfg.limit, cfg.seed)
    x = data.test.to(next(model.parameters()).device)
    result = {"epoch": blob["epoch"], "images": len(x)}
    result.update({f"test/{k}": v for k, v in evaluate(model, x, cfg).items()})
    diag, kl_dims = diagnostics(model, x, cfg.beta if cfg.loss == "beta" else None, k=iw_samples, seed=cfg.seed)
    result.update(diag)
    save_grids(model, data.test, run_dir)
    atomic_write_text(run_dir / "evaluation.json", json.dumps(result, indent=2) + "\n")
    atomic_write_text(run_dir / "kl_per_dim.json", json.dumps(kl_dims) + "\n")
    return result
