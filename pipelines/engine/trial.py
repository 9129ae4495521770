"""The life of one trial, from its claim to its stored result: one owner, `Lease`.

    lease = claim(study, storage, spec, remaining)   # None: nothing left to start
    with lease:                                     # heartbeat from the claim to the result
        ...train...
        lease.complete(value)                       # Optuna first; slow MLflow uploads after
    # an exception or Ctrl-C leaving the block without a result fails the trial ("error",
    # "interrupted"); a result another worker already declared dead is `lease.lost`

A trial's configuration may run several times: a trial interrupted or whose worker died is failed
and its configuration enqueued again as a new trial (Optuna's RetryHeartbeatStaleTrialCallback,
which records `failed_trial` and `retry_history`). Those trials form a *chain*; its first trial is
its *root*, which names the run folder a retry resumes from, and its latest is its *head*, whose
state is the configuration's state. A chain is *finished* when its head is COMPLETE, PRUNED, or
FAIL because its training diverged (a result: it would diverge again). Everything here that
names a trial attribute uses the constants below.

What Optuna does and what we do ourselves:
- Optuna: the atomic WAITING -> RUNNING claim, the heartbeat table and its stale check
  (`fail_stale_trials`), the retry (`RetryHeartbeatStaleTrialCallback`), tell/report/prune.
- Ours: the claim loop (grid points are enqueued once and claimed, retries first, because
  GridSampler hands one point to several workers and `study.optimize` would run a retry last);
  recording the owner and the first heartbeat right at the claim (Optuna records the first beat
  only once the objective starts, so a worker killed in between left a RUNNING trial that nothing
  ever reaped); the heartbeat thread itself (Optuna starts its own only inside `study.optimize`,
  which we cannot use for the claim order above).
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
from pathlib import Path

from pipelines.engine.faults import fault
from pipelines.engine.signals import CTRL_C, TERMINATED

WORKER = "vae_worker"         # system attr: {"host", "pid", "start"} of the process that owns it
RUN_ID = "mlflow_run_id"      # user attrs, belonging to one run (never copied to a retry)
FAIL_KIND = "fail_kind"       # diverged (final) | error | interrupted | died
FAIL_REASON = "fail_reason"
RUN_ATTRS = (RUN_ID, FAIL_KIND, FAIL_REASON)
OWN_SYSTEM_ATTRS = (WORKER,)
RUNS_DIR_ENV = "VAE_RUNS_DIR"


# --- chains: which trials are the same configuration ------------------------------------------
def root(t) -> int:
    """The first trial of `t`'s chain (itself unless it is a retry)."""
    history = t.system_attrs.get("retry_history") or []
    return history[0] if history else t.number


def chains(trials) -> dict[int, list]:
    """Trials grouped by root, oldest first; the last of each list is the chain's head."""
    out: dict[int, list] = {}
    for t in sorted(trials, key=lambda t: t.number):
        out.setdefault(root(t), []).append(t)
    return out


def heads(trials) -> list:
    return [c[-1] for c in chains(trials).values()]


def fail_kind(t) -> str:
    """Why a FAIL trial failed; one that Optuna's heartbeat failed carries no kind of ours."""
    return t.user_attrs.get(FAIL_KIND) or "died"


def finished(t) -> bool:
    """A final state for the configuration: complete, pruned, or diverged (it would again)."""
    name = t.state.name
    return name in ("COMPLETE", "PRUNED") or (name == "FAIL" and fail_kind(t) == "diverged")


CONSTANT_ATTRS = ("z_dim", "beta", "seed", "loss")  # a search dimension with one value: a user attr


def params_of(t) -> dict:
    """A trial's configuration (z_dim, beta, seed, loss): its parameters, the constants of the
    search (user attributes, not parameters: a constant has no importance) and, while it waits,
    the values it was enqueued with."""
    constants = {k: t.user_attrs[k] for k in CONSTANT_ATTRS if k in t.user_attrs}
    return {**t.system_attrs.get("fixed_params", {}), **constants, **t.params}


def run_folder(study: str, trial_root: int) -> Path:
    """Where a configuration's checkpoint lives while it trains; kept until it is finished and
    logged, so a retry on this host resumes from its last epoch. Base: env VAE_RUNS_DIR or runs/."""
    return Path(os.environ.get(RUNS_DIR_ENV, "runs")) / study / f"trial-{trial_root}"


def remove_run_folder(study: str, trial_root: int) -> None:
    """Remove a finished configuration's run folder, and the study's folder once it is empty: a
    finished sweep leaves no empty runs/<study>/ behind."""
    folder = run_folder(study, trial_root)
    shutil.rmtree(folder, ignore_errors=True)
    try:
        folder.parent.rmdir()  # only when empty: other configurations may still be training
    except OSError:
        pass


