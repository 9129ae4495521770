"""Recovery: after any kill, crash or Ctrl-C, make the study's state right again.

    recover(study, storage, spec, tracker)   # every worker, before each claim

Written as "make the state right" rather than "react to an event", so that it is idempotent: a
pass killed halfway leaves a state that the next pass repairs, and passes never overlap (they
run under the study lock, pipelines/common/locks.py). One pass:

1. Fails RUNNING trials whose worker is gone: on this host at once (its process is gone), a trial
   claimed but never owned once the grace period passed, and elsewhere by Optuna's heartbeat
   (`fail_stale_trials`). The reason says how the death was detected. A worker on this host that
   is alive is never failed for a late heartbeat (a starved machine can delay its beats past the
   grace period): its beat is renewed here instead.
2. Finishes the MLflow run of every finished trial whose worker died before doing so (KILLED for
   interrupted and dead trials; a complete trial's artifacts are uploaded from its run folder), and
   any trial run left RUNNING by a worker killed before the trial recorded it. MLflow's run status
   is the record of "logged": a trial's run still RUNNING after its result is not yet logged.
3. Enqueues every point of the study that has no trial yet (a new or grown study, a creator killed
   while enqueueing: pipelines/engine/points.py) and, once, the configuration of every chain whose head failed without a result
   (interrupted, died; errors only when `retry_errors`, i.e. at a new start), with Optuna's
   RetryHeartbeatStaleTrialCallback. A retry resumes from the run folder of its chain.
4. Removes the run folders of finished configurations whose runs are logged.
"""

from __future__ import annotations

import copy
from datetime import datetime, timedelta

from pipelines.common.faults import fault
from pipelines.common.locks import study_lock
from pipelines.common.trials import (
    FAIL_KIND,
    FAIL_REASON,
    OWN_SYSTEM_ATTRS,
    RUN_ATTRS,
    RUN_ID,
    WORKER,
    chains,
    fail_kind,
    finished,
    params_of,
    root,
)
from pipelines.engine.lease import alive
from pipelines.engine.points import key, study_points
from pipelines.engine.run_folders import remove_run_folder, run_folder


def recover(study, storage, tracker, url: str, grace_period: float, grid: bool, max_retries: int,
            retry_errors: bool = False) -> None:
    """One recovery pass (see the module docstring); `url` is the storage's, for the lock; `grid`:
    the study's points are enqueued; `max_retries`: deaths a configuration is given before it is
    given up."""
    import optuna

    name = study.study_name
    with study_lock(url, name):
        _fail_dead(study, storage, grace_period)
        optuna.storages.fail_stale_trials(study)
        fault("recovering")
        trials = study.get_trials(deepcopy=False)
        running = _finish_runs(tracker, storage, name, trials)
        _enqueue(study, grid, trials, retry_errors, max_retries)
        for c in chains(trials).values():
            if finished(c[-1]) and c[-1].user_attrs.get(RUN_ID) not in running:
                remove_run_folder(name, c[0].number)


def _fail_dead(study, storage, grace_period: float) -> None:
    import optuna
    from optuna.trial import TrialState

    now = datetime.now()
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        owner = t.system_attrs.get(WORKER)
        if owner is None:
            if t.datetime_start is None or now - t.datetime_start < timedelta(seconds=grace_period):
                continue  # just claimed: its worker is writing its name
            reason = "its worker died right after claiming it (never recorded an owner)"
        elif alive(owner) is False:
            reason = f"its worker (pid {owner.get('pid')} on {owner.get('host')}) is gone"
        else:
            if alive(owner):  # known alive, though perhaps too busy to beat: never declared stale
                storage.record_heartbeat(t._trial_id)
            continue  # on another host: Optuna's heartbeat decides
        try:
            storage.set_trial_user_attr(t._trial_id, FAIL_KIND, "died")
            storage.set_trial_user_attr(t._trial_id, FAIL_REASON, f"{reason}; its configuration runs again")
            storage.set_trial_state_values(t._trial_id, state=TrialState.FAIL)
        except optuna.exceptions.UpdateFinishedTrialError:
            pass  # it finished meanwhile


