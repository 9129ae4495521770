"""Optuna sweeps over z-dim x beta; every trial a real `vae.train` run tracked in MLflow.

    vae sweep sweeps/quick.yaml                     # digits, 2x2 grid, about a minute on a CPU
    vae sweep sweeps/balance.yaml --set epochs=5 --set limit=10000
    vae sweep sweeps/search.yaml --n-trials 30 --workers 2
    vae sweep sweeps/balance.yaml --storage postgresql://u:pw@db/optuna --tracking-uri http://mlflow:5000

The study lives in an Optuna storage (default sqlite:///mlruns/optuna.db; see pipelines/engine/study.py
for how trials are claimed and recovered). Running the same spec again resumes it: completed
trials never run again, interrupted ones run again. This module runs the trials: one worker in
this process (`run_sweep`) or several processes sharing the study (`run_workers`).
"""

from __future__ import annotations

import math
import os
import shutil
import signal
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field, replace
from pathlib import Path

from pipelines.engine.faults import fault
from pipelines.engine.gpus import TAG as GPU_TAG
from pipelines.engine.gpus import assigned
from pipelines.engine.hints import report_hint, status_hint
from pipelines.engine.recovery import log_result, recover
from pipelines.engine.signals import EXIT_CODE as SIGTERM_EXIT
from pipelines.engine.signals import TERMINATED, Terminated
from pipelines.engine.study import make_storage, open_study, quiet_optuna, storage_url
from pipelines.engine.study import progress as study_progress
from pipelines.engine.trial import (
    CTRL_C,
    FAIL_REASON,
    RUN_ID,
    Lease,
    chains,
    claim,
    root,
    run_folder,
)
from pipelines.engine.trial_bar import TrialBar
from pipelines.spec import Range, Spec
from pipelines.tracking.checkpoints import CheckpointStore
from pipelines.tracking.runs import Tracker
from vae.config import applying, default, identity, names
from vae.errors import VAEError, first_line
from vae.progress import say
from vae.redact import redact


@dataclass
class Summary:
    study: str = ""
    complete: int = 0   # in this run
    pruned: int = 0
    failed: int = 0
    already_complete: bool = False  # nothing was left to do when it started
    progress: dict = field(default_factory=dict)  # the study's, at the end (pipelines/engine/study.py progress)
    verdict: dict | None = None  # pipelines/report/verdict.py, once every configuration is finished


def _suggest(trial, spec: Spec, study) -> dict:
    """The trial's configuration, recorded in Optuna: a grid's point as pipelines/engine/points.py
    records it, a sampler's drawn from the spec's search."""
    from pipelines.engine.points import record
    from pipelines.engine.trial import params_of

    s = spec.search
    if spec.sampler == "grid":
        params = record(trial, params_of(study._storage.get_trial(trial._trial_id)), study)
    else:
        params = {}
        for name in ("z_dim", "beta"):
            space = getattr(s, name)
            if isinstance(space, Range) and name == "z_dim":
                params[name] = trial.suggest_int(name, int(space.low), int(space.high), log=space.log)
            elif isinstance(space, Range):
                params[name] = trial.suggest_float(name, space.low, space.high, log=space.log)
            else:
                params[name] = _categorical(trial, name, space)
        params["seed"] = _categorical(trial, "seed", s.seed)
    if "loss" not in params and spec.train.loss != "beta":
        params["loss"] = spec.train.loss  # the spec's one loss, named only where it is not the default
    return params


def _categorical(trial, name, choices):
    if len(choices) == 1:  # a constant: a fixed attribute, not a parameter (importance 0, noise)
        trial.set_user_attr(name, choices[0])
        return choices[0]
    return trial.suggest_categorical(name, choices)


def _data(cache: dict, dataset: str, data_dir: str, limit: int | None, seed: int):
    """One copy in memory per distinct subset: the seed picks the subset only when there is a limit."""
    from vae.data import load_dataset

    key = (dataset, data_dir, limit, seed if limit else None)
    if key not in cache:
        cache[key] = load_dataset(dataset, data_dir, limit, seed)
    return cache[key]


