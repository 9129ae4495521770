"""SIGTERM ends a command as Ctrl-C does: the work in hand is stopped cleanly and one line says so.

    watch_sigterm()    # in the CLI's main: SIGTERM now raises Terminated where the process is

Without it a `kill PID` (a scheduler, `timeout`, a container stop) ended a command silently with
-15, in the middle of whatever it wrote. Terminated is a KeyboardInterrupt, so every place that
already cleans up after Ctrl-C (a trial marked interrupted, a half-built report folder removed,
the UI's server stopped) does the same for it; the CLI (pipelines/cli.py Group) prints
"terminated (SIGTERM)" and exits 143 (128 + 15), as a Ctrl-C prints "interrupted" and exits 130.
"""

from __future__ import annotations

import signal
import threading

EXIT_CODE = 128 + signal.SIGTERM
TERMINATED = threading.Event()  # set once a SIGTERM arrived (a library may wrap the exception)
CTRL_C = threading.Event()  # set by the SIGINT handler of `vae sweep` (pipelines/engine/sweep.py), and on SIGTERM


class Terminated(KeyboardInterrupt):
    """The process received SIGTERM."""


def on_sigterm(signum=None, frame=None):
    """The first SIGTERM raises Terminated; a second one (`timeout` signals the whole process group,
    and `make` passes its own on) arrives while the first is being cleaned up after, and is ignored:
    raising again would cut that clean-up short."""
    if TERMINATED.is_set():
        return
    TERMINATED.set()
    _ctrl_c().set()  # the sweep's "interrupted, not failed" rule applies to it too
    raise Terminated()


def _ctrl_c() -> threading.Event:
    return CTRL_C


def watch_sigterm() -> None:
    """Raise Terminated on SIGTERM, unless it is ignored or someone else's handler is installed."""
    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        _ctrl_c()  # imported now, not inside the handler, where a signal may interrupt an import
        signal.signal(signal.SIGTERM, on_sigterm)