def _finish_runs(tracker, storage, study: str, trials) -> set[str]:
    """Terminate the MLflow runs still RUNNING of finished trials whose worker is gone or was
    declared dead, and of trials killed between creating their run and recording it; return the
    ids of the trial runs still RUNNING afterwards."""
    by_number = {t.number: t for t in trials}
    running = set()
    for run_id, number in tracker.running_trial_runs(study):
        t = by_number.get(number)
        if t is None or not t.state.is_finished():
            running.add(run_id)
        elif t.user_attrs.get(RUN_ID) != run_id:
            tracker.finish_trial(run_id, "DIED", reason="its worker died before the trial recorded this run")
        elif alive(t.system_attrs.get(WORKER)) is False or (t.state.name == "FAIL" and fail_kind(t) == "died"):
            log_result(tracker, t, study)
        else:
            running.add(run_id)  # its worker is uploading, here or elsewhere
    return running


def log_result(tracker, t, study: str) -> None:
    """Terminate trial `t`'s MLflow run to match its Optuna state (a complete trial's artifacts
    uploaded from its run folder); remove the folder once the configuration is finished."""
    run_id = t.user_attrs.get(RUN_ID)
    folder = run_folder(study, root(t))
    if run_id:
        state = t.state.name if t.state.name != "FAIL" else fail_kind(t).upper()
        tracker.finish_trial(run_id, state, folder if t.state.name == "COMPLETE" else None,
                             reason=t.user_attrs.get(FAIL_REASON))
    if finished(t):
        remove_run_folder(study, root(t))


def _enqueue(study, grid: bool, trials, retry_errors: bool, max_retries: int) -> None:
    all_chains = chains(trials)
    if grid:  # the study's points (pipelines/engine/points.py), not only this spec's grid
        have = {key(params_of(c[0])) for c in all_chains.values()}
        for point in study_points(study):
            if key(point) not in have:
                study.enqueue_trial(point)
    for c in all_chains.values():
        head = c[-1]
        if head.state.name != "FAIL" or finished(head) or (fail_kind(head) == "error" and not retry_errors):
            continue
        deaths = [t for t in c if t.state.name == "FAIL" and fail_kind(t) == "died"]
        if len(deaths) >= max_retries:
            give_up(study, head, deaths, max_retries)
        else:
            retry(study, head)


def give_up(study, frozen, deaths: list, max_retries: int) -> None:
    """End a configuration whose attempts died `max_retries` times (a kernel that kills its worker,
    out of memory) with a final FAIL trial in its chain, kind "gave-up", that says why. Optuna's
    RetryHeartbeatStaleTrialCallback has a max_retry, but it counts every retry, and a Ctrl-C or
    SIGTERM (which retries too) must never use one up; so the count is ours, the trial Optuna's
    (added finished, as the callback adds its retries: no worker can claim it)."""
    import optuna

    system_attrs = {"failed_trial": frozen.number, "retry_history": [], **{
        k: v for k, v in frozen.system_attrs.items() if k not in OWN_SYSTEM_ATTRS}}
    system_attrs["retry_history"] = [*system_attrs["retry_history"], frozen.number]
    last = frozen.user_attrs.get(FAIL_REASON) or "its worker died"
    reason = (f"given up: its attempts died {len(deaths)} times (trials {', '.join(str(t.number) for t in deaths)}; "
              f"max_retries {max_retries}), the last because {last.split(';')[0]}; a configuration that kills its "
              "worker (out of memory, a crash in a kernel) is not run again")
    user_attrs = {k: v for k, v in frozen.user_attrs.items() if k not in RUN_ATTRS}
    study.add_trial(optuna.create_trial(state=optuna.trial.TrialState.FAIL, params=frozen.params,
                                        distributions=frozen.distributions, system_attrs=system_attrs,
                                        user_attrs={**user_attrs, FAIL_KIND: "gave-up", FAIL_REASON: reason}))


def retry(study, frozen) -> None:
    """Enqueue a failed trial's configuration again (Optuna's retry callback, minus what belonged
    to its run and its worker: a retry inheriting the dead worker would look dead at once)."""
    from optuna.storages import RetryHeartbeatStaleTrialCallback

    clone = copy.deepcopy(frozen)
    clone.user_attrs = {k: v for k, v in frozen.user_attrs.items() if k not in RUN_ATTRS}
    clone.system_attrs = {k: v for k, v in frozen.system_attrs.items() if k not in OWN_SYSTEM_ATTRS}
    RetryHeartbeatStaleTrialCallback()(study, clone)
