"""Diagnostics that measure the reconstruction/KL balance instead of eyeballing samples.

    from vae.metrics import diagnostics
    diagnostics(model, x_eval, beta=0.01)   # {"diag/active_units": 31, "diag/nll_bpd": 4.9, ...}

`x_eval` is the evaluation subset of the test split, in the seeded stratified order of
`vae.data.evaluation_order`: KL, AU, sigma and MI use all of it, the IWAE NLL its first
`iw_images` (a prefix of the same order, so the subsets are nested and cover every class). Every
estimator draws its noise from one generator seeded with `seed`: the same model and images give
the same numbers.

MI (Hoffman & Johnson's I(x; z) under q, estimated over the N images given) can never exceed
log N: once every posterior is far from the others, the estimate sits at log N whatever the
model does. `diag/mi_ceiling_nats` = log N is reported beside it, and `diag/mi_saturated` = 1 when
the estimate is within two standard errors of that ceiling (or above it): such values cannot
rank models, only say "at least log N". Negative estimates are noise around 0.

Signs: `nll_nats` is the negative log-likelihood bound -log p(x) >= ... (from IWAE) and
`neg_elbo_nats` the negative ELBO, both positive-ish and lower-better, with NLL <= -ELBO; the
`*_bpd` values (`nll_bpd`, `elbo_bpd`) are the same bounds as code lengths in bits per dimension,
the literature's usual reading of "ELBO in bits/dim" (positive, lower is better).

Likelihood convention (for `elbo_*` and `nll_*`): pixels are scaled to [0, 1] (k/255, no
dequantisation noise) and the decoder is read as a Gaussian N(recon, sigma^2 I) with one shared
sigma fitted on the evaluated images (sigma^2 = MSE, its maximum-likelihood value, as in
sigma-VAE). Bits per dimension treat that density as mass over 256 bins of width 1/256:
bpd = (NLL + D ln 256) / (D ln 2). Values are per image (nats) or per dimension (bits).

`sigma_implied` is the decoder sigma that the original loss R + beta*KLD stands for:
SSE/D + beta*KL/z is proportional to SSE/(2 sigma^2) + KL with sigma^2 = beta*D/(2z), which is why
one beta means a different balance at z=10 and z=100.
"""

from __future__ import annotations

import copy
import math

import torch

from vae.loss import kl_per_dim

ACTIVE_THRESHOLD = 0.01  # Burda et al. (2016)
BATCH = 256  # images per forward pass: 1.5x faster than 1,024 on these CPUs (cache-sized activations)
LOG_2PI = math.log(2 * math.pi)


def active_units(mu: torch.Tensor, threshold: float = ACTIVE_THRESHOLD) -> int:
    """Dimensions u with Cov_x(E_q(z|x)[z_u]) > threshold (Burda et al., 2016); mu is N x z."""
    return int((mu.float().var(dim=0, unbiased=True) > threshold).sum())


def sorted_kl_per_dim(mu: torch.Tensor, logvar: torch.Tensor) -> list[float]:
    """Average KL of each latent dimension in nats, largest first."""
    return sorted(kl_per_dim(mu, logvar).mean(0).tolist(), reverse=True)


def mutual_information(mu: torch.Tensor, logvar: torch.Tensor, generator: torch.Generator | None = None,
                       chunk: int = 256) -> float:
    """I(x; z) under q (Hoffman & Johnson, 2016), estimated as in He et al. (2019):
    E_x[-H(q(z|x))] - E_z[log q(z)], with q(z) the mixture of the N posteriors given. At most log N."""
    return mutual_information_terms(mu, logvar, generator, chunk).mean().item()


