import math

import torch

from vae.loss import kl_per_dim, vae_loss


def test_loss_matches_hand_computed_values():
    # two 1x2x2 images (D=4), z_dim=2
    x = torch.tensor([[[[0.0, 1.0], [0.5, 0.5]]], [[[1.0, 1.0], [0.0, 0.0]]]])
    recon = torch.tensor([[[[0.5, 1.0], [0.5, 0.0]]], [[[1.0, 0.0], [0.0, 0.0]]]])
    mu = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    logvar = torch.tensor([[0.0, math.log(2.0)], [0.0, 0.0]])
    # SSE per image: 0.25 + 0.25 = 0.5 and 1.0 -> mean 0.75; R = 0.75 / 4
    # KL image 1: 0.5*1 + 0.5*(2 - 1 - ln 2) = 0.5 + 0.5*(1 - ln 2); image 2: 0.5*4 = 2
    kl1 = 0.5 + 0.5 * (1 - math.log(2.0))
    kl = (kl1 + 2.0) / 2
    terms = vae_loss(recon, x, mu, logvar, beta=0.1)
    assert math.isclose(terms.sse.item(), 0.75, rel_tol=1e-6)
    assert math.isclose(terms.r_loss.item(), 0.75 / 4, rel_tol=1e-6)
    assert math.isclose(terms.kl.item(), kl, rel_tol=1e-6)
    assert math.isclose(terms.kld_loss.item(), kl / 2, rel_tol=1e-6)
    assert math.isclose(terms.loss.item(), 0.75 / 4 + 0.1 * kl / 2, rel_tol=1e-6)


def test_closed_form_kl_matches_monte_carlo():
    g = torch.Generator().manual_seed(0)
    mu = torch.randn(3, 5, generator=g)
    logvar = torch.randn(3, 5, generator=g) * 0.5
    q = torch.distributions.Normal(mu, (0.5 * logvar).exp())
    p = torch.distributions.Normal(torch.zeros_like(mu), torch.ones_like(mu))
    z = q.sample((200_000,))
    mc = (q.log_prob(z) - p.log_prob(z)).mean(0)
    assert torch.allclose(kl_per_dim(mu, logvar), mc, atol=0.02)


def test_free_bits_floor_each_dimension_exactly():
    x = torch.zeros(2, 1, 2, 2)
    recon = torch.zeros_like(x)
    mu = torch.tensor([[0.1, 2.0], [0.1, 2.0]])  # KL per dim: 0.005 and 2.0
    logvar = torch.zeros(2, 2)
    plain = vae_loss(recon, x, mu, logvar, beta=1.0)
    floored = vae_loss(recon, x, mu, logvar, beta=1.0, free_bits=0.5)
    assert math.isclose(plain.loss.item(), (0.005 + 2.0) / 2, rel_tol=1e-5)
    assert math.isclose(floored.loss.item(), (0.5 + 2.0) / 2, rel_tol=1e-5)
    assert floored.kl.item() == plain.kl.item()  # reported KL is never floored


def test_sigma_vae_uses_the_optimal_variance():
    g = torch.Generator().manual_seed(1)
    x = torch.rand(4, 1, 4, 4, generator=g)
    recon = torch.rand(4, 1, 4, 4, generator=g)
    mu, logvar = torch.zeros(4, 3), torch.zeros(4, 3)
    terms = vae_loss(recon, x, mu, logvar, beta=1.0, kind="sigma-vae")
    d = 16
    mse = ((x - recon) ** 2).flatten(1).sum(1).mean() / d
    expected = (0.5 * d * torch.log(2 * math.pi * mse) + 0.5 * d) / d
    assert math.isclose(terms.loss.item(), expected.item(), rel_tol=1e-5)
    # the optimum: any other sigma gives a larger Gaussian NLL
    sse = mse * d
    for s2 in (mse * 0.5, mse * 2):
        other = (0.5 * d * torch.log(2 * math.pi * s2) + sse / (2 * s2)) / d
        assert other > expected
