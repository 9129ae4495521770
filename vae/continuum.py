"""The β-conditional model's continuum: its whole trained beta range read on the validation split.

    points = scan(model, x_val, data, cfg)     # [{"beta", "r_loss", "r_loss_se", "elbo_bpd", ..., "fid"}]
    # written once, at the end of training, as continuum.json in the run folder

A conditional model (vae/conditional.py) is trained on a range of betas, typically 1000x wide (highest over lowest) around
its grid, so it knows the rate-distortion trade-off between and beyond the grid's betas. The grid
points are read as every model is (vae/measure.py); this scan reads SCAN_POINTS log-spaced betas
over the whole training range, and the grid's own betas among them, so that a beta off the grid
is compared with the grid's best on the same model, the same images and the same estimators:
R-loss, KL and the calibrated −ELBO in bits/dim (with their standard errors over the validation
images, vae/measure.py evaluate), and, where the run measures FID, the FID of prior samples
against the validation images with its bootstrap standard error (vae/fid.py). FID here uses at
most SCAN_FID_SAMPLES samples per point (fewer than the grid's, to keep the scan a fraction of the
training), so its values are biased upwards against the grid's FID: compare them with each other,
not with the table. The verdict reads the scan from the run (pipelines/report/verdict.py); nothing
here is a choice, only measurements.
"""

from __future__ import annotations

from pathlib import Path

import torch

from vae.conditional import curve_betas
from vae.config import TrainConfig
from vae.data import Data

SCAN_POINTS = 9
"""log-spaced betas over the training range, besides the grid's own."""
SCAN_FID_SAMPLES = 1000
"""prior samples per point for FID (at most the run's fid_samples)."""


def scan_betas(training_range: tuple[float, float], grid: list[float], n: int = SCAN_POINTS) -> list[float]:
    """n log-spaced betas over the range and the grid's betas, sorted, each once."""
    return sorted({*curve_betas(training_range, n), *(float(b) for b in grid)})


@torch.no_grad()
def scan(model, x_val: torch.Tensor, data: Data, cfg: TrainConfig, log=print) -> list[dict]:
    """The continuum's points (see the module docstring); [] without validation images."""
    from vae import fid
    from vae.data import evaluation_subset
    from vae.measure import evaluate

    if x_val is None or len(x_val) < 2:
        return []
    n = min(fid.sample_count(cfg.fid_samples, data.shape), SCAN_FID_SAMPLES)
    x_eval = evaluation_subset(data, cfg.eval_images)
    points, fid_off = [], False
    for beta in scan_betas(cfg.training_range, cfg.betas):
        point = {"beta": beta, "grid": beta in cfg.betas, **evaluate(model.at(beta), x_val, cfg.at(beta))}
        if n > 0 and not fid_off:
            try:
                g = fid.generation_metrics(model.at(beta), x_eval, n, seed=cfg.seed,
                                           cache_dir=Path(cfg.data_dir) / "cache", log=log,
                                           x_val=x_val[:cfg.eval_images])
                point |= {"fid": g.get("val/fid"), "fid_se": g.get("val/fid_se"), "fid_samples": n}
            except fid.FIDUnavailable:
                fid_off = True
        points.append(point)
    return points
