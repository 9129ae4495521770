"""What a trial's Optuna attributes mean: the names this project records, and chains of retries.

    chains(study.get_trials())   # root trial number -> [the trials of one configuration, oldest first]
    params_of(t)                 # its configuration (z_dim, beta, seed, loss), enqueued or suggested

A trial's configuration may run several times: a trial interrupted or whose worker died is failed
and its configuration enqueued again as a new trial (Optuna's RetryHeartbeatStaleTrialCallback,
which records `failed_trial` and `retry_history`). Those trials form a *chain*; its first trial is
its *root*, which names the run folder a retry resumes from, and its latest is its *head*, whose
state is the configuration's state. A chain is *finished* when its head is COMPLETE, PRUNED, or
FAIL for good: its training diverged (it would diverge again) or its attempts died too often
(pipelines/engine/recovery.py, max_retries). Everything that names a trial attribute uses the
constants below; these are read by every layer (the engine writes them, the report and the
commands read them).
"""

from __future__ import annotations

WORKER = "vae_worker"         # system attr: {"host", "pid", "start"} of the process that owns it
RUN_ID = "mlflow_run_id"      # user attrs, belonging to one run (never copied to a retry)
FAIL_KIND = "fail_kind"       # diverged (final) | gave-up (final: died max_retries times) | error | interrupted | died
FAIL_REASON = "fail_reason"
RUN_ATTRS = (RUN_ID, FAIL_KIND, FAIL_REASON)
OWN_SYSTEM_ATTRS = (WORKER,)


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
    """A final state for the configuration: complete, pruned, diverged (it would again), or given
    up after its attempts died too often."""
    name = t.state.name
    return name in ("COMPLETE", "PRUNED") or (name == "FAIL" and fail_kind(t) in FINAL_FAILS)


FINAL_FAILS = ("diverged", "gave-up")


CONSTANT_ATTRS = ("z_dim", "beta", "seed", "loss")  # a search dimension with one value: a user attr


def params_of(t) -> dict:
    """A trial's configuration (z_dim, beta, seed, loss): its parameters, the constants of the
    search (user attributes, not parameters: a constant has no importance) and, while it waits,
    the values it was enqueued with."""
    constants = {k: t.user_attrs[k] for k in CONSTANT_ATTRS if k in t.user_attrs}
    return {**t.system_attrs.get("fixed_params", {}), **constants, **t.params}
