"""Several workers of one study on this host: `vae sweep --workers N` starts N processes and waits.

    code, line = run_workers(spec, argv, workers=2, storage=None, tracking_uri=None, progress=True)

Each child is an ordinary `vae sweep --child` worker (pipelines/engine/sweep.py) with its share of
the cores (and its GPU: pipelines/engine/gpus.py); they share the study through its storage, so
every trial is claimed once. This parent only shows the study's bar, passes a SIGTERM on, and
recovers the trials of children that died.
"""

from __future__ import annotations

import sys
import time

from pipelines.common.signals import EXIT_CODE as SIGTERM_EXIT
from pipelines.common.signals import TERMINATED, Terminated
from pipelines.common.spec import Spec
from pipelines.common.studies import quiet_optuna
from pipelines.engine.sweep import already_complete, counts, exit_status, open_sweep
from pipelines.engine.trial_bar import TrialBar
from vae.progress import say


def run_workers(spec: Spec, argv: list[str], workers: int, storage: str | None, tracking_uri: str | None,
                progress: bool, threads: int | None = None, gpus: list[str] | None = None,
                artifact_location: str | None = None) -> tuple[int, str]:
    """Start `workers` processes of `vae sweep` sharing the study (the cores split between them;
    worker i on GPU gpus[i]), wait for all, and return the exit code and the line that says how the
    study ended."""
    import subprocess

    from pipelines.engine.gpus import child_env, describe

    quiet_optuna()
    o = open_sweep(spec, storage, tracking_uri, artifact_location, {}, say)
    p = o.progress()
    if p["done"]:  # nothing to do: one line, and the parent run says so
        o.tracker.finish_parent(o.parent, counts(p))
        return exit_status(o.spec.study, p)[0], already_complete(o.spec.study, p)
    if not (threads or o.spec.train.threads):
        from vae.runtime import choose_threads

        threads, why = choose_threads(workers)
        say(f"CPU threads per worker: {threads} ({why}; --threads N sets it; the numbers depend on it)")
    threads = threads or o.spec.train.threads
    cmd = [sys.executable, "-m", "pipelines.cli", "sweep", *argv, "--workers", "1", "--no-progress", "--child",
           "--threads", str(threads)]
    gpus = gpus or []
    procs = [subprocess.Popen(cmd, env=child_env(gpus, i)) for i in range(workers)]
    for line in describe(gpus, [p.pid for p in procs]):
        print(line, flush=True)
    interrupted = _wait(procs, TrialBar(o.study, o.total, o.spec.train.epochs, o.spec.training_of, progress))
    o.recover()  # trials of children that died
    codes = [p.returncode for p in procs]
    p = o.progress()
    if TERMINATED.is_set():  # as a single process ends on SIGTERM: "terminated (SIGTERM)", 143 (pipelines/cli.py)
        o.tracker.finish_parent(o.parent, counts(p), "KILLED")
        raise Terminated()
    interrupted = interrupted or 130 in codes or SIGTERM_EXIT in codes
    code, line = exit_status(o.spec.study, p, interrupted)
    if interrupted:
        o.tracker.finish_parent(o.parent, counts(p), "KILLED")
    elif 2 in codes:
        code = 2  # bad settings: the worker said why
    elif any(c < 0 for c in codes) and code == 0 and not p["done"]:
        code = 1
    if any(c < 0 for c in codes):
        line += f"; {sum(c < 0 for c in codes)} worker(s) killed by a signal"
    return code, line


def _wait(procs, bar) -> bool:
    """Wait for every child, the bar redrawn each second; True when a Ctrl-C or SIGTERM came."""
    try:
        while [p.poll() for p in procs].count(None):  # poll() every child: it reaps the dead
            time.sleep(1)
            bar.refresh()
    except KeyboardInterrupt:
        if TERMINATED.is_set():  # a SIGTERM reached this process only: pass it on
            for p in procs:
                p.poll() is None and p.terminate()
        for p in procs:  # the terminal sent SIGINT to all; wait for each to mark its trial failed
            p.wait()
        return True
    finally:
        bar.close()
    return False