def mutual_information_terms(mu: torch.Tensor, logvar: torch.Tensor, generator: torch.Generator | None = None,
                             chunk: int = 1024) -> torch.Tensor:
    """The per-image terms -H(q(z|x_i)) - log q(z_i), z_i ~ q(z|x_i), whose mean is the MI estimate
    (their spread gives its standard error)."""
    mu, logvar = mu.double(), logvar.double()
    n, z_dim = mu.shape
    neg_entropy = -0.5 * z_dim * LOG_2PI - 0.5 * (1 + logvar).sum(-1)
    noise = torch.randn(mu.shape, generator=generator, dtype=mu.dtype, device=mu.device)
    z = mu + noise * (0.5 * logvar).exp()
    precision = (-logvar).exp()
    norm = z_dim * LOG_2PI + logvar.sum(-1)  # per posterior j
    # log q(z_i | x_j) for every pair through the expanded square, sum_d (z_id - mu_jd)^2 / var_jd =
    # z_i^2 · (1/var_j) - 2 z_i · (mu_j/var_j) + sum_d mu_jd^2 / var_jd: two N x N matrix products
    # instead of an N x N x z_dim tensor (~10x fewer seconds at N = 2,000, z = 100). Its rounding
    # error grows with mu^2/var (narrow posteriors far from 0), so each row's TOP largest terms,
    # which carry the log-sum-exp, are computed again exactly (tests/test_metrics.py: equal to
    # the estimator written out to 1e-9 relative)
    const = (mu.pow(2) * precision).sum(-1) + norm
    log_qz = []
    for i in range(0, n, chunk):  # chunk x N at a time
        zc = z[i:i + chunk]
        log_density = -0.5 * (zc.pow(2) @ precision.T - 2 * zc @ (mu * precision).T + const[None])
        top = log_density.topk(min(TOP, n), dim=1).indices  # chunk x TOP
        exact = -0.5 * ((zc[:, None] - mu[top]).pow(2) * precision[top]).sum(-1) - 0.5 * norm[top]
        log_density.scatter_(1, top, exact)
        log_qz.append(torch.logsumexp(log_density, dim=1) - math.log(n))
    return neg_entropy - torch.cat(log_qz)


TOP = 16
"""Terms per row of the MI estimate recomputed exactly (mutual_information_terms)."""


def mi_saturated(mi: float, standard_error: float, n: int) -> bool:
    """True when an MI estimate over n images is within two standard errors of its ceiling log n,
    or above it: it then says only "at least about log n" and cannot rank models. (Above the
    ceiling counts even when the standard error is unknown, NaN, as the README says.)"""
    return mi >= math.log(n) or mi >= math.log(n) - 2 * standard_error


def gaussian_log_lik(x: torch.Tensor, recon: torch.Tensor, sigma: float) -> torch.Tensor:
    """log N(x; recon, sigma^2 I) per image, in nats."""
    d = x[0].numel()
    sse = (x - recon).pow(2).flatten(1).sum(1)
    return -0.5 * d * (LOG_2PI + 2 * math.log(sigma)) - sse / (2 * sigma**2)


