"""The commands that messages suggest, spelled as the user can run them from where they are.

    report_hint("quick")   # "vae report --study quick", ".venv/bin/vae report --study quick"
                           # or "make report STUDY=quick"

A user who started with `make sweep` has no `vae` on PATH (the Makefile calls .venv/bin/vae), so a
hint naming plain `vae` would fail for them. The rule: under make (MAKELEVEL is set in the
environment of every command make runs) the Makefile's target; else `vae` when the `vae` on PATH
is this interpreter's script; else that script's path (relative to the current folder when it
lies below it).
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from pathlib import Path

MAKE_TARGETS = {"report": "report", "status": "status"}
"""vae subcommand -> the Makefile target that runs it for STUDY=..."""


def script() -> Path:
    """The `vae` script installed beside this interpreter (not resolved: a venv's python is a link)."""
    return Path(sys.executable).parent / "vae"


def vae() -> str:
    """How to call `vae` from here: `vae` when PATH finds this installation's script, else its path."""
    mine, found = script(), shutil.which("vae")
    if found and mine.exists() and Path(found).resolve() == mine.resolve():
        return "vae"
    if not mine.exists():  # not installed as a script (python -m pipelines.cli from a checkout)
        return f"{shlex.quote(sys.executable)} -m pipelines.cli"
    relative = os.path.relpath(mine)
    return shlex.quote(mine.as_posix() if relative.startswith("..") else relative)


def command(name: str, study: str) -> str:
    """A command of `vae` for one study: `make NAME STUDY=X` under make, else `<vae> NAME --study X`."""
    if os.environ.get("MAKELEVEL") and name in MAKE_TARGETS:
        return f"make {MAKE_TARGETS[name]} STUDY={shlex.quote(study)}"
    return f"{vae()} {name} --study {shlex.quote(study)}"


def report_hint(study: str) -> str:
    """The command that builds the balance table of `study`, as the user started this one."""
    return command("report", study)


def status_hint(study: str) -> str:
    """The command that lists the trials of `study`."""
    return command("status", study)
