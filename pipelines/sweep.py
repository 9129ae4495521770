"""Optuna sweeps over z-dim x beta; every trial a real `vae.train` run tracked in MLflow.

    vae sweep sweeps/quick.yaml                     # digits, 2x2 grid, about a minute on a CPU
    vae sweep sweeps/balance.yaml --set epochs=5 --set limit=10000
    vae sweep sweeps/search.yaml --n-trials 30 --workers 2
    vae sweep sweeps/balance.yaml --storage postgresql://u:pw@db/optuna --tracking-uri http://mlflow:5000

The study lives in an Optuna storage (default sqlite:///mlruns/optuna.db; see pipelines/study.py
for how trials are claimed and recovered). Running the same spec again resumes it: completed
trials never run again, interrupted ones run again. This module runs the trials: one worker in
this process (`run_sweep`) or several processes sharing the study (`run_workers`).
"""

from __future__ import annotations

import math
import os
import signal
import socket
import sys
import tempfile
import threading
import time
import traceback
from dataclasses import dataclass, replace
from pathlib import Path

from pipelines.spec import Range, Spec
from pipelines.study import (
    claim,
    counted,
    make_storage,
    open_study,
    quiet_optuna,
    reap_dead_trials,
    retry,
    stale_callback,
)
from pipelines.tracking import Tracker
from pipelines.trial_bar import TrialBar
from vae.errors import VAEError

CTRL_C = threading.Event()


@dataclass
class Summary:
    complete: int = 0
    pruned: int = 0
    failed: int = 0
    errors: int = 0  # failures other than divergence: bugs, out of memory


def _suggest(trial, spec: Spec) -> dict:
    s = spec.search

    def categorical(name, choices):
        if len(choices) == 1:  # a constant: a fixed attribute, not a parameter (importance 0, noise)
            trial.set_user_attr(name, choices[0])
            return choices[0]
        return trial.suggest_categorical(name, choices)

    params = {}
    for name in ("z_dim", "beta"):
        space = getattr(s, name)
        if isinstance(space, Range) and name == "z_dim":
            params[name] = trial.suggest_int(name, int(space.low), int(space.high), log=space.log)
        elif isinstance(space, Range):
            params[name] = trial.suggest_float(name, space.low, space.high, log=space.log)
        else:  # every value the grid holds (sigma-vae points add beta 1)
            choices = sorted({p[name] for p in spec.grid()}) if spec.sampler == "grid" else space
            params[name] = categorical(name, choices)
    params["seed"] = categorical("seed", s.seed)
    if s.loss != ["beta"]:
        params["loss"] = categorical("loss", s.loss)
    elif spec.train.loss != "beta":
        params["loss"] = spec.train.loss
    return params


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


def _data(cache: dict, dataset: str, data_dir: str, limit: int | None, seed: int):
    """One copy in memory per distinct subset: the seed picks the subset only when there is a limit."""
    from vae.data import load_dataset

    key = (dataset, data_dir, limit, seed if limit else None)
    if key not in cache:
        cache[key] = load_dataset(dataset, data_dir, limit, seed)
    return cache[key]


def run_trial(trial, study, storage, spec: Spec, tracker: Tracker, experiment_id: str, parent: str,
              data_cache: dict, progress: bool, threads: int | None, bar: TrialBar | None = None) -> str:
    """Train one configuration; return the trial's final Optuna state."""
    import optuna

    from vae.errors import TrainingDiverged
    from vae.train import applied, pick_device, train

    params = _suggest(trial, spec)
    storage.set_trial_system_attr(trial._trial_id, "vae_worker", {"host": socket.gethostname(), "pid": os.getpid()})
    cfg = replace(spec.train, **params, resume=False, progress=progress, threads=threads or spec.train.threads)
    data = _data(data_cache, cfg.dataset, cfg.data_dir, cfg.limit, cfg.seed)
    device = pick_device(cfg.device)
    run_id = tracker.start_trial(experiment_id, parent, spec.study, trial.number, applied(cfg, len(data.train)),
                                 str(device))
    trial.set_user_attr("mlflow_run_id", run_id)
    tracker.log_first_images(run_id, cfg, data.test)  # step 0 of the image series: the untrained model
    if bar is not None:
        bar.epoch(trial.number, 0)
    x_test = data.test

    def on_epoch(epoch: int, metrics: dict, model) -> None:
        tracker.log_epoch(run_id, metrics, epoch)
        if bar is not None:
            bar.epoch(trial.number, epoch)
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
            except optuna.TrialPruned as e:
                study.tell(trial, state=optuna.trial.TrialState.PRUNED)
                tracker.finish_trial(run_id, "PRUNED", reason=str(e))  # "pruned after epoch N"
                return "PRUNED"
            except TrainingDiverged as e:
                return _fail(study, trial, tracker, run_id, "diverged", str(e))
            except KeyboardInterrupt:
                _interrupted(study, trial, tracker, run_id)
                raise
            except VAEError as e:  # bad settings: every trial would fail alike, so stop the sweep
                _fail(study, trial, tracker, run_id, "error", str(e))
                raise
            except Exception as e:
                if CTRL_C.is_set():  # Ctrl-C inside a database call surfaces as its error ("interrupted")
                    _interrupted(study, trial, tracker, run_id)
                    raise KeyboardInterrupt from None
                # a bug or out-of-memory in one trial: its traceback goes to its MLflow run, the sweep goes on
                try:
                    tracker.client.log_text(run_id, traceback.format_exc(), "traceback.txt")
                except Exception:
                    pass
                return _fail(study, trial, tracker, run_id, "error", f"{type(e).__name__}: {str(e)[:500]}")
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


