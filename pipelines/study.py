"""Optuna studies for sweeps: storage, creation, claiming trials exactly once, recovering dead ones.

    from pipelines.study import make_storage, open_study, claim, study_status
    study_status("balance")          # what `vae status --study balance` prints

How grid points run exactly once, with any number of workers on any number of machines:
the worker that creates the study enqueues every point once (creating a study is atomic in the
storage) and marks the study ready; every worker claims waiting trials through the storage's
atomic WAITING -> RUNNING transition. A trial whose worker died is failed by whichever worker first
notices (Optuna's heartbeat, or at once on the same host when the worker's process is gone), and
that worker alone enqueues its configuration again. Optuna's GridSampler is not used: it can hand
the same point to two workers.
"""

from __future__ import annotations

import os
import socket
import time
import warnings
from pathlib import Path

from pipelines.spec import Spec, SpecError
from pipelines.tracking import Tracker
from vae.collapse import collapsed
from vae.errors import VAEError

DEFAULT_STORAGE = "sqlite:///mlruns/optuna.db"
READY_TIMEOUT_S = 120
CONSTANT_ATTRS = ("z_dim", "beta", "seed", "loss")  # a search dimension with one value: a user attr
RUN_ATTRS = ("mlflow_run_id", "fail_kind", "fail_reason")  # belong to one run, not to its retry


class StorageError(VAEError):
    """The Optuna storage cannot be reached or used."""