# --- owners: is the worker of a trial alive? ----------------------------------------------------
def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks (Linux), so a reused pid is not taken for the owner."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()
    return None if fields[0] == "Z" else fields[19]  # a zombie has exited: not alive


def me() -> dict:
    return {"host": socket.gethostname(), "pid": os.getpid(), "start": _start_time(os.getpid())}


def alive(owner: dict | None) -> bool | None:
    """True/False for an owner on this host; None when it runs elsewhere (the heartbeat decides)."""
    if not owner:
        return False
    if owner.get("host") != socket.gethostname():
        return None
    pid = owner.get("pid")
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    if Path("/proc").is_dir():
        start = _start_time(pid)
        if start is None or (owner.get("start") is not None and owner["start"] != start):
            return False  # a zombie, or a new process that got the dead worker's pid
    return True


# --- the lease --------------------------------------------------------------------------------
class Lease:
    """One claimed trial, owned by this process until its result is stored."""

    def __init__(self, study, storage, trial, interval: float):
        self.study, self.storage, self.trial = study, storage, trial
        self.interval = interval
        self.state: str | None = None  # COMPLETE | PRUNED | FAIL once stored
        self.lost = False              # another worker declared it dead and runs it again
        self._stop = threading.Event()
        self._own()
        self._thread = threading.Thread(target=self._beat, daemon=True)

    def _own(self) -> None:
        """Owner and first heartbeat right after the claim: from here on, a dead owner is seen."""
        self.storage.set_trial_system_attr(self.trial._trial_id, WORKER, me())
        self.storage.record_heartbeat(self.trial._trial_id)
        fault("owned")

    @property
    def frozen(self):
        return self.storage.get_trial(self.trial._trial_id)

    @property
    def number(self) -> int:
        return self.trial.number

    def _beat(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.storage.record_heartbeat(self.trial._trial_id)
            except Exception:  # a missed beat is retried; the grace period covers a few
                pass

    def __enter__(self) -> Lease:
        self._thread.start()
        return self

    def __exit__(self, kind, exc, tb) -> bool:
        try:
            if self.state is None and kind is not None:
                if issubclass(kind, KeyboardInterrupt) or CTRL_C.is_set():
                    fault("cleanup")
                    how = "SIGTERM" if TERMINATED.is_set() else "Ctrl-C"  # set before Terminated is raised
                    self.fail("interrupted", f"interrupted ({how}); resumes from its last epoch on the next start")
                else:
                    self.fail("error", f"{kind.__name__}: {str(exc)[:500]}")
        finally:
            self._stop.set()
        return False

    # results: each stores attrs, then the state, and says whether it still owned the trial
    def _store(self, state, value=None, **attrs) -> bool:
        import optuna

        try:
            for k, v in attrs.items():
                self.trial.set_user_attr(k, v)
            self.study.tell(self.trial, value, state=state)
        except (optuna.exceptions.UpdateFinishedTrialError, ValueError, RuntimeError):
            # "Cannot tell a FAIL trial": declared dead by another worker, whose retry runs it
            self.lost = True
            return False
        finally:
            self._stop.set()  # a stored (or lost) result needs no more beats
        self.state = state.name
        return True

    def complete(self, value: float, **attrs) -> bool:
        import optuna

        return self._store(optuna.trial.TrialState.COMPLETE, value, **attrs)

    def prune(self, reason: str) -> bool:
        import optuna

        return self._store(optuna.trial.TrialState.PRUNED, **{FAIL_REASON: reason})

    def fail(self, kind: str, reason: str) -> bool:
        import optuna

        from vae.redact import redact

        return self._store(optuna.trial.TrialState.FAIL, **{FAIL_KIND: kind, FAIL_REASON: redact(reason)})


def claim(study, storage, spec, remaining: int | None) -> Lease | None:
    """The next trial for this worker, or None when nothing is left to start: waiting retries
    first (they resume where their dead trial stopped), then the grid's points in order, then,
    for a sampler, a new trial while `remaining` > 0."""
    import optuna
    from optuna.trial import TrialState

    study_id = storage.get_study_id_from_name(spec.study)
    waiting = storage.get_all_trials(study_id, deepcopy=False, states=(TrialState.WAITING,))
    for t in sorted(waiting, key=lambda t: ("failed_trial" not in t.system_attrs, t.number)):
        try:
            if storage.set_trial_state_values(t._trial_id, state=TrialState.RUNNING):  # atomic claim
                fault("claimed")
                return Lease(study, storage, optuna.trial.Trial(study, t._trial_id), spec.heartbeat_interval)
        except optuna.exceptions.UpdateFinishedTrialError:
            continue
    if spec.sampler != "grid" and (remaining is None or remaining > 0):
        trial = study.ask()
        fault("claimed")
        return Lease(study, storage, trial, spec.heartbeat_interval)
    return None
