"""SIGTERM ends a command as Ctrl-C does: the work in hand is stopped cleanly and one line says so.

    watch_sigterm()    # in the CLI's main: SIGTERM now raises Terminated where the process is

Without it a `kill PID` (a scheduler, `timeout`, a container stop) ended a command silently with
-15, in the middle of whatever it wrote. Terminated is a KeyboardInterrupt, so every place that
already cleans up after Ctrl-C (a trial marked interrupted, a half-built report folder removed,
the UI's server stopped) does the same for it; the CLI (pipelines/cli.py Group) prints
"terminated (SIGTERM)" and exits 143 (128 + 15), as a Ctrl-C prints "interrupted" and exits 130.
"""

from __future__ import annotations

import os
import signal
import sys
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


def watch_ctrl_c() -> None:
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


def watch_sigterm() -> None:
    """Raise Terminated on SIGTERM, unless it is ignored or someone else's handler is installed; and
    never lose a signal to a library callback (unraisable)."""
    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        _ctrl_c()  # imported now, not inside the handler, where a signal may interrupt an import
        signal.signal(signal.SIGTERM, on_sigterm)
        if sys.unraisablehook is not on_unraisable:
            global _next_hook
            _next_hook = sys.unraisablehook
            sys.unraisablehook = on_unraisable


_next_hook = sys.unraisablehook


def on_unraisable(unraisable) -> None:
    """A signal's exception raised inside a callback that cannot raise (a garbage collector's or a
    weakref's, SQLAlchemy's `_collection_gced`) is printed by Python as "Exception ignored in: …"
    with a traceback, and lost. Instead: nothing printed, and the same signal delivered again, so
    that it stops the command where it can (the handler runs at the next ordinary line)."""
    kind = unraisable.exc_type
    if kind is not None and issubclass(kind, KeyboardInterrupt):
        if issubclass(kind, Terminated):
            TERMINATED.clear()  # so that the handler raises again
        again = signal.SIGTERM if issubclass(kind, Terminated) else signal.SIGINT
        # from another thread, a moment later: sent from here, its handler would raise inside this hook
        threading.Timer(0.05, os.kill, (os.getpid(), again)).start()
        return
    _next_hook(unraisable)
