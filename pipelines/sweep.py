"""Optuna sweeps over z-dim x beta; every trial a real `vae.train` run tracked in MLflow.

    vae sweep sweeps/quick.yaml                     # digits, 2x2 grid, about a minute on a CPU
    vae sweep sweeps/balance.yaml --set epochs=5 --set limit=10000
    vae sweep sweeps/search.yaml --n-trials 30 --workers 2
    vae sweep sweeps/balance.yaml --storage postgresql://u:pw@db/optuna --tracking-uri http://mlflow:5000

The study lives in an Optuna storage (default sqlite:///mlruns/optuna.db). Running the same spec
again resumes it: completed trials never run again, interrupted ones run again.

How grid points run exactly once, with any number of workers on any number of machines:
the worker that creates the study enqueues every point once (creating a study is atomic in the
storage) and marks the study ready; every worker claims waiting trials through the storage's
atomic WAITING -> RUNNING transition. A trial whose worker died is failed by whichever worker first
notices (Optuna's heartbeat, or at once on the same host when the worker's process is gone), and
that worker alone enqueues its configuration again. Optuna's GridSampler is not used: it can hand
the same point to two workers.
"""

from __future__ import annotations

import math
import os
import socket
import sys
import tempfile
import threading
import time
import traceback
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

from pipelines.spec import Range, Spec, SpecError
from pipelines.tracking import Tracker
from vae.errors import VAEError

DEFAULT_STORAGE = "sqlite:///mlruns/optuna.db"
READY_TIMEOUT_S = 120
RUN_ATTRS = ("mlflow_run_id", "fail_kind", "fail_reason")  # belong to one run, not to its retry


class StorageError(VAEError):
    """The Optuna storage cannot be reached or used."""


@dataclass
class Summary:
    complete: int = 0
    pruned: int = 0
    failed: int = 0
    errors: int = 0  # failures other than divergence: bugs, out of memory


def _quiet_optuna() -> None:
    """Our own progress bar and messages say what matters; Optuna's per-trial logs and
    warnings about the experimental heartbeat API would drown them."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


# --- storage and study ----------------------------------------------------------------------
def storage_url(url: str | None) -> str:
    url = url or os.environ.get("VAE_STORAGE") or DEFAULT_STORAGE
    if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
        Path(url[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
    return url


def make_storage(url: str | None, spec: Spec, on_stale=None):
    import optuna

    _quiet_optuna()
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


# --- claiming trials ---------------------------------------------------------------------------
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


def _suggest(trial, spec: Spec) -> dict:
    s = spec.search
    params = {}
    for name in ("z_dim", "beta"):
        space = getattr(s, name)
        if isinstance(space, Range) and name == "z_dim":
            params[name] = trial.suggest_int(name, int(space.low), int(space.high), log=space.log)
        elif isinstance(space, Range):
            params[name] = trial.suggest_float(name, space.low, space.high, log=space.log)
        else:  # every value the grid holds (sigma-vae points add beta 1)
            choices = sorted({p[name] for p in spec.grid()}) if spec.sampler == "grid" else space
            params[name] = trial.suggest_categorical(name, choices)
    params["seed"] = trial.suggest_categorical("seed", s.seed)
    if s.loss != ["beta"]:
        params["loss"] = trial.suggest_categorical("loss", s.loss)
    elif spec.train.loss != "beta":
        params["loss"] = spec.train.loss
    return params


def _counted(study) -> int:
    """Trials that count towards n_trials: all but those that were run again (interrupted)."""
    trials = study.get_trials(deepcopy=False)
    retried = {n for t in trials for n in t.system_attrs.get("retry_history", [])}
    return sum(1 for t in trials if t.number not in retried)


class Heartbeat:
    """Records the trial's heartbeat in the storage every interval, from a daemon thread."""

    def __init__(self, storage, trial_id: int, interval: float):
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(storage, trial_id, interval), daemon=True)

    def _run(self, storage, trial_id, interval):
        while True:
            try:
                storage.record_heartbeat(trial_id)
            except Exception:  # a missed beat is retried; the grace period covers a few
                pass
            if self._stop.wait(interval):
                return

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=5)