def _resumable(folder: Path, cfg) -> tuple[list[dict], bool]:
    """(the epochs already trained in `folder` by an earlier trial of this configuration, whether its
    end-of-training measurements are done too), or ([], False) after clearing a folder whose
    checkpoint was made with other settings."""
    from vae.checkpoint import load_checkpoint
    from vae.errors import CheckpointError

    if not (folder / "checkpoint.pt").exists():
        return [], False
    try:
        blob = load_checkpoint(folder)
        saved = {**{k: default(k) for k in names()}, **blob["config"]}  # a setting it predates: its default
        same = identity(applying(saved)) == identity(applying(cfg.to_dict()))
    except (CheckpointError, KeyError):
        same = False
    if not same:
        shutil.rmtree(folder, ignore_errors=True)
        return [], False
    return blob["history"], bool(blob.get("measured", True))


def _resuming(number: int, first: int, done: list[dict], measured: bool, epochs: int) -> str:
    """What a retry takes over from the earlier attempt `first` of its configuration, in one line."""
    earlier = f"an earlier attempt of this configuration (trial {first})"
    if len(done) >= epochs and measured:
        return (f"trial {number}: its {epochs} epochs and end-of-training measurements were done by {earlier}; "
                "storing its result")
    if len(done) >= epochs:
        return f"trial {number}: its {epochs} epochs were trained by {earlier}; its end-of-training measurements run now"
    return f"trial {number}: resumes at epoch {len(done) + 1} of {epochs}, from the checkpoint of {earlier}"


def _earlier_runs(lease: Lease) -> list[str]:
    """The MLflow runs of the earlier trials of this trial's configuration (its chain), newest first."""
    frozen = lease.frozen
    if "retry_history" not in frozen.system_attrs:
        return []
    chain = chains(lease.study.get_trials(deepcopy=False)).get(root(frozen), [])
    return [t.user_attrs[RUN_ID] for t in reversed(chain) if t.number < frozen.number and RUN_ID in t.user_attrs]


