import math

import pytest
import torch
from torch import nn

from vae.loss import kl_per_dim
from vae.metrics import (
    active_units,
    bits_per_dim,
    calibrated_neg_elbo,
    diagnostics,
    gaussian_log_lik,
    iwae_log_lik,
    mi_saturated,
    mutual_information,
    mutual_information_terms,
)
from vae.model import VAE


def test_active_units_counts_the_dimensions_that_vary():
    g = torch.Generator().manual_seed(0)
    mu = torch.zeros(500, 6)
    mu[:, 0] = torch.randn(500, generator=g)          # variance ~1: active
    mu[:, 3] = 0.5 * torch.randn(500, generator=g)    # variance ~0.25: active
    mu[:, 4] = 0.01 * torch.randn(500, generator=g)   # variance ~1e-4: inactive
    assert active_units(mu) == 2


class TinyVAE(nn.Module):
    """A linear-Gaussian VAE on 1x2x2 images, small enough to check bounds exactly."""

    def __init__(self, ignore_x=False):
        super().__init__()
        torch.manual_seed(0)
        self.z_dim, self.ignore_x = 2, ignore_x
        self.enc = nn.Linear(4, 4)
        self.dec = nn.Linear(2, 4)

    def encode(self, x):
        h = self.enc(torch.zeros_like(x.flatten(1)) if self.ignore_x else x.flatten(1))
        return h[:, :2], h[:, 2:] - 1.0

    def decode(self, z):
        return torch.sigmoid(self.dec(z)).view(-1, 1, 2, 2)


def elbo(model, x, sigma, samples=20000):
    """E_q[log p(x|z)] - KL, by Monte Carlo for the first term and closed form for the KL."""
    mu, logvar = model.encode(x)
    z = mu + torch.randn(samples, *mu.shape) * (0.5 * logvar).exp()
    recon = model.decode(z.flatten(0, 1)).view(samples, *x.shape)
    log_px = gaussian_log_lik(x.expand(samples, *x.shape).flatten(0, 1), recon.flatten(0, 1), sigma).view(samples, -1)
    return log_px.mean(0) - kl_per_dim(mu, logvar).sum(1)


@torch.no_grad()
def test_iwae_bounds_the_elbo_and_tightens_with_k():
    torch.manual_seed(1)
    model = TinyVAE()
    x = torch.rand(8, 1, 2, 2)
    sigma = 0.3
    reference = elbo(model, x, sigma).double()
    k1 = torch.stack([iwae_log_lik(model, x, sigma, 1) for _ in range(2000)]).mean(0)
    assert torch.allclose(k1, reference, atol=0.08)  # K=1 is the ELBO in expectation
    assert abs(float(k1.mean() - reference.mean())) < 0.03
    k10 = torch.stack([iwae_log_lik(model, x, sigma, 10) for _ in range(200)]).mean(0)
    k100 = torch.stack([iwae_log_lik(model, x, sigma, 100) for _ in range(50)]).mean(0)
    assert (k10 > reference).all() and (k100 > k10 - 0.005).all()
    assert k100.mean() > k10.mean() > reference.mean()


def test_mutual_information_is_zero_when_the_encoder_ignores_x():
    g = torch.Generator().manual_seed(0)
    n = 800
    mu_blind, logvar_blind = torch.zeros(n, 4), torch.zeros(n, 4)
    assert abs(mutual_information(mu_blind, logvar_blind, g)) < 0.05
    mu = 3 * torch.randn(n, 4, generator=g)
    logvar = torch.full((n, 4), -2.0)
    informative = mutual_information(mu, logvar, g)
    assert informative > 2.0
    assert informative <= math.log(n) + 1e-6  # the estimator is capped by log N


def test_sigma_mle_is_the_rmse_and_bits_per_dim_convention():
    torch.manual_seed(0)
    model = VAE(1, 8, 8, z_dim=3, base=4)
    x = (torch.rand(64, 1, 8, 8) * 255).to(torch.uint8)
    metrics, kl_dims = diagnostics(model, x, beta=0.1, k=3, iw_images=16, seed=0)
    # recompute the RMSE with the same seeded posterior samples
    g = torch.Generator().manual_seed(0)
    xf = x.float() / 255
    mu, logvar = model.encode(xf)
    recon = model.decode(mu + torch.randn(mu.shape, generator=g) * (0.5 * logvar).exp())
    rmse = ((xf - recon) ** 2).mean().sqrt().item()
    assert metrics["diag/sigma_mle"] == pytest.approx(rmse, rel=1e-4)
    assert metrics["diag/sigma_implied"] == pytest.approx(math.sqrt(0.1 * 64 / 6))
    assert len(kl_dims) == 3 and kl_dims == sorted(kl_dims, reverse=True)
    # a uniform density on [0, 1] is 8 bits/dim; the calibrated -ELBO's minimum sits at sigma = RMSE
    assert bits_per_dim(0.0, 64) == pytest.approx(8.0)
    sse, kl, d = 64 * rmse**2, 1.0, 64
    best = calibrated_neg_elbo(sse, kl, d)
    for s in (0.5 * rmse, 2 * rmse):
        assert 0.5 * d * math.log(2 * math.pi * s * s) + sse / (2 * s * s) + kl > best