@torch.no_grad()
def iwae_log_lik(model, x: torch.Tensor, sigma: float, k: int, generator: torch.Generator | None = None,
                 batch: int = 512) -> torch.Tensor:
    """Importance-weighted lower bound on log p(x) per image (Burda et al., 2016), K samples from
    q(z|x). K=1 is the ELBO (in expectation); the bound tightens as K grows."""
    mu, logvar = (t.double() for t in model.encode(x))
    n, z_dim = mu.shape
    std = (0.5 * logvar).exp()
    log_w = torch.empty(k, n, dtype=torch.float64, device=x.device)
    per = max(1, batch // n)  # samples decoded together
    for s in range(0, k, per):
        m = min(per, k - s)
        eps = torch.randn((m, n, z_dim), generator=generator, dtype=torch.float64, device=x.device)
        z = mu + eps * std
        recon = model.decode(z.flatten(0, 1).float()).double().view(m, n, *x.shape[1:])
        log_px_z = gaussian_log_lik(x.double().expand(m, *x.shape).flatten(0, 1), recon.flatten(0, 1), sigma).view(m, n)
        log_pz = -0.5 * (z.pow(2).sum(-1) + z_dim * LOG_2PI)
        log_qz = -0.5 * (eps.pow(2).sum(-1) + z_dim * LOG_2PI) - 0.5 * logvar.sum(-1)
        log_w[s:s + m] = log_px_z + log_pz - log_qz
    return torch.logsumexp(log_w, 0) - math.log(k)


def calibrated_neg_elbo(sse: float, kl: float, d: int) -> float:
    """-ELBO in nats per image with the Gaussian decoder's sigma^2 set to MSE = sse / d:
    D/2 * log(2 pi sigma^2) + D/2 + KL."""
    var = max(sse / d, 1e-12)
    return 0.5 * d * (LOG_2PI + math.log(var)) + 0.5 * d + kl


def bits_per_dim(nll_nats: float, d: int) -> float:
    return (nll_nats + d * math.log(256)) / (d * math.log(2))


@torch.no_grad()
def diagnostics(model, x_uint8: torch.Tensor, beta: float | None, k: int = 100, iw_images: int = 256,
                seed: int = 0) -> tuple[dict[str, float], list[float]]:
    """All diagnostics on the evaluation subset x_uint8 (IWAE: its first iw_images); returns
    (metrics, per-dimension KL sorted). `beta` is the weight of the original loss (None for sigma-vae)."""
    model.eval()
    device = next(model.parameters()).device
    if device.type == "mps":  # the estimators need float64, which MPS lacks
        model, device = copy.deepcopy(model).cpu(), torch.device("cpu")
    g = torch.Generator(device=device).manual_seed(seed)
    mus, logvars, sse = [], [], 0.0
    for i in range(0, len(x_uint8), BATCH):
        xb = x_uint8[i:i + BATCH].to(device).float() / 255
        mu, logvar = model.encode(xb)
        recon = model.decode(mu + torch.randn(mu.shape, generator=g, device=device) * (0.5 * logvar).exp())
        sse += float((xb - recon).pow(2).sum())
        mus.append(mu.float())
        logvars.append(logvar.float())
    mu, logvar = torch.cat(mus), torch.cat(logvars)
    n, z_dim = mu.shape
    d = x_uint8[0].numel()
    sigma = math.sqrt(max(sse / (n * d), 1e-12))
    kl = float(kl_per_dim(mu, logvar).sum(1).mean())
    neg_elbo = calibrated_neg_elbo(sse / n, kl, d)
    x_iw = x_uint8[:iw_images].to(device).float() / 255
    nll = float(-iwae_log_lik(model, x_iw, sigma, k, g).mean()) if k > 0 else float("nan")
    mi_terms = mutual_information_terms(mu, logvar, g)
    mi, mi_se = mi_terms.mean().item(), (mi_terms.std().item() / math.sqrt(n) if n > 1 else float("nan"))
    metrics = {
        "diag/eval_images": float(n),
        "diag/iw_images": float(len(x_iw)),
        "diag/r_loss": sse / (n * d),
        "diag/kl_nats": kl,
        "diag/active_units": float(active_units(mu)),
        "diag/neg_elbo_nats": neg_elbo,  # -ELBO, positive, lower is better (was diag/elbo_nats)
        "diag/elbo_bpd": bits_per_dim(neg_elbo, d),
        "diag/nll_nats": nll,
        "diag/nll_bpd": bits_per_dim(nll, d),
        "diag/mi_nats": mi,
        "diag/mi_se_nats": mi_se,
        "diag/mi_ceiling_nats": math.log(n),
        "diag/mi_saturated": float(mi_saturated(mi, mi_se, n)),
        "diag/rate_minus_mi": kl - mi,
        "diag/sigma_mle": sigma,
        # None for sigma-vae, whose decoder sigma is sigma_mle itself
        "diag/sigma_implied": math.sqrt(beta * d / (2 * z_dim)) if beta else float("nan"),
    }
    return metrics, sorted_kl_per_dim(mu, logvar)