def _interrupted(study, trial, tracker: Tracker, run_id: str) -> None:
    _fail(study, trial, tracker, run_id, "interrupted", "interrupted (Ctrl-C); runs again on resume")
    retry(study, study.get_trials(deepcopy=True)[trial.number])


def _watch_ctrl_c() -> None:
    """Remember a Ctrl-C before raising KeyboardInterrupt as usual, so that a trial interrupted
    inside a library that turns it into its own error is still seen as interrupted."""
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        return  # ignored (nohup, background jobs) or someone else's handler: leave it alone

    def on_sigint(signum, frame):
        CTRL_C.set()
        signal.default_int_handler(signum, frame)

    signal.signal(signal.SIGINT, on_sigint)


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


def run_sweep(spec: Spec, storage: str | None = None, tracking_uri: str | None = None,
              n_trials: int | None = None, progress: bool = True, threads: int | None = None,
              log=print) -> Summary:
    """Run trials until the study has nothing left to start; one worker, this process."""
    import optuna
    from optuna.trial import TrialState

    quiet_optuna()
    _watch_ctrl_c()
    if n_trials is not None:
        spec = spec.model_copy(update={"n_trials": n_trials})
    data_cache: dict = {}
    first = spec.train  # bad data fails here, before any study or run exists
    _data(data_cache, first.dataset, first.data_dir, first.limit, spec.search.seed[0])
    tracker = Tracker(tracking_uri)
    tracker.check()
    on_stale = stale_callback(tracker)
    store = make_storage(storage, spec, on_stale)
    study, experiment_id, parent = open_study(spec, store, tracker)

    summary = Summary()
    total = study.user_attrs.get("total", spec.total)
    bar = TrialBar(study, total, spec.train.epochs, progress)
    try:
        while True:
            reap_dead_trials(study, store, on_stale)
            remaining = None if spec.sampler == "grid" else total - counted(study)
            trial = claim(study, store, spec, remaining)
            if trial is None:
                break
            try:
                state = run_trial(trial, study, store, spec, tracker, experiment_id, parent, data_cache,
                                  progress, threads, bar)
            except optuna.exceptions.UpdateFinishedTrialError:
                # another worker declared this trial dead (a stalled heartbeat) and runs it again
                log(f"trial {trial.number} was failed by another worker meanwhile; moving on")
                continue
            summary.complete += state == "COMPLETE"
            summary.pruned += state == "PRUNED"
            if state == "FAIL":
                summary.failed += 1
                frozen = study.get_trials(deepcopy=False)[trial.number]
                summary.errors += frozen.user_attrs.get("fail_kind") == "error"
                log(f"trial {trial.number} failed: {frozen.user_attrs.get('fail_reason')}")
            bar.refresh()
    finally:
        bar.close()
    states = [t.state for t in study.get_trials(deepcopy=False)]
    if TrialState.RUNNING not in states and TrialState.WAITING not in states:
        counts = {s.name.lower(): states.count(s) for s in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)}
        tracker.log_best(parent, study, spec.metric)
        tracker.finish_parent(parent, counts)
    return summary


def run_workers(spec: Spec, argv: list[str], workers: int, storage: str | None, tracking_uri: str | None,
                progress: bool, log=print) -> int:
    """Start `workers` processes of `vae sweep` sharing the study; the cores are split between them."""
    import subprocess

    quiet_optuna()
    tracker = Tracker(tracking_uri)
    tracker.check()
    store = make_storage(storage, spec, stale_callback(tracker))
    study, _, _ = open_study(spec, store, tracker)  # created here: no race between the workers
    threads = spec.train.threads or max(1, (os.cpu_count() or 1) // workers)
    cmd = [sys.executable, "-m", "pipelines.cli", "sweep", *argv, "--workers", "1", "--no-progress",
           "--threads", str(threads)]
    procs = [subprocess.Popen(cmd) for _ in range(workers)]
    bar = TrialBar(study, study.user_attrs.get("total", spec.total), spec.train.epochs, progress)
    try:
        while any(p.poll() is None for p in procs):
            time.sleep(2)
            bar.refresh()
    except KeyboardInterrupt:
        for p in procs:  # the terminal sent SIGINT to all; wait for each to mark its trial failed
            p.wait()
        raise
    finally:
        bar.close()
    return max(p.returncode for p in procs)
