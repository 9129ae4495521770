"""A sweep's Optuna study: its storage, creation (or growth), the sampler and the pruner.

    store = make_storage(url, heartbeat_interval=10, grace_period=60)
    spec, study, experiment_id, parent = open_study(spec, store, tracker, url)

Reading an existing study, without creating anything, is pipelines/common/studies.py's. A trial's
life (claim, resume, train, measure, result) is pipelines/engine/trial.py's; making a study's state right
after kills (dead trials, retries, the grid's points) is pipelines/engine/recovery.py's. Grid points are
enqueued, each once, under the study lock (pipelines/common/locks.py) and claimed through the storage's
atomic WAITING -> RUNNING transition; Optuna's GridSampler is not used: it can hand the same point
to two workers.
"""

from __future__ import annotations

import os
import socket
import zlib

from pipelines.common.faults import fault
from pipelines.common.locks import create_sqlite, study_lock
from pipelines.common.spec import Spec, SpecError
from pipelines.common.stores import check_kind, connect_args, create_parent
from pipelines.common.studies import StorageError, quiet_optuna, storage_url, unusable
from pipelines.engine.points import GRID_PARAMS, add_points, grow, removed, study_points
from pipelines.tracking.runs import Tracker
from vae.config import SETTINGS_VERSION


def make_storage(url: str | None, heartbeat_interval: float = 10, grace_period: float = 60):
    """The study's Optuna storage (created where it is a new SQLite file), with Optuna's heartbeat."""
    import optuna

    quiet_optuna()
    url = storage_url(url)
    check_kind(url, "optuna", StorageError)  # again: the tracking store may have been made since
    create_parent(url)
    if url.startswith("sqlite"):
        engine = {"connect_args": {"timeout": 60}}  # several local workers share the file
    elif connect_args(url):
        engine = {"connect_args": connect_args(url), "pool_pre_ping": True}  # unreachable: fail in seconds
    else:
        engine = {}
    try:
        create_sqlite(url, lambda tmp: optuna.storages.RDBStorage(tmp, engine_kwargs=engine).engine.dispose())
        return optuna.storages.RDBStorage(
            url, engine_kwargs=engine, heartbeat_interval=heartbeat_interval, grace_period=grace_period)
    except Exception as e:
        raise unusable(url, e) from None


def _sampler(spec: Spec):
    import optuna

    # Each worker process draws from its own stream (the spec's seed mixed with its host and pid):
    # workers seeded alike proposed the same points in lockstep. A sampler study is therefore not
    # reproducible run to run; a grid is. TPE's constant liar keeps workers off each other's region.
    seed = zlib.crc32(f"{spec.train.seed}:{socket.gethostname()}:{os.getpid()}".encode())
    if spec.sampler == "tpe":
        return optuna.samplers.TPESampler(seed=seed, constant_liar=True)
    return optuna.samplers.RandomSampler(seed=seed)  # grid points are enqueued, never sampled


def _pruner(spec: Spec):
    import optuna

    p = spec.pruner
    if p is None or p.type == "none":
        return optuna.pruners.NopPruner()
    if p.type == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=max(1, p.warmup_epochs), max_resource=spec.train.epochs)
    return optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=p.warmup_epochs)


def open_study(spec: Spec, storage, tracker: Tracker, url: str, log=None):
    """Create the study or load it, check that it was run with the same settings (or grows), and
    return (the spec as
    the study runs it: Spec.for_study, study, experiment_id, parent_run_id). Safe with any number of
    workers starting at once: all of it runs under the study lock, and a creator killed halfway
    leaves what the next start completes. `log`: where the lines on a grown study go (None: nowhere,
    as in a `--workers` child, whose parent said them)."""
    import optuna

    with study_lock(url, spec.study):
        study = optuna.create_study(study_name=spec.study, storage=storage, direction=spec.direction,
                                    sampler=_sampler(spec), pruner=_pruner(spec), load_if_exists=True)
        fault("created")
        fingerprint = study.user_attrs.get("fingerprint")
        if fingerprint is None:  # new (or its creator died before this): ours to describe
            study.set_metric_names([spec.metric])
            study.set_user_attr("spec", spec.describe())  # whole: a later change of a default changes no study
            study.set_user_attr("settings_version", SETTINGS_VERSION)
            study.set_user_attr("total", spec.total)
            if spec.sampler == "grid":
                study.set_user_attr(GRID_PARAMS, "ranges")  # grows (pipelines/engine/points.py)
                add_points(study, spec.grid())
            study.set_user_attr("fingerprint", spec.fingerprint())  # the last: the study is described
        else:
            version = study.user_attrs.get("settings_version", 1)
            spec = spec.for_study(study.user_attrs.get("spec", {}), version)  # a changed default changes no study
            changes = spec.changes(study.user_attrs.get("spec", {}), version)
            if changes and not (version == 1 and fingerprint == spec.fingerprint()):
                raise SpecError(_mismatch(spec, changes))
            if spec.sampler == "grid":
                _grow(study, spec, log or (lambda line: None))
            elif spec.total > study.user_attrs.get("total", 0):
                study.set_user_attr("total", spec.total)  # more search trials asked for
        if log is not None and spec._command:  # how to run it again: the verdict's commands (not a child's view)
            study.set_user_attr("command", spec._command)
        experiment_id = tracker.experiment(spec.study)  # under the lock: one parent run per study
        parent = tracker.parent_run(experiment_id, spec.study, spec.describe())
    return spec, study, experiment_id, parent


def _grow(study, spec: Spec, log) -> None:
    """A grid spec listing values the study lacks adds their points (pipelines/engine/points.py); one
    line says so, and one names the values the spec no longer lists (their points stay)."""
    earlier = study_points(study)
    added = grow(study, spec)
    if added and study.user_attrs.get("fingerprint") is not None and earlier:
        log(f"{spec.study}: the study grows by {len(added)} point(s) ({_values(added, earlier)}); its "
            f"{len(earlier)} earlier points are kept, finished ones never trained again")
    gone = removed(study, spec)
    if gone:
        log(f"note: this spec no longer lists {'; '.join(gone)}: the study keeps those points (run if unfinished, "
            "reported and in the verdict); start a new study (--set study=NEW_NAME) to leave them out")


def _values(points: list[dict], earlier: list[dict]) -> str:
    """'beta 0.0025, 0.00125' / 'seed 1, 2': the values new to the study, by dimension."""
    parts = []
    for name in ("z_dim", "beta", "seed", "loss"):
        old = {p.get(name) for p in earlier}
        vals = sorted({p.get(name) for p in points if p.get(name) is not None} - old, key=str)
        if vals:
            parts.append(f"{name.replace('_', '-')} {', '.join(f'{v:g}' if isinstance(v, float) else str(v) for v in vals)}")
    return "; ".join(parts)


def _mismatch(spec: Spec, changes: list[str]) -> str:
    return (f"study {spec.study!r} was run with other settings ({'; '.join(changes[:3]) or 'spec changed'}); "
            f"rerun with --set study=NEW_NAME to start a new study")
