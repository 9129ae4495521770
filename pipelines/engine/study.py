"""Optuna studies for sweeps: storage, creation, the sampler and pruner, progress and status.

    from pipelines.engine.study import make_storage, open_study, study_status
    study_status("balance")          # what `vae status --study balance` prints

A trial's life (claim, heartbeat, result) is pipelines/engine/trial.py's; making a study's state right
after kills (dead trials, retries, the grid's points) is pipelines/engine/recovery.py's. Grid points are
enqueued, each once, under the study lock (pipelines/engine/locks.py) and claimed through the storage's
atomic WAITING -> RUNNING transition; Optuna's GridSampler is not used: it can hand the same point
to two workers.
"""

from __future__ import annotations

import os
import socket
import warnings
import zlib

from pipelines.engine.faults import fault
from pipelines.engine.locks import create_sqlite, study_lock
from pipelines.engine.points import GRID_PARAMS, add_points, grow, removed, study_points
from pipelines.engine.stores import (
    check_database,
    check_kind,
    connect_args,
    create_parent,
    sqlite_path,
)
from pipelines.engine.trial import FAIL_REASON, chains, fail_kind, finished, heads, params_of
from pipelines.spec import Spec, SpecError
from pipelines.tracking.runs import Tracker
from vae.collapse import collapsed
from vae.config import SETTINGS_VERSION
from vae.errors import VAEError, first_line
from vae.redact import redact

DEFAULT_STORAGE = "sqlite:///mlruns/optuna.db"


class StorageError(VAEError):
    """The Optuna storage cannot be reached or used."""


def quiet_optuna() -> None:
    """Our own progress bar and messages say what matters; Optuna's per-trial logs and
    warnings about the experimental heartbeat API would drown them."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    # we record heartbeats ourselves (pipelines/engine/trial.py), with ask/tell instead of Study.optimize
    warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used with Study.optimize")


def storage_url(url: str | None) -> str:
    return url or os.environ.get("VAE_STORAGE") or DEFAULT_STORAGE


def make_storage(url: str | None, spec: Spec):
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
            url, engine_kwargs=engine, heartbeat_interval=spec.heartbeat_interval,
            grace_period=spec.grace_period)
    except Exception as e:
        raise StorageError(f"cannot use Optuna storage {redact(url)}: {redact(first_line(e))[:300]}") from None


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
    """Create the study or load it, check that it was run with the same settings, make its state
    right (pipelines/engine/recovery.py: enqueue the grid, recover dead trials); return (the spec as
    the study runs it: Spec.for_study, study, experiment_id, parent_run_id). Safe with any number of
    workers starting at once: all of it runs under the study lock, and a creator killed halfway
    leaves what the next start completes. `log`: where the lines on a grown study go (None: nowhere,
    as in a `--workers` child, whose parent said them)."""
    import optuna

    from pipelines.engine.recovery import recover

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
    recover(study, storage, spec, tracker, url, retry_errors=True)  # a new start retries errors too
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


def progress(study, total: int) -> dict:
    """Where a study stands, counting configurations (chains of retries), not trials: the one
    definition behind `vae status`, the exit code of `vae sweep` and its progress bar."""
    trials = study.get_trials(deepcopy=False)
    last = heads(trials)
    states = [t.state.name for t in last]
    kinds = [fail_kind(t) for t in last if t.state.name == "FAIL"]
    out = {"total": total, "started": len(last),
           "complete": states.count("COMPLETE"), "pruned": states.count("PRUNED"),
           "diverged": kinds.count("diverged"), "errors": kinds.count("error"),
           "running": states.count("RUNNING"), "waiting": states.count("WAITING"),
           "finished": sum(map(finished, last)),
           "unfinished": [t.number for t in last if not finished(t)]}
    out["left"] = max(0, total - out["finished"])
    out["done"] = out["left"] == 0
    return out


def _existing_storage(storage: str | None):
    """(url, store) of a storage that must exist already: status never creates one."""
    import optuna

    quiet_optuna()
    url = storage_url(storage)
    check_database(url, "Optuna storage", StorageError, create=False)  # read-only: creates nothing
    try:
        return url, optuna.storages.RDBStorage(url, engine_kwargs={"connect_args": connect_args(url)})
    except Exception as e:
        raise StorageError(f"cannot use Optuna storage {redact(url)}: {redact(first_line(e))[:300]}") from None


def study_exists(storage: str | None, name: str) -> bool:
    """Whether the storage holds a study of this name, read without creating anything (no file,
    no table): a missing SQLite file or a database without Optuna's tables holds none."""
    from sqlalchemy import create_engine, inspect, text
    from sqlalchemy.pool import NullPool

    url = storage_url(storage)
    path = sqlite_path(url)
    if url.startswith("sqlite") and (path is None or not path.exists()):
        return False
    check_database(url, "Optuna storage", StorageError, create=False)
    # read-only: a check writes nothing
    engine = (create_engine(f"sqlite:///{path.resolve().as_uri()}?mode=ro&uri=true", poolclass=NullPool) if path
              else create_engine(url, poolclass=NullPool, connect_args=connect_args(url)))
    try:
        if not inspect(engine).has_table("studies"):
            return False
        with engine.connect() as conn:
            return conn.execute(text("SELECT 1 FROM studies WHERE study_name = :n"), {"n": name}).first() is not None
    except Exception as e:
        raise StorageError(f"cannot use Optuna storage {redact(url)}: {redact(first_line(e))[:300]}") from None
    finally:
        engine.dispose()


