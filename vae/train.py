"""Train one VAE and return its per-epoch metrics.

    from vae.config import AUTO_COMPILE_STEPS, TrainConfig
    from vae.train import train
    history = train(TrainConfig(dataset="digits", z_dim=16, beta=0.05, epochs=3, out="runs/d"))
    history[-1]["test/r_loss"]

or `vae train --dataset digits --z-dim 16 --beta 0.05 --epochs 3`. `train()` knows nothing of
Optuna or MLflow: they hook in through `callback(epoch, metrics, model)`, called after every
epoch once the checkpoint is on disk. Metric keys are namespaced (`train/r_loss`, `val/loss`,
`test/kl`); losses are per image, as in vae/loss.py. `val/` is the validation split carved from the
training split (what sweeps optimise and prune on), `test/` the test split (reported, never an
objective); `data/` the three split sizes; at the end `diag/` the diagnostics on the test split's
evaluation subset (vae/metrics.py) and, with the [fid] extra, generation quality (vae/fid.py).
With `betas` it trains one beta-conditional model (vae/conditional.py) and measures every beta
(vae/measure.py: `b0.01/val/r_loss`, ...).
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Callable
from pathlib import Path

import torch

from vae.build import build_model
from vae.checkpoint import atomic_write_text, load_checkpoint, save_checkpoint
from vae.conditional import loss_weights, sample_betas
from vae.config import (
    MODEL,
    TrainConfig,
    applying,
    names,
)
from vae.data import Data, evaluation_subset, load_dataset, validation_split
from vae.errors import ConfigError, DiskFull, MeasurementFailed, TrainingDiverged
from vae.loss import vae_loss
from vae.measure import TERMS, autocast, final, grids, measure
from vae.model import VAE
from vae.paths import check_folder, check_run_folder
from vae.progress import EpochBar, label, phase, say
from vae.redact import redact
from vae.runtime import compile_wanted, compiled, pick_device

Callback = Callable[[int, dict, VAE], None]


def kl_weight(cfg: TrainConfig, step: int, steps_per_epoch: int) -> float:
    """The full KL weight, ramped linearly from 0 over kl_warmup_epochs (Bowman et al., 2016); for
    a conditional run the ramp alone (its betas are drawn per image)."""
    target = 1.0 if cfg.conditional else cfg.kl_weight
    if cfg.kl_warmup_epochs == 0:
        return target
    return target * min(1.0, step / (cfg.kl_warmup_epochs * steps_per_epoch))


def train(cfg: TrainConfig, callback: Callback | None = None, data: Data | None = None,
          saved: Callable[[int, dict], None] | None = None) -> list[dict]:
    """Train `cfg`'s model; the history, one dict of metrics per epoch. `callback(epoch, metrics, model)`
    after each epoch (the last one's once it is measured); `saved(epoch, metrics)` once an epoch's
    checkpoint is on disk: after the callback, but the last epoch's twice and before it: before the
    end-of-training measurements (a sweep uploads it from there, so that a host dying during minutes
    of FID costs no training elsewhere) and after them, measured (a retry anywhere keeps them)."""
    run = _prepare(cfg, data)
    failure = None  # of the end-of-training measurements
    for epoch in range(run.start, run.cfg.epochs + 1):
        failure = _epoch(run, epoch, callback, saved)
    cfg, out, history = run.cfg, run.out, run.history
    if run.start > cfg.epochs and not run.measured and history:  # resumed after its measurements failed or were stopped
        failure = _measure_final(run.model, run.optimizer, run.data, cfg, out, history, run.x_val)
        if callback is not None and failure is None:
            callback(history[-1]["epoch"], history[-1], run.model)
    grids(run.model, run.data.test, out, cfg)
    summary = {"config": cfg.record(), "final": history[-1] if history else {}, "history": history}
    atomic_write_text(out / "metrics.json", json.dumps(summary, indent=2) + "\n")
    if failure is not None:
        raise MeasurementFailed(out, history, failure)
    return history


@dataclasses.dataclass
class _Run:
    """One training's state between epochs: the settings as used, the model, its data on the device."""
    cfg: TrainConfig
    device: torch.device
    out: Path
    data: Data
    model: VAE
    optimizer: torch.optim.Optimizer
    step_model: object           # the model each step calls: compiled, or the model itself
    x_train: torch.Tensor
    x_val: torch.Tensor
    x_test: torch.Tensor
    x_eval: torch.Tensor         # the per-epoch test curve's images
    history: list[dict]
    start: int                   # the first epoch to train (after a resume: the one after its checkpoint's)
    measured: bool               # False: a resumed run whose last epoch was saved before its measurements

    @property
    def steps(self) -> int:
        return math.ceil(len(self.x_train) / self.cfg.batch_size)

    @property
    def sizes(self) -> dict:
        return {"data/train_images": len(self.x_train), "data/val_images": len(self.x_val),
                "data/test_images": len(self.x_test)}


def _prepare(cfg: TrainConfig, data: Data | None) -> _Run:
    """Settings checked, data on the device, the model and optimiser (from the checkpoint when
    resuming), compiled or not."""
    cfg.validate()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = pick_device(cfg.device)
    out = check_run_folder(check_folder(cfg.run_dir, "--out"))
    data = data or load_dataset(cfg.dataset, cfg.data_dir, cfg.limit, cfg.seed)
    train_part, val_part = validation_split(data.train, cfg.val_size)  # before any file: a bad val_size writes nothing
    # model and optimiser; fused Adam where the device supports it (one kernel for all params)
    torch.manual_seed(cfg.seed)
    model = build_model(cfg, data.shape).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, fused=device.type in ("cuda", "cpu"))
    # data lives on the device; batches are slices of a shuffled index
    run = _Run(cfg, device, out, data, model, optimizer, model, train_part.to(device), val_part.to(device),
               data.test.to(device), evaluation_subset(data, cfg.eval_images).to(device), [], 1, True)
    if cfg.progress:
        # say(): above the bars (a sweep's trial bar is drawn already; a plain print would overwrite it)
        say(f"{label(cfg.z_dim, cfg.training, cfg.beta, cfg.seed, cfg.betas)}: data: {len(run.x_train):,} train / "
            f"{len(run.x_val):,} validation / {len(run.x_test):,} test images "
            f"(diagnostics: {min(cfg.eval_images, len(run.x_test)):,} of test)")
    # compile or not is decided once per run (compiled and eager draw different noise) and
    # stored in the checkpoint's config: a resumed run keeps the decision of its start
    compile_run = compile_wanted(cfg, run.steps * cfg.epochs, device)
    if cfg.resume and (out / "checkpoint.pt").exists():
        blob = load_checkpoint(out, device)
        _check_resumable(blob, cfg, data.shape, out)
        model.load_state_dict(blob["model"])
        optimizer.load_state_dict(blob["optimizer"])
        run.history, run.start = blob["history"], blob["epoch"] + 1
        run.measured = blob.get("measured", True)  # older checkpoints were written after the measurements
        compile_run = blob["config"].get("compile", compile_run) if cfg.compile is None else cfg.compile
    training = run.start <= cfg.epochs
    run.step_model = compiled(model, cfg, run.x_train[:cfg.batch_size], compile_run, device) if training else model
    # as used, in checkpoints and metrics.json
    run.cfg = dataclasses.replace(cfg, compile=run.step_model is not model if training else compile_run)
    return run


