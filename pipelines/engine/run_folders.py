"""Run folders: where a configuration's checkpoint lives on this worker's disk while it trains.

    folder = run_folder("quick", 3)     # runs/quick/trial-3 (env VAE_RUNS_DIR or runs/)
    remove_run_folder("quick", 3)       # once finished and logged; the study's folder once empty
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

RUNS_DIR_ENV = "VAE_RUNS_DIR"


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
