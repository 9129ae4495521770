"""One worker of a sweep: claim the study's trials one at a time and live each (pipelines/engine/trial.py).

    summary = run_sweep(spec, storage, tracking_uri)        # until nothing is left to start or running
    code, line = exit_status("quick", summary.progress)     # what `vae sweep` exits with, and says

The study lives in an Optuna storage (default sqlite:///mlruns/optuna.db): running the same spec again
resumes it (completed trials never run again, interrupted ones run again, a grown spec adds points:
pipelines/engine/study.py). Several processes sharing one study: pipelines/engine/workers.py. The
verdict of a finished study is the command's (pipelines/usecases/sweep.py), not the engine's.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from pipelines.common.hints import report_hint, status_hint
from pipelines.common.signals import watch_ctrl_c
from pipelines.common.spec import Spec
from pipelines.common.studies import progress as study_progress
from pipelines.common.studies import quiet_optuna, storage_url
from pipelines.common.trials import FAIL_REASON, chains
from pipelines.engine.lease import claim
from pipelines.engine.recovery import log_result, recover
from pipelines.engine.study import make_storage, open_study
from pipelines.engine.trial import TrialLife
from pipelines.engine.trial_bar import TrialBar
from pipelines.engine.worker import Worker
from pipelines.tracking.runs import Tracker
from vae.progress import say


@dataclass
class Summary:
    study: str = ""
    complete: int = 0   # in this run
    pruned: int = 0
    failed: int = 0
    already_complete: bool = False  # nothing was left to do when it started
    progress: dict = field(default_factory=dict)  # the study's, at the end (pipelines/common/studies.py progress)
    verdict: dict | None = None  # pipelines/report/verdict.py, set by the command once the study is finished


@dataclass
class Opened:
    """A study ready to work on: the spec as the study runs it, and its stores."""
    spec: Spec
    tracker: Tracker
    url: str
    store: object
    study: object
    experiment_id: str
    parent: str
    total: int
    waiting: bool = False  # said once that this worker waits for others' trials

    def recover(self, retry_errors: bool = False) -> None:
        s = self.spec
        recover(self.study, self.store, self.tracker, self.url, s.grace_period, s.sampler == "grid", s.max_retries,
                retry_errors)

    def progress(self) -> dict:
        return study_progress(self.study, self.total)


def run_sweep(spec: Spec, storage: str | None = None, tracking_uri: str | None = None,
              n_trials: int | None = None, progress: bool = True, threads: int | None = None,
              log=print, artifact_location: str | None = None, announce: bool = True) -> Summary:
    """Run trials until the study has nothing left to start or running; one worker, this process.
    announce: this process says what happens to the study (it grows) and records how it was run
    (not a `--workers` child). artifact_location: where a new study's artifacts go
    (pipelines/tracking/artifacts.py)."""
    quiet_optuna()
    watch_ctrl_c()
    if n_trials is not None:
        spec = spec.model_copy(update={"n_trials": n_trials})
    worker = Worker(spec, None, "", "", progress, threads)
    o = open_sweep(spec, storage, tracking_uri, artifact_location, worker.data, log if announce else None)
    worker.spec, worker.tracker, worker.experiment_id, worker.parent = o.spec, o.tracker, o.experiment_id, o.parent
    summary = Summary(study=o.spec.study, already_complete=o.progress()["done"])
    if summary.already_complete:
        summary.progress = o.progress()
        return summary
    worker.bar = TrialBar(o.study, o.total, o.spec.train.epochs, o.spec.training_of, progress)
    try:
        while (state := _next(o, worker, log)) is not None:
            summary.complete += state == "COMPLETE"
            summary.pruned += state == "PRUNED"
            summary.failed += state == "FAIL"
            worker.bar.refresh()
    except KeyboardInterrupt:
        o.tracker.finish_parent(o.parent, counts(o.progress()), "KILLED")
        raise
    finally:
        worker.bar.close()
    summary.progress = o.progress()
    code, _ = exit_status(o.spec.study, summary.progress)
    if summary.progress["done"] or not summary.progress["running"]:
        o.tracker.finish_parent(o.parent, counts(summary.progress), "FINISHED" if code == 0 else "FAILED")
    return summary


def _next(o: Opened, worker: Worker, log) -> str | None:
    """Claim and live the next trial; its state ("WAIT" while only other workers' trials run), or
    None once nothing is left to start or running."""
    from optuna.trial import TrialState

    while True:
        o.recover()
        remaining = None if o.spec.sampler == "grid" else o.total - len(chains(o.study.get_trials(deepcopy=False)))
        lease = claim(o.study, o.store, o.spec.heartbeat_interval, o.spec.sampler != "grid", remaining)
        if lease is not None:
            o.waiting = False
            break
        # nothing to start, but trials of other workers run: wait for them, recovering (and then
        # running) those whose workers die, so that the exit code is the study's
        others = o.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        if not others:
            return None
        if not o.waiting:
            log(f"waiting for {len(others)} trial(s) running in other workers")
        o.waiting = True
        time.sleep(o.spec.heartbeat_interval)
    try:
        with lease:
            state = TrialLife(lease, worker).run()
    except KeyboardInterrupt:
        if lease.state is not None and not lease.lost:  # its MLflow run says KILLED now
            log_result(o.tracker, lease.frozen, o.spec.study)
        raise
    if state == "LOST":
        log(f"trial {lease.number} was failed by another worker meanwhile; moving on")
    elif state == "FAIL":
        log(f"trial {lease.number} failed: {lease.frozen.user_attrs.get(FAIL_REASON)}")
    return state


def open_sweep(spec: Spec, storage: str | None, tracking_uri: str | None, artifact_location: str | None,
               data_cache: dict, log=None) -> Opened:
    """The study to work on, after everything that can refuse a sweep (pipelines/engine/accept.py,
    cheapest first, before any study, experiment, run or file exists; the data decoded into
    `data_cache`, and on disk for `--workers` children). `log`: where a grown study's lines go."""
    from pipelines.engine.accept import check_inputs, stores_note

    check_inputs(spec, storage, tracking_uri, data_cache, artifact_location)
    note = stores_note(storage, tracking_uri)
    if note and log is not None:
        say(note)
    tracker = Tracker(tracking_uri, artifacts=artifact_location)
    tracker.check()
    tracker.check_experiment(spec.study)  # an existing study's artifact store, usable from here
    url = storage_url(storage)
    store = make_storage(url, spec.heartbeat_interval, spec.grace_period)
    spec, study, experiment_id, parent = open_study(spec, store, tracker, url, log)
    o = Opened(spec, tracker, url, store, study, experiment_id, parent, study.user_attrs.get("total", spec.total))
    o.recover(retry_errors=True)  # a new start retries errors too
    return o


def counts(p: dict) -> dict:
    return {k: p[k] for k in ("complete", "pruned", "diverged", "errors", "left")}


def exit_status(study: str, p: dict, interrupted: bool = False) -> tuple[int, str]:
    """The exit code of `vae sweep` and the line that says why, from the study's progress:
    0 when every configuration is finished with at least one result and none given up, or the rest
    runs in other live workers; 1 when configurations failed by errors, were given up after their
    attempts died max_retries times, or are left unfinished; 130 when interrupted."""
    done = f"{p['complete']} complete, {p['pruned']} pruned, {p['diverged']} diverged"
    if p.get("gave_up"):
        done += f", {p['gave_up']} given up"
    if interrupted:
        return 130, f"{study}: interrupted with {p['left']} of {p['total']} left ({done}); run the same command to resume"
    if p["errors"]:
        return 1, (f"{study}: {p['errors']} configuration(s) failed by errors (trials "
                   f"{', '.join(map(str, p['unfinished'][:10]))}; `{status_hint(study)}` says why); "
                   f"{done}; the next start runs them again")
    if p["done"]:
        if p["complete"] + p["pruned"] == 0:
            return 1, f"{study}: no configuration gave a result ({done})"
        if p.get("gave_up"):
            return 1, (f"{study}: finished, but {p['gave_up']} configuration(s) were given up, their attempts killed "
                       f"their workers (trials {', '.join(map(str, p['given_up'][:10]))}; `{status_hint(study)}` "
                       f"says why): {done}; `{report_hint(study)}` builds the table of the rest")
        return 0, f"{study}: complete: {done}; `{report_hint(study)}` builds the table"
    if p["running"]:
        return 0, f"{study}: {p['left']} of {p['total']} left, {p['running']} running in other workers ({done})"
    return 1, f"{study}: {p['left']} of {p['total']} left unfinished ({done}); run the same command to resume"


def already_complete(study: str, p: dict) -> str:
    return (f"study {study} is complete: {p['started']} configurations ({p['complete']} complete, "
            f"{p['pruned']} pruned, {p['diverged']} diverged); see `{report_hint(study)}`")
