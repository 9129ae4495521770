import pytest
import torch

from vae.model import VAE


@pytest.mark.parametrize("shape", [(1, 8, 8), (1, 28, 28), (3, 32, 32), (3, 64, 64), (3, 12, 10)])
def test_shapes(shape):
    model = VAE(*shape, z_dim=7, base=8)
    x = torch.rand(5, *shape)
    recon, mu, logvar = model(x)
    assert recon.shape == x.shape
    assert mu.shape == logvar.shape == (5, 7)
    assert 0 <= recon.min() and recon.max() <= 1
    assert model.sample(3).shape == (3, *shape)
