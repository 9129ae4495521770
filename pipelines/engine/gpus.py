"""One worker per GPU: which GPU each worker process of `vae sweep --workers N` gets.

    plan = gpu_plan(workers=4, gpus=None)   # a host with 2 GPUs: ["0", "1", "0", "1"]
    child_env(plan, i)                      # {..., "CUDA_VISIBLE_DEVICES": plan[i]}

Worker i gets GPU i mod G through its own CUDA_VISIBLE_DEVICES, so that inside it the GPU is
`cuda` (device 0) and nothing else is visible: the trainer's device choice stays "auto". The GPUs
are `--gpus` (as torch numbers them in this process, or their UUIDs: under a CUDA_VISIBLE_DEVICES
of 4,6 `--gpus 1` is GPU 6), else the ones this process may see (its own CUDA_VISIBLE_DEVICES, as
given), else every GPU torch counts. With no GPU (a CPU
host) the plan is empty and nothing changes. A worker records its GPU on every trial it runs (the
MLflow tag `vae.gpu`, and a line when the trial starts).

Why not a library: torch's and CUDA's own rule is exactly one environment variable read at CUDA
initialisation; a scheduler (SLURM's --gpus-per-task) sets it per task, and this module does the
same for the processes one `vae sweep` starts.
"""

from __future__ import annotations

import os

from vae.errors import VAEError

ENV = "CUDA_VISIBLE_DEVICES"
WORKER_ENV = "VAE_WORKER_GPU"  # set beside it by the parent: this worker's GPU was assigned
TAG = "vae.gpu"


class GpuError(VAEError):
    """--gpus names GPUs that this host does not have."""


def device_count() -> int:
    """GPUs torch sees here (0 without CUDA); the tests fake it."""
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def parse(value: str | None) -> list[str] | None:
    """`--gpus 0,2` -> ["0", "2"]; None when not given."""
    if value is None:
        return None
    ids = [v.strip() for v in str(value).split(",") if v.strip()]
    if not ids:
        raise GpuError(f"--gpus {value!r}: name at least one GPU, e.g. --gpus 0,1")
    twice = sorted({i for i in ids if ids.count(i) > 1})
    if twice:
        raise GpuError(f"--gpus {value}: lists GPU {', '.join(twice)} more than once")
    bad = [i for i in ids if not (i.isdigit() or i.startswith(("GPU-", "MIG-")))]
    if bad:
        raise GpuError(f"--gpus {value}: {bad[0]!r} is not a GPU number (0, 1, ...) or UUID (GPU-...)")
    return ids


def gpu_plan(workers: int, gpus: list[str] | None) -> list[str]:
    """The GPU of each worker (worker i: GPU i mod G), or [] on a host without GPUs."""
    count = device_count()
    visible = _visible(count)  # None, or this process's GPUs as narrowed (by hand, or by a scheduler)
    if gpus is None:
        gpus = visible if visible is not None else [str(i) for i in range(count)]
    elif count == 0:
        raise GpuError(f"--gpus {','.join(gpus)}: no CUDA GPU is usable here (torch counts 0); leave --gpus out "
                       "to train on the CPU")
    else:  # numbers as torch gives them in this process, 0 .. count-1: within a narrowed set, its positions
        missing = [g for g in gpus if g.isdigit() and int(g) >= count]
        if missing:
            where = f"{ENV}={os.environ[ENV]} leaves" if visible is not None else "this host has"
            raise GpuError(f"--gpus {','.join(gpus)}: {where} {count} GPU(s) (0-{count - 1}), not GPU {missing[0]}")
        outside = [g for g in gpus if not g.isdigit() and visible is not None and g not in visible]
        if outside:
            raise GpuError(f"--gpus {','.join(gpus)}: {outside[0]} is not among {ENV}={os.environ[ENV]}")
        if visible is not None:
            gpus = [visible[int(g)] if g.isdigit() else g for g in gpus]
    if not gpus:
        return []
    return [gpus[i % len(gpus)] for i in range(workers)]


def _visible(count: int) -> list[str] | None:
    """The entries of this process's CUDA_VISIBLE_DEVICES that torch uses (its first `count`), or None
    where it is unset."""
    value = os.environ.get(ENV)
    if value is None:
        return None
    return [v.strip() for v in value.split(",") if v.strip()][:count]


def child_env(plan: list[str], i: int) -> dict:
    """The environment of worker i: this one's, with its GPU alone visible (unchanged without GPUs)."""
    env = dict(os.environ)
    if plan:
        env[ENV] = env[WORKER_ENV] = plan[i]
    return env


def describe(plan: list[str], pids: list[int]) -> list[str]:
    """What the sweep prints once its workers started: one line per worker with a GPU."""
    return [f"worker {i + 1} of {len(pids)} (pid {pid}): GPU {g} ({ENV}={g})" for i, (g, pid) in
            enumerate(zip(plan, pids))]


def assigned(device: str) -> str | None:
    """This worker's GPU for its trials' tag and line: the one its parent assigned, else on CUDA
    what CUDA_VISIBLE_DEVICES narrowed it to (or the device's number); None on a CPU host."""
    if os.environ.get(WORKER_ENV):
        return os.environ[WORKER_ENV]
    if not device.startswith("cuda"):
        return None
    index = int(device.split(":", 1)[1]) if ":" in device else 0
    visible = _visible(index + 1) or []
    return visible[index] if index < len(visible) else str(index)
