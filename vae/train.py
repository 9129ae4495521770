"""Train one VAE and return its per-epoch metrics.

    from vae.config import AUTO_COMPILE_STEPS, TrainConfig
    from vae.train import train
    history = train(TrainConfig(dataset="digits", z_dim=16, beta=0.05, epochs=3, out="runs/d"))
    history[-1]["test/r_loss"]

or `vae train --dataset digits --z-dim 16 --beta 0.05 --epochs 3`. `train()` knows nothing of
Optuna or MLflow: they hook in through `callback(epoch, metrics, model)`, called after every
epoch once the checkpoint is on disk. Metric keys are namespaced (`train/r_loss`, `test/kl`);
losses are per image, as in vae/loss.py.
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

from vae.checkpoint import atomic_write_text, load_checkpoint, save_checkpoint
from vae.config import AUTO_COMPILE_STEPS, TrainConfig
from vae.data import Data, load_dataset
from vae.errors import ConfigError, TrainingDiverged
from vae.images import save_grids
from vae.loss import vae_loss
from vae.metrics import bits_per_dim, calibrated_neg_elbo, diagnostics
from vae.model import VAE
from vae.progress import EpochBar, label, phase

TERMS = ("loss", "r_loss", "kld_loss", "sse", "kl")
Callback = Callable[[int, dict, VAE], None]


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
        torch.empty(1, device=device)
    except (RuntimeError, AssertionError) as e:
        raise ConfigError(f"device {name!r} is not usable here: {e}") from None
    return device


def full_kl_weight(cfg: TrainConfig) -> float:
    """beta for the original loss; 1 for sigma-vae, whose objective is the ELBO itself."""
    return 1.0 if cfg.loss == "sigma-vae" else cfg.beta


def kl_weight(cfg: TrainConfig, step: int, steps_per_epoch: int) -> float:
    """The full KL weight, ramped linearly from 0 over kl_warmup_epochs (Bowman et al., 2016)."""
    target = full_kl_weight(cfg)
    if cfg.kl_warmup_epochs == 0:
        return target
    return target * min(1.0, step / (cfg.kl_warmup_epochs * steps_per_epoch))


def autocast(device: torch.device, enabled: bool):
    # bf16 on CUDA only: on CPUs without AVX-512 bf16 autocast is ~20x slower than fp32
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=enabled and device.type == "cuda")


@torch.no_grad()
def evaluate(model: VAE, x: torch.Tensor, cfg: TrainConfig, batch_size: int = 1024) -> dict[str, float]:
    """Test-set losses (per image, averaged over x, a uint8 tensor), at the full KL weight."""
    model.eval()
    device = next(model.parameters()).device
    beta = full_kl_weight(cfg)
    sums = torch.zeros(len(TERMS), device=device, dtype=torch.float64)
    for i in range(0, len(x), batch_size):
        xb = x[i:i + batch_size].to(device).float() / 255
        with autocast(device, cfg.amp):
            recon, mu, logvar = model(xb)
        terms = vae_loss(recon, xb, mu, logvar, beta, cfg.loss, cfg.free_bits)
        sums += torch.stack([getattr(terms, t) for t in TERMS]).double() * len(xb)
    return dict(zip(TERMS, (sums / len(x)).tolist()))


def compile_wanted(cfg: TrainConfig, total_steps: int, device: torch.device) -> bool:
    """--compile / --no-compile, or by default only for runs long enough to pay for compiling."""
    if cfg.compile is not None:
        return cfg.compile
    return total_steps >= AUTO_COMPILE_STEPS and device.type in ("cpu", "cuda")


def applied(cfg: TrainConfig, n_train: int) -> dict:
    """The recorded settings as `train` applies them on this machine: the device picked, whether
    it compiles, the CPU threads, and amp only where it has an effect (CUDA). What a tracker logs."""
    device = pick_device(cfg.device)
    steps = math.ceil(n_train / cfg.batch_size) * cfg.epochs
    return {**cfg.record(), "device": str(device), "compile": compile_wanted(cfg, steps, device),
            "threads": cfg.threads or torch.get_num_threads(), "amp": cfg.amp and device.type == "cuda"}


def build_model(cfg: TrainConfig, shape: tuple[int, int, int]) -> VAE:
    return VAE(*shape, z_dim=cfg.z_dim, base=cfg.width)


def train(cfg: TrainConfig, callback: Callback | None = None, data: Data | None = None) -> list[dict]:
    cfg.validate()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = pick_device(cfg.device)
    data = data or load_dataset(cfg.dataset, cfg.data_dir, cfg.limit, cfg.seed)
    out = Path(cfg.run_dir)

    # model and optimiser; fused Adam where the device supports it (one kernel for all params)
    torch.manual_seed(cfg.seed)
    model = build_model(cfg, data.shape).to(device)
    fused = device.type in ("cuda", "cpu")
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, fused=fused)
    history: list[dict] = []
    start = 1
    if cfg.resume and (out / "checkpoint.pt").exists():
        blob = load_checkpoint(out, device)
        model.load_state_dict(blob["model"])
        optimizer.load_state_dict(blob["optimizer"])
        history, start = blob["history"], blob["epoch"] + 1
    out.mkdir(parents=True, exist_ok=True)

    # data lives on the device; batches are slices of a shuffled index
    x_train, x_test = data.train.to(device), data.test.to(device)
    n = len(x_train)
    steps = math.ceil(n / cfg.batch_size)
    step_model = _compiled(model, cfg, x_train[:cfg.batch_size], steps * (cfg.epochs - start + 1), device)
    for epoch in range(start, cfg.epochs + 1):
        # per-epoch seeds: a resumed run draws the same shuffles and noise as an unbroken one
        torch.manual_seed(cfg.seed * 100_003 + epoch)
        order = torch.randperm(n, generator=torch.Generator().manual_seed(cfg.seed * 100_003 + epoch)).to(device)
        model.train()
        sums = torch.zeros(len(TERMS), device=device)
        t0 = time.perf_counter()
        bar = EpochBar(label(cfg.z_dim, cfg.beta, cfg.seed, cfg.loss), epoch, cfg.epochs, steps, cfg.progress)
        for i in range(steps):
            idx = order[i * cfg.batch_size:(i + 1) * cfg.batch_size]
            xb = x_train[idx].float().div_(255)
            beta = kl_weight(cfg, (epoch - 1) * steps + i, steps)
            with autocast(device, cfg.amp):
                recon, mu, logvar = step_model(xb)
            terms = vae_loss(recon, xb, mu, logvar, beta, cfg.loss, cfg.free_bits)
            optimizer.zero_grad(set_to_none=True)
            terms.loss.backward()
            optimizer.step()
            # accumulate on the device: no host sync per batch
            sums += torch.stack([getattr(terms, t).detach() for t in TERMS]) * len(idx)
            running = None
            if bar.wants_losses(i):  # every 10% of the epoch: one host sync
                running = dict(zip(TERMS, (sums / min(n, (i + 1) * cfg.batch_size)).tolist()))
                _check_finite(running["loss"], epoch)
            bar.update(running)
        bar.close()
        train_terms = dict(zip(TERMS, (sums / n).tolist()))
        _check_finite(train_terms["loss"], epoch)
        seconds = time.perf_counter() - t0

        # test-set metrics, then checkpoint, then the callback (tracking, pruning)
        test_terms = evaluate(model, x_test, cfg)
        _check_finite(test_terms["loss"], epoch)
        d = x_test[0].numel()
        test_terms["elbo_bpd"] = bits_per_dim(calibrated_neg_elbo(test_terms["sse"], test_terms["kl"], d), d)
        metrics = {"epoch": epoch, **{f"train/{k}": v for k, v in train_terms.items()},
                   **{f"test/{k}": v for k, v in test_terms.items()},
                   "train/beta": beta, "time/epoch_s": seconds, "time/images_per_s": n / seconds}
        if epoch == cfg.epochs and cfg.iw_samples > 0:
            with phase(f"diagnostics: active units, MI, IWAE NLL (K={cfg.iw_samples})", enabled=cfg.progress):
                diag, kl_dims = diagnostics(model, x_test, cfg.beta if cfg.loss == "beta" else None,
                                            k=cfg.iw_samples, seed=cfg.seed)
            metrics.update(diag)
            atomic_write_text(out / "kl_per_dim.json", json.dumps(kl_dims) + "\n")
        bar.end(train_terms, test_terms, seconds)
        history.append(metrics)
        save_checkpoint(out, model=model, optimizer=optimizer, epoch=epoch, history=history, config=cfg)
        if callback is not None:
            callback(epoch, metrics, model)

    save_grids(model, data.test, out)
    summary = {"config": cfg.record(), "final": history[-1] if history else {}, "history": history}
    atomic_write_text(out / "metrics.json", json.dumps(summary, indent=2) + "\n")
    return history


def _compiled(model: VAE, cfg: TrainConfig, example: torch.Tensor, total_steps: int, device: torch.device):
    """torch.compile when asked, or automatically for long runs; eager if compilation fails.

    Compiled once here on a full batch (forward and backward, no optimiser step), with static
    shapes: the last, smaller batch gets a graph of its own instead of making every batch a slower
    dynamic-shape graph. The global RNG is reseeded per epoch, so this changes no number."""
    if not compile_wanted(cfg, total_steps, device):
        return model
    import logging

    logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)  # "No CUDA runtime" on CPUs
    compiled = torch.compile(model, dynamic=False)
    try:
        with phase("compiling the model (torch.compile, once per run)", enabled=cfg.progress):
            with autocast(device, cfg.amp):
                recon, mu, logvar = compiled(example.float() / 255)
            vae_loss(recon, example.float() / 255, mu, logvar, 1.0).loss.backward()
    except Exception as e:  # no C++ compiler, no Triton, an unsupported backend
        if cfg.compile:
            raise ConfigError(f"--compile failed ({type(e).__name__}: {str(e).splitlines()[0][:200]}); "
                              "run without it") from None
        print(f"note: torch.compile unavailable ({type(e).__name__}); training without it", file=sys.stderr)
        return model
    finally:
        model.zero_grad(set_to_none=True)
    return compiled


def _check_finite(value: float, epoch: int) -> None:
    if not math.isfinite(value):
        raise TrainingDiverged(epoch)