def _epoch(run: _Run, epoch: int, callback: Callback | None, saved) -> BaseException | None:
    """Train one epoch, measure it, save its checkpoint, tell the callback; for the last epoch the
    end-of-training measurements too (their error, returned: the model is saved all the same)."""
    cfg = run.cfg
    bar = EpochBar(label(cfg.z_dim, cfg.training, cfg.beta, cfg.seed, cfg.betas), epoch, cfg.epochs, run.steps,
                   cfg.progress)
    train_terms, beta, seconds = _train_epoch(run, epoch, bar)
    # validation and test metrics, then checkpoint, then the callback (tracking, pruning)
    evaluated = measure(run.model, _splits(cfg, epoch, run.x_val, run.x_eval, run.x_test), cfg)  # conditional: each beta
    for split in ("val", "test_subset", "test"):
        _check_finite(evaluated.get(f"{split}/loss", 0.0), epoch)
    made = _made(run.out)  # only now: a run that diverges in epoch 1 leaves no folder
    n = len(run.x_train)
    metrics = {"epoch": epoch, **{f"train/{k}": v for k, v in train_terms.items()}, **evaluated,
               **({} if cfg.conditional else {"train/beta": beta}),
               "time/epoch_s": seconds, "time/images_per_s": n / seconds, **run.sizes}
    bar.end(train_terms, {t: evaluated.get(f"val/{t}") for t in (*TERMS, "elbo_bpd")}, seconds)
    run.history.append(metrics)
    # the trained model is on disk before the end-of-training measurements, which take minutes
    # (FID) and must never lose it; `measured` tells a resumed run whether they still have to run
    try:
        save_checkpoint(run.out, model=run.model, optimizer=run.optimizer, epoch=epoch, history=run.history,
                        config=cfg, measured=epoch < cfg.epochs)
    except DiskFull:
        for folder in made:  # folders this run made for a first checkpoint that did not fit: gone again
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
        raise
    run.measured = epoch < cfg.epochs
    failure = None
    if not run.measured:
        if saved is not None:  # the trained model leaves this host before minutes of measuring
            saved(epoch, metrics)
        failure = _measure_final(run.model, run.optimizer, run.data, cfg, run.out, run.history, run.x_val)
        if saved is not None and failure is None:  # and measured: a retry anywhere keeps the measurements
            saved(epoch, metrics)
    if callback is not None:
        callback(epoch, metrics, run.model)
    if run.measured and saved is not None:
        saved(epoch, metrics)
    return failure