def run_trial(lease: Lease, spec: Spec, tracker: Tracker, experiment_id: str, parent: str,
              data_cache: dict, progress: bool, threads: int | None, bar: TrialBar | None = None) -> str:
    """Parameters -> training -> result, for the trial `lease` owns; return its final state.

    The training runs in the configuration's run folder (pipelines/engine/trial.py run_folder), so a
    retry of a trial that was interrupted or whose worker died resumes from its last epoch; on
    another host, from the checkpoint an earlier attempt uploaded (pipelines/tracking/checkpoints.py)."""
    import optuna

    from vae.errors import MeasurementFailed, TrainingDiverged
    from vae.train import applied, pick_device, train

    trial = lease.trial
    params = _suggest(trial, spec, lease.study)
    folder = run_folder(spec.study, root(lease.frozen))
    cfg = replace(spec.trial_config(params), out=str(folder), resume=True, progress=progress,
                  threads=threads or spec.train.threads)
    data = _data(data_cache, cfg.dataset, cfg.data_dir, cfg.limit, cfg.seed)
    device = pick_device(cfg.device)
    run_id = tracker.start_trial(experiment_id, parent, spec.study, trial.number, applied(cfg, data),
                                 str(device), cfg.training)
    trial.set_user_attr(RUN_ID, run_id)
    gpu = assigned(str(device))
    if gpu is not None:  # one worker per GPU (pipelines/engine/gpus.py): which one ran this trial
        tracker.set_tags(run_id, {GPU_TAG: gpu})
        say(f"trial {trial.number}: GPU {gpu} (pid {os.getpid()})")
    tracker.log_first_images(run_id, cfg, data.test)  # step 0 of the image series: the untrained model
    if bar is not None:
        bar.epoch(trial.number, 0)
    x_test = data.test
    reported: set[int] = set()
    checkpoints = CheckpointStore(tracker, spec)

    def on_epoch(epoch: int, metrics: dict, model=None) -> None:
        if model is not None:
            fault("epoch")
            if epoch == cfg.epochs:
                fault("measured")  # the end-of-training measurements done, the result not yet stored
        tracker.log_epoch(run_id, metrics, epoch)
        if bar is not None and model is not None:
            bar.epoch(trial.number, epoch)
        if model is not None and (epoch % spec.images_every == 0 or epoch == cfg.epochs):
            tracker.log_images(run_id, model, x_test, epoch)
        value = metrics.get(spec.metric)
        if value is not None and math.isfinite(value) and epoch not in reported:  # a resumed run's
            reported.add(epoch)  # last epoch comes again once measured: Optuna takes one value per step
            trial.report(value, epoch)
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned after epoch {epoch}")

    def result(history: list[dict]) -> None:  # the result reaches Optuna first; the uploads follow
        final = history[-1]
        value = final.get(spec.metric)
        if value is None or not math.isfinite(value):
            lease.fail("error", f"objective {spec.metric!r} missing or not finite")
        else:
            lease.complete(value, **{k: v for k, v in final.items() if k.startswith(("test/", "diag/"))})

    def on_saved(epoch: int, metrics: dict) -> None:
        """The last epoch, trained and on disk, before minutes of end-of-training measurements: Optuna
        and the bar hear of it now (a Ctrl-C while measuring leaves the trial at its true epoch), and a
        pruner decides before the measurements are paid for."""
        if epoch == cfg.epochs and epoch not in reported:
            value = metrics.get(spec.metric)
            if bar is not None:
                bar.epoch(trial.number, epoch)
            if value is not None and math.isfinite(value):
                reported.add(epoch)
                trial.report(value, epoch)
                if trial.should_prune():
                    raise optuna.TrialPruned(f"pruned after epoch {epoch}")
        checkpoints.after_epoch(run_id, folder, epoch)  # every k epochs, to the study's artifact store

    try:
        done, measured = _resumable(folder, cfg)
        fetched = checkpoints.fetch(_earlier_runs(lease), folder, len(done))  # from another host, or later
        if fetched is not None:
            done, measured = _resumable(folder, cfg)
            tracker.set_tags(run_id, {"vae.checkpoint_from": f"run {fetched[0]}, epoch {fetched[1]}"})
        if done:  # a retry: its run shows the epochs it resumes from, and says so
            say(_resuming(trial.number, root(lease.frozen), done, measured, cfg.epochs))
            for resumed in (run_id, *tracker.beta_runs(run_id).values()):  # and a conditional model's rows
                # the replayed epochs have metrics but no model here: their grids are the earlier attempt's
                tracker.set_tags(resumed, {"vae.resumed_from_epoch": len(done), "vae.images_missing":
                                           f"epochs 1-{len(done)}: trained by an earlier attempt of this "
                                           "configuration, whose run (KILLED or FAILED) holds their grids"})
        for metrics in done:
            on_epoch(metrics["epoch"], metrics)
        history = train(cfg, callback=on_epoch, data=data, saved=on_saved)
    except optuna.TrialPruned as e:
        lease.prune(str(e))  # "pruned after epoch N"
    except TrainingDiverged as e:
        lease.fail("diverged", str(e))
    except MeasurementFailed as e:
        # the model trained and its objective (val/) is measured: the trial keeps its result, without the
        # end-of-training diagnostics; the run says why, and the folder (checkpoint, traceback.txt) is uploaded
        try:
            tracker.set_tags(run_id, {"vae.measure_error": redact(str(e))[:5000]})
        except Exception:
            pass
        say(f"trial {trial.number}: the end-of-training measurements failed ({type(e.cause).__name__}: "
            f"{first_line(e.cause)[:300]}); its result stands without them, its checkpoint and traceback.txt "
            "are in its MLflow run")
        result(e.history)
    except VAEError as e:  # bad settings: every trial would fail alike, so the sweep stops
        lease.fail("error", str(e))
        log_result(tracker, lease.frozen, spec.study)
        raise
    except Exception as e:
        if CTRL_C.is_set():  # Ctrl-C inside a database call surfaces as its error ("interrupted")
            raise KeyboardInterrupt from None
        # a bug or out-of-memory in one trial: its traceback goes to its MLflow run, the sweep goes on
        try:
            tracker.log_text(run_id, redact(traceback.format_exc()), "traceback.txt")
        except Exception:
            pass
        lease.fail("error", f"{type(e).__name__}: {str(e)[:500]}")
    else:
        result(history)
    fault("result")
    log_result(tracker, lease.frozen, spec.study)  # lost: its run says how the other worker saw it
    return "LOST" if lease.lost else lease.state


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