def study_names(storage: str | None = None) -> list[str]:
    """Every study in the storage, oldest first (`vae status` without --study)."""
    import optuna

    _, store = _existing_storage(storage)
    return [s.study_name for s in optuna.get_all_study_summaries(store, include_best_trial=False)]


def study_status(name: str, storage: str | None = None) -> dict:
    """Progress of a study from the Optuna storage alone: counts and one row per trial."""
    import optuna
    from optuna.trial import TrialState

    url, store = _existing_storage(storage)
    try:
        study = optuna.load_study(study_name=name, storage=store)
    except KeyError:
        names = [s.study_name for s in optuna.get_all_study_summaries(store)]
        raise StorageError(f"no study named {name!r} in {redact(url)} (studies: {', '.join(names) or 'none'})") from None
    trials = study.get_trials(deepcopy=False)
    successor = {c[i].number: c[i + 1].number for c in chains(trials).values() for i in range(len(c) - 1)}
    counts = {s.name.lower(): sum(t.state == s for t in trials) for s in TrialState}
    total = study.user_attrs.get("total", len(trials))
    # loss is a parameter only where the search varies it: else the spec's (beta unless it says sigma-vae)
    spec_loss = study.user_attrs.get("spec", {}).get("train", {}).get("loss") or "beta"
    rows = []
    for t in trials:
        params = params_of(t)  # waiting trials: enqueued values
        note = t.user_attrs.get(FAIL_REASON) or ""
        if t.number in successor:
            note = f"{note}; ran again as trial {successor[t.number]}" if note else f"ran again as trial {successor[t.number]}"
        rows.append({"trial": t.number, "state": t.state.name, "z_dim": params.get("z_dim"),
                     "beta": params.get("beta"), "seed": params.get("seed"), "loss": params.get("loss") or spec_loss,
                     "epochs": len(t.intermediate_values), "value": t.value,
                     "collapsed": t.state == TrialState.COMPLETE and collapsed(t.user_attrs.get("diag/active_units"),
                                                                             t.user_attrs.get("test/kl")),
                     "note": note})
    return {"study": name, **counts, **progress(study, total), "trials": rows}


def check_storage(storage: str | None) -> None:
    """The Optuna storage a read-only command may write its verdict to is not an MLflow store."""
    check_kind(storage_url(storage), "optuna", StorageError)