def quiet_optuna() -> None:
    """Our own progress bar and messages say what matters; Optuna's per-trial logs and
    warnings about the experimental heartbeat API would drown them."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    # we record heartbeats ourselves (sweep.Heartbeat), with ask/tell instead of Study.optimize
    warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used with Study.optimize")


def storage_url(url: str | None) -> str:
    url = url or os.environ.get("VAE_STORAGE") or DEFAULT_STORAGE
    if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
        Path(url[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
    return url


def make_storage(url: str | None, spec: Spec, on_stale=None):
    import optuna

    quiet_optuna()
    url = storage_url(url)
    if url.startswith("sqlite"):
        engine = {"connect_args": {"timeout": 60}}  # several local workers share the file
    elif url.startswith("postgresql"):
        engine = {"connect_args": {"connect_timeout": 5}, "pool_pre_ping": True}  # unreachable: fail in seconds
    else:
        engine = {}
    try:
        return optuna.storages.RDBStorage(
            url, engine_kwargs=engine, heartbeat_interval=spec.heartbeat_interval,
            grace_period=spec.grace_period, heartbeat_stale_trial_callback=on_stale)
    except Exception as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise StorageError(f"cannot use Optuna storage {_redact(url)}: {first[:300]}") from None


def _redact(url: str) -> str:
    """Hide a password in a connection string."""
    if "://" in url and "@" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        return f"{scheme}://{creds.split(':')[0]}:***@{host}"
    return url


def _sampler(spec: Spec):
    import optuna

    seed = spec.train.seed
    if spec.sampler == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    return optuna.samplers.RandomSampler(seed=seed)  # grid points are enqueued, never sampled


def _pruner(spec: Spec):
    import optuna

    p = spec.pruner
    if p is None or p.type == "none":
        return optuna.pruners.NopPruner()
    if p.type == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=max(1, p.warmup_epochs), max_resource=spec.train.epochs)
    return optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=p.warmup_epochs)


def open_study(spec: Spec, storage, tracker: Tracker):
    """Create the study (and enqueue the grid) or load it; return (study, experiment_id, parent_run_id)."""
    import optuna

    direction = spec.direction
    try:
        study = optuna.create_study(study_name=spec.study, storage=storage, direction=direction,
                                    sampler=_sampler(spec), pruner=_pruner(spec))
        creator = True
    except optuna.exceptions.DuplicatedStudyError:
        study = optuna.load_study(study_name=spec.study, storage=storage, sampler=_sampler(spec), pruner=_pruner(spec))
        creator = False
    if creator:
        experiment_id = tracker.experiment(spec.study)
        parent = tracker.parent_run(experiment_id, spec.study, spec.describe())
        study.set_metric_names([spec.metric])  # optuna-dashboard and trial tables name the objective
        study.set_user_attr("fingerprint", spec.fingerprint())
        study.set_user_attr("spec", spec.describe())
        study.set_user_attr("total", spec.total)
        if spec.sampler == "grid":
            for point in spec.grid():
                study.enqueue_trial(point)
        study.set_user_attr("ready", True)  # last: other workers wait for it
    else:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not study.user_attrs.get("ready"):
            if time.monotonic() > deadline:
                raise StorageError(f"study {spec.study!r} exists but was never made ready; delete it "
                                   f"(optuna delete-study) or use another study name")
            time.sleep(0.5)
        if study.user_attrs.get("fingerprint") != spec.fingerprint():
            raise SpecError(_mismatch(study.user_attrs.get("spec", {}), spec))
        if spec.total > study.user_attrs.get("total", 0):
            study.set_user_attr("total", spec.total)  # more search trials asked for
        experiment_id = tracker.experiment(spec.study)
        parent = tracker.parent_run(experiment_id, spec.study, spec.describe())
    return study, experiment_id, parent


def _mismatch(old: dict, spec: Spec) -> str:
    new = spec.describe()
    diffs = [f"{k}: {old.get('train', {}).get(k)!r} -> {v!r}" for k, v in new["train"].items()
             if old.get("train", {}).get(k) != v and k not in ("data_dir", "device", "threads", "progress", "amp", "compile")]
    diffs += [f"{k}: changed" for k in ("search", "sampler", "metric", "direction") if old.get(k) != new[k]]
    return (f"study {spec.study!r} was run with other settings ({'; '.join(diffs[:3]) or 'spec changed'}); "
            f"rerun with --set study=NEW_NAME to start a new study")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def reap_dead_trials(study, storage, on_stale) -> None:
    """Fail RUNNING trials of this host whose worker process is gone (SIGKILL, crash) at once,
    without waiting for the heartbeat's grace period; other hosts' trials wait for the heartbeat."""
    import optuna
    from optuna.trial import TrialState

    host = socket.gethostname()
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = t.system_attrs.get("vae_worker") or {}
        if worker.get("host") != host or worker.get("pid") in (None, os.getpid()) or _alive(worker["pid"]):
            continue
        try:
            if storage.set_trial_state_values(t._trial_id, state=TrialState.FAIL):
                on_stale(study, storage.get_trial(t._trial_id))
        except optuna.exceptions.UpdateFinishedTrialError:
            pass  # another worker got there first
    optuna.storages.fail_stale_trials(study)


def claim(study, storage, spec: Spec, remaining: int | None):
    """The next trial for this worker, or None when nothing is left to start."""
    import optuna
    from optuna.trial import TrialState

    study_id = storage.get_study_id_from_name(spec.study)
    for t in storage.get_all_trials(study_id, deepcopy=False, states=(TrialState.WAITING,)):
        try:
            if storage.set_trial_state_values(t._trial_id, state=TrialState.RUNNING):  # atomic claim
                return optuna.trial.Trial(study, t._trial_id)
        except optuna.exceptions.UpdateFinishedTrialError:
            continue
    if spec.sampler != "grid" and (remaining is None or remaining > 0):
        return study.ask()
    return None


def retried(trials) -> set[int]:
    """Numbers of the trials whose configuration was run again (recorded by Optuna's retry callback)."""
    return {n for t in trials for n in t.system_attrs.get("retry_history", [])}


def counted(study) -> int:
    """Trials that count towards n_trials: all but those that were run again (interrupted)."""
    trials = study.get_trials(deepcopy=False)
    again = retried(trials)
    return sum(1 for t in trials if t.number not in again)


def retry(study, frozen) -> None:
    """Enqueue a failed trial's configuration again (Optuna's retry callback, minus its run's attrs)."""
    import copy

    from optuna.storages import RetryHeartbeatStaleTrialCallback

    clone = copy.deepcopy(frozen)
    clone.user_attrs = {k: v for k, v in frozen.user_attrs.items() if k not in RUN_ATTRS}
    # the dead worker's identity must not pass on: until its new worker writes its own, the
    # retry would look like a trial of a dead process and be failed again by reap_dead_trials
    clone.system_attrs = {k: v for k, v in frozen.system_attrs.items() if k != "vae_worker"}
    RetryHeartbeatStaleTrialCallback()(study, clone)


def stale_callback(tracker: Tracker):
    """For a trial whose worker died: mark its MLflow run FAILED and run its configuration again."""

    def on_stale(study, frozen) -> None:
        run_id = frozen.user_attrs.get("mlflow_run_id")
        if run_id:
            try:
                tracker.finish_trial(run_id, "FAIL", reason="worker died (no heartbeat); its configuration runs again")
            except Exception:
                pass
        retry(study, frozen)

    return on_stale


def trial_config(t) -> dict:
    """A trial's z_dim, beta, seed (and loss): its parameters, the constants of the search (user
    attributes, not parameters) and, while it waits, the values it was enqueued with."""
    constants = {k: t.user_attrs[k] for k in CONSTANT_ATTRS if k in t.user_attrs}
    return {**t.system_attrs.get("fixed_params", {}), **constants, **t.params}


def _existing_storage(storage: str | None):
    """(url, store) of a storage that must exist already: status never creates one."""
    import optuna

    quiet_optuna()
    url = storage_url(storage)
    if url.startswith("sqlite:///") and not Path(url[len("sqlite:///"):]).exists():
        raise StorageError(f"no Optuna storage at {url}; run `vae sweep` first")
    try:
        return url, optuna.storages.RDBStorage(url, engine_kwargs={"connect_args": {"connect_timeout": 5}} if url.startswith("postgresql") else {})
    except Exception as e:
        raise StorageError(f"cannot use Optuna storage {_redact(url)}: {(str(e).splitlines() or [''])[0][:300]}") from None


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
        raise StorageError(f"no study named {name!r} in {_redact(url)} (studies: {', '.join(names) or 'none'})") from None
    trials = study.get_trials(deepcopy=False)
    again = retried(trials)
    counts = {s.name.lower(): sum(t.state == s for t in trials) for s in TrialState}
    total = study.user_attrs.get("total", len(trials))
    finished = sum(1 for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
                   and t.number not in again)
    rows = []
    for t in trials:
        params = trial_config(t)
        rows.append({"trial": t.number, "state": t.state.name, "z_dim": params.get("z_dim"),
                     "beta": params.get("beta"), "seed": params.get("seed"), "loss": params.get("loss", ""),
                     "epochs": len(t.intermediate_values), "value": t.value,
                     "collapsed": t.state == TrialState.COMPLETE and collapsed(t.user_attrs.get("diag/active_units"),
                                                                             t.user_attrs.get("test/kl")),
                     "note": t.user_attrs.get("fail_reason") or ("ran again as a retry" if t.number in again else "")})
    return {"study": name, "total": total, **counts, "left": max(0, total - finished), "trials": rows}