def verdict(study: str, p: dict, interrupted: bool = False) -> tuple[int, str]:
    """The exit code of `vae sweep` and the line that says why, from the study's progress:
    0 when every configuration is finished (complete, pruned or diverged) with at least one
    result, or the rest runs in other live workers; 1 when configurations failed by errors or
    are left unfinished; 130 when interrupted."""
    counts = f"{p['complete']} complete, {p['pruned']} pruned, {p['diverged']} diverged"
    if interrupted:
        return 130, f"{study}: interrupted with {p['left']} of {p['total']} left ({counts}); run the same command to resume"
    if p["errors"]:
        return 1, (f"{study}: {p['errors']} configuration(s) failed by errors (trials "
                   f"{', '.join(map(str, p['unfinished'][:10]))}; `{status_hint(study)}` says why); "
                   f"{counts}; the next start runs them again")
    if p["done"]:
        if p["complete"] + p["pruned"] == 0:
            return 1, f"{study}: no configuration gave a result ({counts})"
        return 0, f"{study}: complete: {counts}; `{report_hint(study)}` builds the table"
    if p["running"]:
        return 0, f"{study}: {p['left']} of {p['total']} left, {p['running']} running in other workers ({counts})"
    return 1, f"{study}: {p['left']} of {p['total']} left unfinished ({counts}); run the same command to resume"


def already_complete(study: str, p: dict) -> str:
    return (f"study {study} is complete: {p['started']} configurations ({p['complete']} complete, "
            f"{p['pruned']} pruned, {p['diverged']} diverged); see `{report_hint(study)}`")


def check_objective(spec: Spec, storage: str | None) -> str | None:
    """A new study whose objective cannot compare its betas is refused (SpecError: one line, exit
    2, nothing created); an existing one resumes, and the returned warning says what that means."""
    from pipelines.engine.study import study_exists
    from pipelines.spec import SpecError

    why = spec.beta_bias()
    if why is None:
        return None
    if not study_exists(storage, spec.study):
        raise SpecError(why)
    return (f"warning: study {spec.study!r} was started with metric {spec.metric!r}, which cannot compare its "
            "betas: Optuna's best trial follows it, but the verdict uses its own beta-free rule (README, "
            "'The verdict')")


def study_verdict(spec: Spec, tracker: Tracker, storage: str | None) -> dict | None:
    """Compute the verdict of a finished study and state it in MLflow and Optuna (pipelines/report/publish.py).
    A failure here never costs a trained model: it is one line, and `vae report` computes it again."""
    from pipelines.report.publish import publish
    from pipelines.report.publish import study_verdict as compute

    try:
        _, v = compute(spec.study, tracker, storage_url(storage))
        publish(v, tracker, storage_url(storage))
        return v
    except VAEError as e:  # e.g. no complete trial: the exit line already says so
        print(f"note: no verdict: {e}", file=sys.stderr)
    return None


