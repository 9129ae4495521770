"""The `vae` command line: the options and what the terminal shows; each command's work is a use case.

    vae train --dataset digits --z-dim 16 --beta 0.05 --epochs 3
    vae evaluate runs/digits-z16-b0.05
    vae sweep sweeps/quick.yaml
    vae report --study quick
    vae export --study quick chosen
    vae status --study quick
    vae ui

torch, optuna and mlflow are imported inside the commands, so `vae --help` answers at once.
Errors a user can fix print one line and exit with code 2 (pipelines/cli/group.py).
"""

from __future__ import annotations

from pipelines.cli.group import cli
from pipelines.cli.reporting import export, report, ui
from pipelines.cli.sweeping import status, sweep
from pipelines.cli.training import evaluate, train

for command in (train, evaluate, sweep, status, report, export, ui):  # in `vae --help`'s order
    cli.add_command(command)


def main():
    cli(prog_name="vae")


__all__ = ["cli", "main"]