# --- one trial ---------------------------------------------------------------------------
def run_trial(trial, study, storage, spec: Spec, tracker: Tracker, experiment_id: str, parent: str,
              data_cache: dict, progress: bool, threads: int | None) -> str:
    """Train one configuration; return the trial's final Optuna state."""
    import optuna

    from vae.data import load_dataset
    from vae.errors import TrainingDiverged
    from vae.train import pick_device, train

    params = _suggest(trial, spec)
    storage.set_trial_system_attr(trial._trial_id, "vae_worker", {"host": socket.gethostname(), "pid": os.getpid()})
    cfg = replace(spec.train, **params, resume=False, progress=progress, threads=threads or spec.train.threads)
    key = (cfg.dataset, cfg.data_dir, cfg.limit, cfg.seed)
    if key not in data_cache:
        data_cache[key] = load_dataset(*key)
    data = data_cache[key]
    device = pick_device(cfg.device)
    run_id = tracker.start_trial(experiment_id, parent, spec.study, trial.number, cfg.to_dict(), str(device))
    trial.set_user_attr("mlflow_run_id", run_id)
    x_test = data.test

    def on_epoch(epoch: int, metrics: dict, model) -> None:
        tracker.log_epoch(run_id, metrics, epoch)
        if epoch % spec.images_every == 0 or epoch == cfg.epochs:
            tracker.log_images(run_id, model, x_test, epoch)
        value = metrics.get(spec.metric)
        if value is not None and math.isfinite(value):
            trial.report(value, epoch)
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned after epoch {epoch}")

    with tempfile.TemporaryDirectory(prefix=f"vae-{spec.study}-t{trial.number}-") as tmp:
        run_dir = Path(tmp) / "run"
        cfg = replace(cfg, out=str(run_dir))
        with Heartbeat(storage, trial._trial_id, spec.heartbeat_interval):
            try:
                history = train(cfg, callback=on_epoch, data=data)
            except optuna.TrialPruned:
                study.tell(trial, state=optuna.trial.TrialState.PRUNED)
                tracker.finish_trial(run_id, "PRUNED")
                return "PRUNED"
            except TrainingDiverged as e:
                return _fail(study, trial, tracker, run_id, "diverged", str(e))
            except KeyboardInterrupt:
                _fail(study, trial, tracker, run_id, "interrupted", "interrupted (Ctrl-C); runs again on resume")
                retry(study, study.get_trials(deepcopy=True)[trial.number])
                raise
            except VAEError:
                _fail(study, trial, tracker, run_id, "error", "bad settings")
                raise
            except Exception as e:
                tb = traceback.format_exc()
                print(tb, file=sys.stderr)
                return _fail(study, trial, tracker, run_id, "error", f"{type(e).__name__}: {e}")
        final = history[-1]
        for k, v in final.items():
            if k.startswith(("test/", "diag/")):
                trial.set_user_attr(k, v)
        value = final.get(spec.metric)
        if value is None or not math.isfinite(value):
            return _fail(study, trial, tracker, run_id, "error", f"objective {spec.metric!r} missing or not finite")
        tracker.finish_trial(run_id, "COMPLETE", run_dir, history)
        study.tell(trial, value)
    return "COMPLETE"


def _fail(study, trial, tracker: Tracker, run_id: str, kind: str, reason: str) -> str:
    import optuna

    trial.set_user_attr("fail_kind", kind)
    trial.set_user_attr("fail_reason", reason)
    study.tell(trial, state=optuna.trial.TrialState.FAIL)
    try:
        tracker.finish_trial(run_id, "INTERRUPTED" if kind == "interrupted" else "FAIL", reason=reason)
    except Exception:  # tracking must not hide the trial's own failure
        pass
    return "FAIL"


def retry(study, frozen) -> None:
    """Enqueue a failed trial's configuration again (Optuna's retry callback, minus its run's attrs)."""
    import copy

    from optuna.storages import RetryHeartbeatStaleTrialCallback

    clone = copy.deepcopy(frozen)
    clone.user_attrs = {k: v for k, v in frozen.user_attrs.items() if k not in RUN_ATTRS}
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


# --- the sweep -------------------------------------------------------------------------------
def run_sweep(spec: Spec, storage: str | None = None, tracking_uri: str | None = None,
              n_trials: int | None = None, progress: bool = True, threads: int | None = None,
              log=print) -> Summary:
    """Run trials until the study has nothing left to start; one worker, this process."""
    from optuna.trial import TrialState

    from vae.data import load_dataset

    _quiet_optuna()
    if n_trials is not None:
        spec = spec.model_copy(update={"n_trials": n_trials})
    data_cache: dict = {}
    first = spec.train  # bad data fails here, before any study or run exists
    key = (first.dataset, first.data_dir, first.limit, spec.search.seed[0])
    data_cache[key] = load_dataset(*key)
    tracker = Tracker(tracking_uri)
    tracker.check()
    on_stale = stale_callback(tracker)
    store = make_storage(storage, spec, on_stale)
    study, experiment_id, parent = open_study(spec, store, tracker)

    summary = Summary()
    total = study.user_attrs.get("total", spec.total)
    bar = _trial_bar(study, total, progress)
    try:
        while True:
            reap_dead_trials(study, store, on_stale)
            remaining = None if spec.sampler == "grid" else total - _counted(study)
            trial = claim(study, store, spec, remaining)
            if trial is None:
                break
            state = run_trial(trial, study, store, spec, tracker, experiment_id, parent, data_cache,
                              progress, threads)
            summary.complete += state == "COMPLETE"
            summary.pruned += state == "PRUNED"
            if state == "FAIL":
                summary.failed += 1
                frozen = study.get_trials(deepcopy=False)[trial.number]
                summary.errors += frozen.user_attrs.get("fail_kind") == "error"
                log(f"trial {trial.number} failed: {frozen.user_attrs.get('fail_reason')}")
            if bar is not None:
                _update_bar(bar, study, spec)
    finally:
        if bar is not None:
            bar.close()
    states = [t.state for t in study.get_trials(deepcopy=False)]
    if TrialState.RUNNING not in states and TrialState.WAITING not in states:
        counts = {s.name.lower(): states.count(s) for s in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)}
        tracker.finish_parent(parent, counts)
    return summary