def run_sweep(spec: Spec, storage: str | None = None, tracking_uri: str | None = None,
              n_trials: int | None = None, progress: bool = True, threads: int | None = None,
              log=print, publish: bool = True, artifact_location: str | None = None, announce: bool = True) -> Summary:
    """Run trials until the study has nothing left to start or running; one worker, this process.
    publish: compute and state the verdict when the study is finished (a `--workers` child leaves
    that to its parent, and `vae sweep` with confirm until the finalists have their seeds). announce: this
    process says what happens to the study (it grows) and records how it was run (not a `--workers` child).
    artifact_location: where a new study's artifacts go (pipelines/tracking/artifacts.py)."""
    from optuna.trial import TrialState

    quiet_optuna()
    _watch_ctrl_c()
    if n_trials is not None:
        spec = spec.model_copy(update={"n_trials": n_trials})
    data_cache: dict = {}
    spec, tracker, url, store, study, experiment_id, parent, total = _open(
        spec, storage, data_cache, tracking_uri, artifact_location, log if announce else None)

    summary = Summary(study=spec.study)
    if study_progress(study, total)["done"]:
        summary.already_complete = True
        summary.verdict = study_verdict(spec, tracker, url) if publish else None
    bar = None if summary.already_complete else TrialBar(study, total, spec.train.epochs, spec.training_of, progress)
    waiting = False
    try:
        while not summary.already_complete:
            recover(study, store, spec, tracker, url)
            remaining = None if spec.sampler == "grid" else total - len(chains(study.get_trials(deepcopy=False)))
            lease = claim(study, store, spec, remaining)
            if lease is None:
                # nothing to start, but trials of other workers run: wait for them, recovering
                # (and then running) those whose workers die, so that the exit code is the study's
                others = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
                if not others:
                    break
                if not waiting:
                    log(f"waiting for {len(others)} trial(s) running in other workers")
                waiting = True
                time.sleep(spec.heartbeat_interval)
                continue
            waiting = False
            try:
                with lease:
                    state = run_trial(lease, spec, tracker, experiment_id, parent, data_cache, progress, threads,
                                      bar)
            except KeyboardInterrupt:
                if lease.state is not None and not lease.lost:  # its MLflow run says KILLED now
                    log_result(tracker, lease.frozen, spec.study)
                raise
            if state == "LOST":
                log(f"trial {lease.number} was failed by another worker meanwhile; moving on")
                continue
            summary.complete += state == "COMPLETE"
            summary.pruned += state == "PRUNED"
            if state == "FAIL":
                summary.failed += 1
                frozen = lease.frozen
                log(f"trial {lease.number} failed: {frozen.user_attrs.get(FAIL_REASON)}")
            if bar is not None:
                bar.refresh()
    except KeyboardInterrupt:
        summary.progress = study_progress(study, total)
        tracker.finish_parent(parent, _counts(summary.progress), "KILLED")
        raise
    finally:
        if bar is not None:
            bar.close()
    summary.progress = study_progress(study, total)
    code, _ = verdict(spec.study, summary.progress)
    if summary.progress["done"] or not summary.progress["running"]:
        if publish and summary.progress["done"]:
            summary.verdict = study_verdict(spec, tracker, url)
        tracker.finish_parent(parent, _counts(summary.progress), "FINISHED" if code == 0 else "FAILED")
    return summary


def _counts(p: dict) -> dict:
    return {k: p[k] for k in ("complete", "pruned", "diverged", "errors", "left")}


