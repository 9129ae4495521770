"""A claimed trial, owned by this process until its result is stored: Optuna's lease.

    lease = claim(study, storage, sampler, heartbeat_interval, remaining)   # None: nothing left
    with lease:                                     # heartbeat from the claim to the result
        ...
        lease.complete(value)                       # Optuna first; slow MLflow uploads after
    # an exception or Ctrl-C leaving the block without a result fails the trial ("error",
    # "interrupted"); a result another worker already declared dead is `lease.lost`

What Optuna does and what we do ourselves:
- Optuna: the atomic WAITING -> RUNNING claim, the heartbeat table and its stale check
  (`fail_stale_trials`), the retry (`RetryHeartbeatStaleTrialCallback`), tell/report/prune.
- Ours: the claim loop (grid points are enqueued once and claimed, retries first, because
  GridSampler hands one point to several workers and `study.optimize` would run a retry last);
  recording the owner and the first heartbeat right at the claim (Optuna records the first beat
  only once the objective starts, so a worker killed in between left a RUNNING trial that nothing
  ever reaped); the heartbeat thread itself (Optuna starts its own only inside `study.optimize`,
  which we cannot use for the claim order above); whether a local owner's process is alive.
"""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path

from pipelines.common.faults import fault
from pipelines.common.signals import CTRL_C, TERMINATED
from pipelines.common.trials import FAIL_KIND, FAIL_REASON, WORKER


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


def claim(study, storage, heartbeat_interval: float, sampled: bool, remaining: int | None) -> Lease | None:
    """The next trial for this worker, or None when nothing is left to start: waiting retries
    first (they resume where their dead trial stopped), then the grid's points in order, then,
    for a sampler (`sampled`), a new trial while `remaining` > 0."""
    import optuna
    from optuna.trial import TrialState

    study_id = storage.get_study_id_from_name(study.study_name)
    waiting = storage.get_all_trials(study_id, deepcopy=False, states=(TrialState.WAITING,))
    for t in sorted(waiting, key=lambda t: ("failed_trial" not in t.system_attrs, t.number)):
        try:
            if storage.set_trial_state_values(t._trial_id, state=TrialState.RUNNING):  # atomic claim
                fault("claimed")
                return Lease(study, storage, optuna.trial.Trial(study, t._trial_id), heartbeat_interval)
        except optuna.exceptions.UpdateFinishedTrialError:
            continue
    if sampled and (remaining is None or remaining > 0):
        trial = study.ask()
        fault("claimed")
        return Lease(study, storage, trial, heartbeat_interval)
    return None