def _train_epoch(run: _Run, epoch: int, bar: EpochBar) -> tuple[dict, float, float]:
    """One pass over the training images: (its mean loss terms, the KL weight of its last step, seconds)."""
    cfg, device, n, steps = run.cfg, run.device, len(run.x_train), run.steps
    beta_range = cfg.training_range if cfg.conditional else None  # not per batch
    # per-epoch seeds: a resumed run draws the same shuffles and noise as an unbroken one
    torch.manual_seed(cfg.seed * 100_003 + epoch)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(cfg.seed * 100_003 + epoch)).to(device)
    run.model.train()
    sums = torch.zeros(len(TERMS), device=device)
    t0 = time.perf_counter()
    for i in range(steps):
        idx = order[i * cfg.batch_size:(i + 1) * cfg.batch_size]
        xb = run.x_train[idx].float().div_(255)
        beta = kl_weight(cfg, (epoch - 1) * steps + i, steps)
        cond = ()
        if cfg.conditional:  # one beta per image, log-uniform over the range (YOTO): (B,)
            cond = (sample_betas(len(idx), beta_range, device),)
        with autocast(device, cfg.amp):
            recon, mu, logvar = run.step_model(xb, *cond)
        weight = loss_weights(cond[0], beta_range) if cond and cfg.normalize_loss_weights else None
        terms = vae_loss(recon, xb, mu, logvar, cond[0] * beta if cond else beta, cfg.loss, cfg.free_bits, weight)
        run.optimizer.zero_grad(set_to_none=True)
        terms.loss.backward()
        run.optimizer.step()
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
    return train_terms, beta, time.perf_counter() - t0


def _made(out: Path) -> list[Path]:
    """Create the run folder; the folders this created, innermost first (none if it existed)."""
    missing = [p for p in (out, *out.parents) if not p.exists()]
    out.mkdir(parents=True, exist_ok=True)
    return missing