def _open(spec: Spec, storage: str | None, data_cache: dict, tracking_uri: str | None,
          artifact_location: str | None, log=None) -> tuple:
    """The study to work on, after everything that can refuse a sweep (pipelines/engine/accept.py,
    cheapest first, before any study, experiment, run or file exists; the data decoded into
    `data_cache`, and on disk for `--workers` children): (the spec as the study runs it, tracker,
    storage URL, Optuna storage, study, experiment id, parent run id, the study's number of
    configurations)."""
    from pipelines.engine.accept import check_inputs, stores_note

    check_inputs(spec, storage, tracking_uri, data_cache, _data, artifact_location)
    note = stores_note(storage, tracking_uri)
    if note and log is not None:
        say(note)
    tracker = Tracker(tracking_uri, artifacts=artifact_location)
    tracker.check()
    tracker.check_experiment(spec.study)  # an existing study's artifact store, usable from here
    url = storage_url(storage)
    store = make_storage(url, spec)
    spec, study, experiment_id, parent = open_study(spec, store, tracker, url, log)
    return spec, tracker, url, store, study, experiment_id, parent, study.user_attrs.get("total", spec.total)


def run_workers(spec: Spec, argv: list[str], workers: int, storage: str | None, tracking_uri: str | None,
                progress: bool, threads: int | None = None, gpus: list[str] | None = None,
                artifact_location: str | None = None, publish: bool = True) -> tuple[int, str, dict | None]:
    """Start `workers` processes of `vae sweep` sharing the study (the cores split between them;
    worker i on GPU gpus[i], pipelines/engine/gpus.py), wait for all, and return the exit code, the line
    that says how the study ended, and the study's verdict once every configuration is finished
    (`publish`: computed and stated; else None, left to the caller)."""
    import subprocess

    from pipelines.engine.gpus import child_env, describe

    quiet_optuna()
    spec, tracker, url, store, study, _, parent, total = _open(spec, storage, {}, tracking_uri, artifact_location, say)
    p = study_progress(study, total)
    if p["done"]:  # nothing to do: one line, and the parent run says so
        tracker.finish_parent(parent, _counts(p))
        return verdict(spec.study, p)[0], already_complete(spec.study, p), (
            study_verdict(spec, tracker, url) if publish else None)
    threads = threads or spec.train.threads or max(1, (os.cpu_count() or 1) // workers)
    cmd = [sys.executable, "-m", "pipelines.cli", "sweep", *argv, "--workers", "1", "--no-progress", "--child",
           "--threads", str(threads)]
    gpus = gpus or []
    procs = [subprocess.Popen(cmd, env=child_env(gpus, i)) for i in range(workers)]
    for line in describe(gpus, [p.pid for p in procs]):
        print(line, flush=True)
    bar = TrialBar(study, total, spec.train.epochs, spec.training_of, progress)
    interrupted = False
    try:
        while [p.poll() for p in procs].count(None):  # poll() every child: it reaps the dead
            time.sleep(1)
            bar.refresh()
    except KeyboardInterrupt:
        interrupted = True
        if TERMINATED.is_set():  # a SIGTERM reached this process only: pass it on
            for p in procs:
                p.poll() is None and p.terminate()
        for p in procs:  # the terminal sent SIGINT to all; wait for each to mark its trial failed
            p.wait()
    finally:
        bar.close()
    recover(study, store, spec, tracker, url)  # trials of children that died
    codes = [p.returncode for p in procs]
    p = study_progress(study, total)
    if TERMINATED.is_set():  # as a single process ends on SIGTERM: "terminated (SIGTERM)", 143 (pipelines/cli.py)
        tracker.finish_parent(parent, _counts(p), "KILLED")
        raise Terminated()
    interrupted = interrupted or 130 in codes or SIGTERM_EXIT in codes
    code, line = verdict(spec.study, p, interrupted)
    if interrupted:
        tracker.finish_parent(parent, _counts(p), "KILLED")
    elif 2 in codes:
        code = 2  # bad settings: the worker said why
    elif any(c < 0 for c in codes) and code == 0 and not p["done"]:
        code = 1
    if any(c < 0 for c in codes):
        line += f"; {sum(c < 0 for c in codes)} worker(s) killed by a signal"
    v = study_verdict(spec, tracker, url) if p["done"] and not interrupted and publish else None
    return code, line, v