def _trial_bar(study, total: int, progress: bool):
    if not progress:
        return None
    from tqdm.auto import tqdm

    bar = tqdm(total=total, desc=f"{study.study_name} trials", unit="trial", position=0, dynamic_ncols=True)
    _update_bar(bar, study, None)
    return bar


def _update_bar(bar, study, spec) -> None:
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL))
    retried = {n for t in study.get_trials(deepcopy=False) for n in t.system_attrs.get("retry_history", [])}
    bar.n = sum(1 for t in trials if t.number not in retried)
    done = [t for t in trials if t.state == TrialState.COMPLETE]
    if done:
        best = min(done, key=lambda t: t.value) if study.direction.name == "MINIMIZE" else max(done, key=lambda t: t.value)
        bar.set_postfix(best=f"{best.value:.5g} (#{best.number} z={best.params.get('z_dim')} β={best.params.get('beta'):g})")
    bar.refresh()


def run_workers(spec: Spec, argv: list[str], workers: int, storage: str | None, tracking_uri: str | None,
                progress: bool, log=print) -> int:
    """Start `workers` processes of `vae sweep` sharing the study; the cores are split between them."""
    import subprocess

    _quiet_optuna()
    tracker = Tracker(tracking_uri)
    tracker.check()
    store = make_storage(storage, spec, stale_callback(tracker))
    study, _, _ = open_study(spec, store, tracker)  # created here: no race between the workers
    threads = spec.train.threads or max(1, (os.cpu_count() or 1) // workers)
    cmd = [sys.executable, "-m", "pipelines.cli", "sweep", *argv, "--workers", "1", "--no-progress",
           "--threads", str(threads)]
    procs = [subprocess.Popen(cmd) for _ in range(workers)]
    bar = _trial_bar(study, study.user_attrs.get("total", spec.total), progress)
    try:
        while any(p.poll() is None for p in procs):
            time.sleep(2)
            if bar is not None:
                _update_bar(bar, study, spec)
    except KeyboardInterrupt:
        for p in procs:  # the terminal sent SIGINT to all; wait for each to mark its trial failed
            p.wait()
        raise
    finally:
        if bar is not None:
            _update_bar(bar, study, spec)
            bar.close()
    return max(p.returncode for p in procs)


def study_status(name: str, storage: str | None = None) -> dict:
    """Progress of a study from the Optuna storage alone: counts and one row per trial."""
    import optuna
    from optuna.trial import TrialState

    _quiet_optuna()
    url = storage_url(storage)
    if url.startswith("sqlite:///") and not Path(url[len("sqlite:///"):]).exists():
        raise StorageError(f"no Optuna storage at {url}; run `vae sweep` first")
    try:
        store = optuna.storages.RDBStorage(url, engine_kwargs={"connect_args": {"connect_timeout": 5}} if url.startswith("postgresql") else {})
    except Exception as e:
        raise StorageError(f"cannot use Optuna storage {_redact(url)}: {(str(e).splitlines() or [''])[0][:300]}") from None
    try:
        study = optuna.load_study(study_name=name, storage=store)
    except KeyError:
        names = [s.study_name for s in optuna.get_all_study_summaries(store)]
        raise StorageError(f"no study named {name!r} in {_redact(url)} (studies: {', '.join(names) or 'none'})") from None
    trials = study.get_trials(deepcopy=False)
    retried = {n for t in trials for n in t.system_attrs.get("retry_history", [])}
    counts = {s.name.lower(): sum(t.state == s for t in trials) for s in TrialState}
    total = study.user_attrs.get("total", len(trials))
    finished = sum(1 for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
                   and t.number not in retried)
    rows = []
    for t in trials:
        params = {**t.system_attrs.get("fixed_params", {}), **t.params}  # waiting trials: enqueued values
        rows.append({"trial": t.number, "state": t.state.name, "z_dim": params.get("z_dim"),
                     "beta": params.get("beta"), "seed": params.get("seed"), "loss": params.get("loss", ""),
                     "epochs": len(t.intermediate_values), "value": t.value,
                     "note": t.user_attrs.get("fail_reason") or ("ran again as a retry" if t.number in retried else "")})
    return {"study": name, "total": total, **counts, "left": max(0, total - finished), "trials": rows}