def _splits(cfg: TrainConfig, epoch: int, x_val, x_eval, x_test) -> dict[str, torch.Tensor]:
    """What an epoch measures: the validation split always (objectives and pruning read it); the
    evaluation subset of the test split every test_every epochs and at the last (`test_subset/`,
    a curve that only reports); the whole test split once, after the last epoch (`test/`, the
    balance table's numbers). Measuring the whole test split every epoch cost more than training on
    CIFAR-10 subsets (benchmarks/sweep_cost.py)."""
    last = epoch == cfg.epochs
    splits = {"val": x_val}
    if last or (cfg.test_every and epoch % cfg.test_every == 0):
        splits["test_subset"] = x_eval
    if last:
        splits["test"] = x_test
    return splits


def _measure_final(model: VAE, optimizer, data: Data, cfg: TrainConfig, out: Path, history: list[dict],
                   x_val: torch.Tensor | None = None):
    """The end-of-training measurements (vae/measure.py final) into the last epoch's metrics, then
    its checkpoint again, marked measured. An error there (a bug, out of memory) is returned, not
    raised: the trained model stays on disk, and `train` reports it once metrics.json is written
    (its traceback in traceback.txt of the run folder)."""
    import traceback

    try:
        history[-1].update(final(model, data, cfg, out, x_val))
        if cfg.conditional and x_val is not None:  # the whole trained range, on the validation split
            _continuum(model, data, cfg, out, x_val)
    except Exception as e:
        atomic_write_text(out / "traceback.txt", redact(traceback.format_exc()))
        return e
    (out / "traceback.txt").unlink(missing_ok=True)  # of an earlier attempt
    save_checkpoint(out, model=model, optimizer=optimizer, epoch=history[-1]["epoch"], history=history, config=cfg)
    return None


def _continuum(model: VAE, data: Data, cfg: TrainConfig, out: Path, x_val: torch.Tensor) -> None:
    """continuum.json in `out`: the conditional model read at SCAN_POINTS betas over its whole range
    and at the grid's, on the validation split (vae/continuum.py)."""
    from vae import fid
    from vae.continuum import SCAN_FID_SAMPLES, scan, scan_betas
    from vae.measure import for_measuring

    n = min(fid.sample_count(cfg.fid_samples, data.shape), SCAN_FID_SAMPLES)
    what = f"{len(scan_betas(cfg.training_range, cfg.betas))} betas over {cfg.training_range[0]:.3g}–" \
           f"{cfg.training_range[1]:.3g} on {len(x_val):,} validation images" + (f", FID from {n:,} samples each" if n else "")
    with phase(f"continuum: {what}", enabled=cfg.progress):
        points = scan(for_measuring(model), x_val, data, cfg)
    atomic_write_text(out / "continuum.json", json.dumps(points, indent=1) + "\n")


def _check_resumable(blob: dict, cfg: TrainConfig, shape: tuple[int, int, int], out: Path) -> None:
    """The checkpoint's model must be the one `cfg` builds: name the setting that differs."""
    saved, applies = blob.get("config", {}), applying(cfg.to_dict())
    for name in names(MODEL):
        if name not in applies:
            continue  # a conditional model's setting on an ordinary run (vae/config.py)
        if saved.get(name, getattr(cfg, name)) != getattr(cfg, name):
            raise ConfigError(f"cannot resume {out}: its checkpoint has {name} {saved[name]}, --{name.replace('_', '-')} "
                              f"asks for {getattr(cfg, name)}; use the same setting or another --out")
    if tuple(blob.get("shape", shape)) != tuple(shape):
        raise ConfigError(f"cannot resume {out}: its checkpoint was trained on images of shape {tuple(blob['shape'])}, "
                          f"--dataset {cfg.dataset} has {tuple(shape)}; use the same data or another --out")


def _check_finite(value: float, epoch: int) -> None:
    if not math.isfinite(value):
        raise TrainingDiverged(epoch)
