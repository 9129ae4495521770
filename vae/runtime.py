"""Where and how a run executes on this machine: the device, whether it compiles, and the settings
as applied there (what a tracker logs).

    device = pick_device("auto")             # cuda, then mps, then cpu
    applied(cfg, data)                       # cfg.record() plus device, compile, threads, resolved sizes
"""

from __future__ import annotations

import math

import torch

from vae.config import AUTO_COMPILE_STEPS, FILM, TrainConfig, conditional_only
from vae.data import Data, validation_size
from vae.errors import ConfigError
from vae.loss import vae_loss
from vae.measure import autocast
from vae.model import VAE
from vae.progress import phase, say


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


def compile_wanted(cfg: TrainConfig, total_steps: int, device: torch.device) -> bool:
    """--compile / --no-compile, or by default only for runs long enough to pay for compiling:
    >= AUTO_COMPILE_STEPS optimiser steps in all (not those left: a resumed run decides as its
    start did, and keeps the decision stored in its checkpoint) on cpu or cuda."""
    if cfg.compile is not None:
        return cfg.compile
    return total_steps >= AUTO_COMPILE_STEPS and device.type in ("cpu", "cuda")


def applied(cfg: TrainConfig, data: Data) -> dict:
    """The recorded settings as `train` applies them on this machine to `data`: what a tracker
    logs. The device picked, whether it compiles, the CPU threads, amp only where it has an effect
    (CUDA); only the settings that apply to this run (betas and config.conditional_only()
    only for a beta-conditional one, which has no beta of its own, the film_ ones only with FiLM; iw_images only with iw_samples > 0,
    fid_recon only with FID), and
    the values it uses where a setting is capped or defaulted: eval_images and iw_images at most
    the test images there are, fid_samples and val_size resolved (vae/fid.py sample_count, vae/data.py
    validation_size), beta_range the training range."""
    from vae.fid import sample_count

    device = pick_device(cfg.device)
    steps = math.ceil(len(data.train) / cfg.batch_size) * cfg.epochs
    out = {**cfg.record(), "device": str(device), "compile": compile_wanted(cfg, steps, device),
           "threads": cfg.threads or torch.get_num_threads(), "amp": cfg.amp and device.type == "cuda"}
    if cfg.conditional:
        out["beta_range"] = list(cfg.training_range)
        del out["beta"]  # each beta's run has its own (pipelines/beta_runs.py)
        for name in FILM if cfg.conditioning != "film" else ():
            del out[name]
        if cfg.beta_span is None or cfg.beta_range:  # beta_range says it
            del out["beta_span"]
    else:
        for name in ("betas", *conditional_only()):
            del out[name]
    if cfg.val_size is None:  # the default rule's number (a bad val_size fails in `train`, where it did)
        try:
            out["val_size"] = validation_size(len(data.train), None)
        except ConfigError:
            pass
    out["fid_samples"] = sample_count(cfg.fid_samples, data.shape)
    out["eval_images"] = min(cfg.eval_images, len(data.test))  # vae.data.evaluation_subset takes no more
    if cfg.iw_samples > 0:
        out["iw_images"] = min(cfg.iw_images, out["eval_images"])  # a prefix of the evaluation subset
    else:
        del out["iw_images"]
    if out["fid_samples"] == 0:
        del out["fid_recon"]  # no FID at all
    return out


def compiled(model: VAE, cfg: TrainConfig, example: torch.Tensor, wanted: bool, device: torch.device):
    """torch.compile when wanted; eager if compilation fails (unless asked for explicitly).

    Compiled once here on a full batch (forward and backward, no optimiser step), with static
    shapes: the last, smaller batch gets a graph of its own instead of making every batch a slower
    dynamic-shape graph."""
    if not wanted:
        return model
    import logging

    logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)  # "No CUDA runtime" on CPUs
    compiled = torch.compile(model, dynamic=False)
    try:
        with phase("compiling the model (torch.compile, once per run)", enabled=cfg.progress):
            cond = (torch.full((len(example),), cfg.training_range[0], device=device),) if cfg.conditional else ()
            with autocast(device, cfg.amp):
                recon, mu, logvar = compiled(example.float() / 255, *cond)
            vae_loss(recon, example.float() / 255, mu, logvar, 1.0).loss.backward()
    except Exception as e:  # no C++ compiler, no Triton, an unsupported backend
        if cfg.compile:
            raise ConfigError(f"--compile failed ({type(e).__name__}: {str(e).splitlines()[0][:200]}); "
                              "run without it") from None
        say(f"note: torch.compile unavailable ({type(e).__name__}); training without it")
        return model
    finally:
        model.zero_grad(set_to_none=True)
    return compiled


# --- CPU threads: how many this process should use -------------------------------------------
def usable_cores() -> int:
    """The cores this process may run on: its CPU affinity, capped by a cgroup CPU quota
    (containers, SLURM: `cpu.max` in cgroup v2, `cpu.cfs_quota_us` in v1)."""
    import os
    from pathlib import Path

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    for quota_file, period_file in (("/sys/fs/cgroup/cpu.max", None),
                                    ("/sys/fs/cgroup/cpu/cpu.cfs_quota_us", "/sys/fs/cgroup/cpu/cpu.cfs_period_us")):
        try:
            text = Path(quota_file).read_text().split()
            quota, period = (text[0], text[1]) if period_file is None else (text[0], Path(period_file).read_text())
            if quota not in ("max", "-1") and int(quota) > 0:
                cores = min(cores, max(1, int(int(quota) // int(period))))
        except (OSError, ValueError, IndexError):
            continue
    return max(1, cores)


def other_load() -> float:
    """Runnable work already on this machine: the 1-minute load average (0 where unknown)."""
    import os

    try:
        return os.getloadavg()[0]
    except (OSError, AttributeError):
        return 0.0


def choose_threads(workers: int = 1) -> tuple[int, str]:
    """(threads per worker, why): the usable cores shared by the workers, minus the cores other
    work keeps busy; at least 1. An OpenMP team larger than the free cores spins at every barrier
    when it shares them (measured on 2 cores beside a training: 300 steps 13.9 s with 2 threads,
    0.7 s with 1), so a busy machine gets fewer threads, not more."""
    cores, load = usable_cores(), other_load()
    free = max(1.0, cores - load)
    threads = max(1, min(cores // max(1, workers), int(free / max(1, workers) + 0.5)))  # a core 50 % busy counts as free
    why = f"{cores} usable core(s), load {load:.1f}" + (f", {workers} workers" if workers > 1 else "")
    return threads, why
