"""Fault injection at named windows of a worker's life, for the tests of "no lost work".

    VAE_FAULT=result vae sweep spec.yaml          # SIGKILL itself once a trial's result is stored
    VAE_FAULT=epoch@INT,cleanup@INT vae sweep ... # Ctrl-C after an epoch, and again while cleaning up
    VAE_FAULT=epoch:z_dim=4:beta=0.1 vae sweep ... # SIGKILL only in the trials of that configuration

Windows (where `fault()` is called): `created` (study row created, not yet described),
`claimed` (trial claimed, owner not yet recorded), `owned` (owner recorded, before training),
`epoch` (an epoch's checkpoint written), `uploaded` (a checkpoint uploaded to the artifact store,
pipelines/tracking/checkpoints.py), `recovering` (dead trials failed, retries not yet
enqueued), `result` (result stored in Optuna, MLflow run not yet finished), `cleanup` (a Ctrl-C's
trial not yet marked interrupted). Each window fires once per process. The signal is KILL unless
`@NAME` says another (INT is a Ctrl-C); `:KEY=VALUE` parts fire it only where the window's context
says so (`fault("epoch", z_dim=4, beta=0.1)`: a configuration that always kills its worker). Unset,
`fault()` costs one dictionary lookup.
"""

from __future__ import annotations

import os
import signal

_fired: set[str] = set()


def fault(window: str, **context) -> None:
    wanted = os.environ.get("VAE_FAULT")
    if not wanted or window in _fired:
        return
    for item in wanted.split(","):
        name, _, sig = item.partition("@")
        name, *where = name.split(":")
        if name == window and all(str(context.get(k)) == v for k, _, v in (w.partition("=") for w in where)):
            _fired.add(window)
            os.kill(os.getpid(), getattr(signal, f"SIG{sig or 'KILL'}"))
