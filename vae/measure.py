"""What a run measures: the losses of a split every epoch, and the diagnostics at the end.

    from vae.measure import measure, final
    metrics = measure(model, {"val": x_val, "test": x_test}, cfg)    # {"val/r_loss": ..., ...}
    # vae/train.py measures validation every epoch, the test split's evaluation subset every
    # test_every epochs (`test_subset/`) and the whole test split after the last (`test/`)
    diag = final(model, data, cfg, out)                              # {"diag/active_units": ..., ...}

For a beta-conditional run (cfg.betas, vae/conditional.py) every number is measured at each of its
betas, exactly as an ordinary run at that beta measures it (`cfg.at(beta)`, `model.at(beta)`), under
the prefix `b<beta>/`; `val/<term>` is then the mean over the betas (what a sweep optimises), and
the end also writes the continuous rate-distortion curve (rd_curve.json: R-loss and KL at 25
log-spaced betas over the training range, on the evaluation subset of the test split).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch

from vae.checkpoint import atomic_write_text
from vae.config import TrainConfig
from vae.data import Data, evaluation_subset
from vae.loss import vae_loss
from vae.metrics import bits_per_dim, calibrated_neg_elbo, diagnostics
from vae.model import VAE
from vae.progress import phase, say

TERMS = ("loss", "r_loss", "kld_loss", "sse", "kl")
BATCH = 256
"""Images per forward pass when measuring: on these CPUs batches of 256 run 1.5x faster than 1,024
(the activations of a batch fit the caches). The posterior noise is the same stream either way."""


def for_measuring(model: VAE) -> VAE:
    """The model as every number is measured (`evaluate`, the diagnostics, FID's samples): in eval
    mode, and on a CPU a copy in channels-last memory (its transposed convolutions run 1.2-1.4x
    faster; the same outputs to float rounding). A copy, so the training model and its compiled
    graph keep their layout; a model already in that layout is used as it is."""
    import copy

    weights = [p for p in model.parameters() if p.dim() == 4]
    if next(model.parameters()).device.type != "cpu" or all(
            w.is_contiguous(memory_format=torch.channels_last) for w in weights):
        return model.eval()
    return copy.deepcopy(model).eval().to(memory_format=torch.channels_last)


def autocast(device: torch.device, enabled: bool):
    # bf16 on CUDA only: on CPUs without AVX-512 bf16 autocast is ~20x slower than fp32
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=enabled and device.type == "cuda")


@torch.no_grad()
def evaluate(model: VAE, x: torch.Tensor, cfg: TrainConfig, batch_size: int = BATCH) -> dict[str, float]:
    """Losses on a split (per image, averaged over x, a uint8 tensor), at the full KL weight, plus
    the calibrated -ELBO in bits/dim, and the standard errors of R-loss and of that -ELBO over the
    images (`r_loss_se`, `elbo_bpd_se`: the estimator's own noise, which the verdict weighs margins
    against; unpaired, so conservative for two models measured on the same images). The posterior
    noise is seeded (cfg.seed): the same model and images give the same numbers, in training and in
    `vae evaluate`."""
    model = for_measuring(model)
    device = next(model.parameters()).device
    g = torch.Generator(device=device).manual_seed(cfg.seed)
    beta = cfg.kl_weight
    sums = torch.zeros(len(TERMS), device=device, dtype=torch.float64)
    moments = torch.zeros(3, device=device, dtype=torch.float64)  # sum of sse², kl², sse·kl per image
    for i in range(0, len(x), batch_size):
        xb = x[i:i + batch_size].to(device).float() / 255
        with autocast(device, cfg.amp):
            mu, logvar = model.encode(xb)
            eps = torch.randn(mu.shape, generator=g, device=device, dtype=torch.float32)
            recon = model.decode(mu + eps.to(mu.dtype) * torch.exp(0.5 * logvar))
        terms = vae_loss(recon, xb, mu, logvar, beta, cfg.loss, cfg.free_bits)
        sums += torch.stack([getattr(terms, t) for t in TERMS]).double() * len(xb)
        sse_i, kl_i = terms.sse_i.double(), terms.kl_dims.sum(1).double()
        moments += torch.stack([sse_i.pow(2).sum(), kl_i.pow(2).sum(), (sse_i * kl_i).sum()])
    n = len(x)
    result = dict(zip(TERMS, (sums / n).tolist()))
    d = x[0].numel()
    result["elbo_bpd"] = bits_per_dim(calibrated_neg_elbo(result["sse"], result["kl"], d), d)
    result.update(_standard_errors(result, moments.tolist(), n, d))
    return result


def _standard_errors(mean: dict, moments: list[float], n: int, d: int) -> dict[str, float]:
    """SE of the mean over n images of R-loss_i = sse_i / D and of the calibrated -ELBO_i in bits/dim,
    sse_i / (2 σ²) + KL_i + const with σ² = MSE held at its fitted value (vae/metrics.py)."""
    if n < 2:
        return {}
    ss, kk, sk = (m / n for m in moments)
    var_s = max(ss - mean["sse"] ** 2, 0.0) * n / (n - 1)
    var_k = max(kk - mean["kl"] ** 2, 0.0) * n / (n - 1)
    cov = (sk - mean["sse"] * mean["kl"]) * n / (n - 1)
    a = 1 / (2 * max(mean["sse"] / d, 1e-12))
    var_e = max(a * a * var_s + 2 * a * cov + var_k, 0.0)
    return {"r_loss_se": math.sqrt(var_s / n) / d, "elbo_bpd_se": math.sqrt(var_e / n) / (d * math.log(2))}


MIN_IMAGES = 2
"""AU (a variance over images), MI (its standard error) and the rest need at least this many."""


def final_parts(cfg: TrainConfig, shape: tuple[int, int, int]) -> list[str]:
    """What the end-of-training measurements of `cfg` compute, as the terminal names them."""
    from vae import fid

    parts = ["active units, KL per dimension, MI, -ELBO, IWAE NLL, σ"] if cfg.iw_samples > 0 else []
    if fid.sample_count(cfg.fid_samples, shape) > 0:
        parts.append("FID, KID, precision/recall" + (", FID (recon)" if cfg.fid_recon else ""))
    return parts


def final_diagnostics(model: VAE, data: Data, cfg: TrainConfig, log=say,
                      x_val: torch.Tensor | None = None) -> tuple[dict[str, float], list[float] | None]:
    """End-of-training diagnostics on the evaluation subset of the test split (iw_samples > 0:
    every estimator of vae/metrics.py), and generation quality (FID, KID, precision/recall) when
    fid_samples > 0 and the [fid] extra is installed; with `x_val`, also the FID of the same prior
    samples against validation images (`val/fid`, what the verdict chooses on: the test split only
    reports). A statistic with too few images is left out with a one-line note (`log`), never an
    error: a tiny test split still gives a trained model."""
    from vae import fid

    x_eval = evaluation_subset(data, cfg.eval_images)
    metrics, kl_dims = {}, None
    if cfg.iw_samples > 0 and len(x_eval) < MIN_IMAGES:
        log(f"note: AU, KL per dimension, MI, -ELBO, IWAE NLL and σ skipped: they need at least {MIN_IMAGES} "
            f"test images, got {len(x_eval)}")
    elif cfg.iw_samples > 0:
        metrics, kl_dims = diagnostics(model, x_eval, cfg.beta,
                                       k=cfg.iw_samples, iw_images=cfg.iw_images, seed=cfg.seed)
    n = fid.sample_count(cfg.fid_samples, data.shape)
    if n > 0:
        try:
            metrics.update(fid.generation_metrics(model, x_eval, n, seed=cfg.seed,
                                                  cache_dir=Path(cfg.data_dir) / "cache", progress=cfg.progress,
                                                  log=log, x_val=None if x_val is None else x_val[:cfg.eval_images],
                                                  recon=cfg.fid_recon))
        except fid.FIDUnavailable as e:
            log(f"note: {e}")
    return metrics, kl_dims


def measure(model: VAE, splits: dict[str, torch.Tensor], cfg: TrainConfig) -> dict[str, float]:
    """`evaluate` on each split, keys `<split>/<term>`; for a conditional run at each beta
    (`b0.01/val/r_loss`) plus `<split>/<term>` as the mean over its betas."""
    model = for_measuring(model)
    if not cfg.conditional:
        return {f"{name}/{k}": v for name, x in splits.items() for k, v in evaluate(model, x, cfg).items()}
    from vae.conditional import prefix

    out: dict[str, float] = {}
    for beta in cfg.betas:
        for name, x in splits.items():
            out |= {f"{prefix(beta)}{name}/{k}": v for k, v in evaluate(model.at(beta), x, cfg.at(beta)).items()}
    for name in splits:
        for k in (*TERMS, "elbo_bpd"):
            out[f"{name}/{k}"] = sum(out[f"{prefix(b)}{name}/{k}"] for b in cfg.betas) / len(cfg.betas)
    return out


def final(model: VAE, data: Data, cfg: TrainConfig, out: Path, x_val: torch.Tensor | None = None) -> dict[str, float]:
    """The end-of-training diagnostics (`diag/...`), kl_per_dim.json in `out`; for a conditional
    run at each beta (`b0.01/diag/...`, `out/b0.01/kl_per_dim.json`) and rd_curve.json."""
    parts = ", ".join(final_parts(cfg, data.shape)) or "none on (--iw-samples 0, --fid-samples 0)"
    model = for_measuring(model)
    if not cfg.conditional:
        with phase(f"diagnostics: {parts}", enabled=cfg.progress):
            diag, kl_dims = final_diagnostics(model, data, cfg, x_val=x_val)
        if kl_dims is not None:
            atomic_write_text(out / "kl_per_dim.json", json.dumps(kl_dims) + "\n")
        return diag
    from vae.conditional import curve_betas, prefix

    metrics = {}
    for i, beta in enumerate(cfg.betas, 1):
        with phase(f"diagnostics at β={beta:g} ({i} of {len(cfg.betas)}): {parts}", enabled=cfg.progress):
            diag, kl_dims = final_diagnostics(model.at(beta), data, cfg.at(beta), x_val=x_val)
        metrics |= {prefix(beta) + k: v for k, v in diag.items()}
        if kl_dims is not None:
            (out / prefix(beta)).mkdir(parents=True, exist_ok=True)
            atomic_write_text(out / prefix(beta) / "kl_per_dim.json", json.dumps(kl_dims) + "\n")
    betas = curve_betas(cfg.training_range)
    x_eval = evaluation_subset(data, cfg.eval_images)  # a figure's points: the whole split cost 25 test passes
    with phase(f"rate-distortion curve: losses at {len(betas)} betas on {len(x_eval):,} test images", enabled=cfg.progress):
        curve = [{"beta": b, **evaluate(model.at(b), x_eval, cfg.at(b))} for b in betas]
    atomic_write_text(out / "rd_curve.json", json.dumps(curve, indent=1) + "\n")
    return metrics


def grids(model: VAE, x_test: torch.Tensor, out: Path, cfg: TrainConfig) -> None:
    """recon.png and samples.png in `out`; for a conditional run, one pair per beta in out/b<beta>/."""
    from vae.images import save_grids

    if not cfg.conditional:
        save_grids(model, x_test, out)
        return
    from vae.conditional import prefix

    for beta in cfg.betas:
        save_grids(model.at(beta), x_test, out / prefix(beta))