def test_mi_is_flagged_at_its_ceiling_for_an_encoder_that_separates_every_image():
    g = torch.Generator().manual_seed(0)
    n = 500
    # posteriors far apart: each z_i is explained by its own x_i alone, so the estimate is log N
    mu, logvar = 50 * torch.randn(n, 8, generator=g), torch.full((n, 8), -4.0)
    terms = mutual_information_terms(mu, logvar, g)
    mi, se = terms.mean().item(), terms.std().item() / math.sqrt(n)
    assert mi == pytest.approx(math.log(n), abs=4 * se)
    assert mi_saturated(mi, se, n)
    # an informative encoder below the ceiling is not flagged, nor is one that ignores x
    mu = 0.5 * torch.randn(n, 2, generator=g)
    terms = mutual_information_terms(mu, torch.full((n, 2), -1.0), g)
    assert not mi_saturated(terms.mean().item(), terms.std().item() / math.sqrt(n), n)
    terms = mutual_information_terms(torch.zeros(n, 2), torch.zeros(n, 2), g)
    assert not mi_saturated(terms.mean().item(), terms.std().item() / math.sqrt(n), n)


def test_diagnostics_report_the_mi_ceiling_and_are_seeded():
    torch.manual_seed(0)
    model = VAE(1, 8, 8, z_dim=3, base=4)
    x = (torch.rand(40, 1, 8, 8) * 255).to(torch.uint8)
    first, _ = diagnostics(model, x, beta=0.1, k=3, iw_images=8, seed=1)
    assert first["diag/mi_ceiling_nats"] == pytest.approx(math.log(40))
    assert first["diag/eval_images"] == 40 and first["diag/iw_images"] == 8
    assert first == diagnostics(model, x, beta=0.1, k=3, iw_images=8, seed=1)[0]


@pytest.mark.parametrize("mi, se, expected", [
    (math.log(180) - 0.30, 0.21, True),    # within two standard errors below the ceiling (4.89 under 5.19)
    (math.log(180) - 0.50, 0.21, False),   # more than two below: the estimate ranks
    (math.log(180) + 0.10, 0.01, True),    # above the ceiling (noise)
    (math.log(180) + 0.10, float("nan"), True),  # above it, standard error unknown: still "or above"
    (math.log(180) - 0.10, float("nan"), False),
])
def test_mi_saturated_is_the_rule_the_readme_states(mi, se, expected):
    """README: "an estimate within two standard errors of the ceiling (or above) is flagged"."""
    assert mi_saturated(mi, se, 180) is expected


def _mi_terms_by_definition(mu, logvar, g):
    """He et al.'s estimator term by term, the N x N x z tensor spelled out (the reference)."""
    mu, logvar = mu.double(), logvar.double()
    n, z_dim = mu.shape
    z = mu + torch.randn(mu.shape, generator=g, dtype=mu.dtype) * (0.5 * logvar).exp()
    log_q = torch.distributions.Normal(mu[None], (0.5 * logvar).exp()[None]).log_prob(z[:, None]).sum(-1)  # [i, j]
    neg_entropy = -torch.distributions.Normal(mu, (0.5 * logvar).exp()).entropy().sum(-1)
    return neg_entropy - (torch.logsumexp(log_q, 1) - math.log(n))


@pytest.mark.parametrize("spread, logvar_range", [(1.0, (-1.0, 1.0)), (30.0, (-18.0, -8.0)), (0.01, (-0.5, 0.5))])
def test_mi_terms_equal_the_definition(spread, logvar_range):
    """The expanded-square form (two matrix products) against the estimator written out, for
    ordinary posteriors, very narrow ones far apart (the cancellation's worst case) and a blind encoder."""
    g = torch.Generator().manual_seed(3)
    n, z_dim = 1500, 20  # > one chunk of 1024
    mu = spread * torch.randn(n, z_dim, generator=g)
    lo, hi = logvar_range
    logvar = lo + (hi - lo) * torch.rand(n, z_dim, generator=g)
    fast = mutual_information_terms(mu, logvar, torch.Generator().manual_seed(9))
    reference = _mi_terms_by_definition(mu, logvar, torch.Generator().manual_seed(9))
    assert torch.allclose(fast, reference, rtol=1e-9, atol=1e-7)


def test_measuring_uses_a_channels_last_copy_with_the_same_numbers():
    """Measurement runs on a channels-last copy (faster on CPUs): the training model keeps its
    layout and mode, and the losses are those of the model as it is, to float rounding."""
    from vae.config import TrainConfig
    from vae.measure import evaluate, for_measuring
    from vae.model import VAE

    torch.manual_seed(0)
    model = VAE(3, 32, 32, 8, base=8).train()
    # images of different brightness (their SSEs differ: the standard errors are not all cancellation)
    x = (torch.rand(300, 1, 1, 1) * 200 + torch.rand(300, 3, 32, 32) * 55).to(torch.uint8)
    copy = for_measuring(model)
    assert copy is not model and not copy.training and model.training
    assert all(p.is_contiguous() for p in model.parameters())  # NCHW, as training compiled it
    assert for_measuring(copy) is copy  # measured as it is once in that layout
    with torch.no_grad():
        xb = x[:64].float() / 255
        assert torch.allclose(copy.decode(copy.encode(xb)[0]), model.decode(model.encode(xb)[0]), atol=1e-6)
    cfg = TrainConfig(z_dim=8, beta=0.01)
    by_batches = evaluate(model, x, cfg, batch_size=1024)  # one pass: the noise is the same stream
    assert evaluate(model, x, cfg) == pytest.approx(by_batches, rel=1e-5)
