"""What the report reads from the tracking store: a study's runs, and each run's curves, KL per
dimension, grids and rate-distortion curve (MLflow metric histories and artifacts).

    experiment_id, runs = load_runs("quick", tracker)   # then pipelines/report/data.py's build()
    art = fetch_artifacts(rep, tracker, folder)         # each run's curves, KL per dimension, grids

MLflow itself is called through the Tracker (pipelines/tracking/), never imported here.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from pipelines.report.data import Report, ReportError
from pipelines.tracking.runs import Tracker
from vae.redact import redact


@dataclass
class Artifacts:
    """What the figures need beyond the table, per run label (its MLflow run name), in table order."""
    histories: dict[str, list[dict]] = field(default_factory=dict)  # per epoch: {"epoch", "val/r_loss", ...}
    kl_per_dim: dict[str, list[float]] = field(default_factory=dict)  # sorted, nats
    grids: dict[str, dict[str, Path]] = field(default_factory=dict)   # {"recon": png, "samples": png}
    captions: dict[str, str] = field(default_factory=dict)            # "z-dim = 2; β = 0.01; seed 0"
    rd_curves: dict[int, list[dict]] = field(default_factory=dict)    # z-dim -> a conditional model's rd_curve.json


def load_runs(study: str, tracker: Tracker) -> tuple[str, pd.DataFrame]:
    """(experiment id, its runs as a frame) of a study's MLflow experiment; ReportError without one."""
    tracker.check()
    experiment_id = tracker.experiment_id(study)
    if experiment_id is None:
        names = tracker.study_names()
        raise ReportError(f"no study named {study!r} in {redact(tracker.uri)} (studies: {', '.join(names) or 'none'})")
    runs = tracker.runs_frame(experiment_id)
    if runs.empty or "tags.vae.role" not in runs:
        raise ReportError(f"study {study!r} has no runs yet; run `vae sweep` first")
    return experiment_id, runs


def ordered_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """Runs in the table's order: z-dim up, beta down, sigma-vae last, then seed."""
    return runs.assign(_s=runs["loss"] != "beta").sort_values(["z_dim", "_s", "beta", "seed"],
                                                                ascending=[True, True, False, True])


def fetch_artifacts(report: Report, tracker: Tracker, folder: Path) -> Artifacts:
    """Each run's validation curves (MLflow metric history), sorted KL per dimension and image grids
    (its recon.png and samples.png artifacts, copied into `folder`)."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    folder.mkdir(parents=True, exist_ok=True)
    art = Artifacts()
    for _, run in ordered_runs(report.runs).iterrows():
        label = run["tags.mlflow.runName"]
        history = {}
        for key in ("val/r_loss", "val/kld_loss"):
            for step, value in tracker.metric_history(run["run_id"], key):
                history.setdefault(step, {"epoch": step})[key] = value
        art.histories[label] = [history[k] for k in sorted(history)]
        balance = "σ-VAE" if run["loss"] == "sigma-vae" else f"β = {run['beta']:g}"
        art.captions[label] = f"z-dim = {run['z_dim']}; {balance}; seed {run['seed']}"
        with tempfile.TemporaryDirectory() as tmp:
            for name in ("recon.png", "samples.png", "kl_per_dim.json"):
                local = tracker.download(run["run_id"], name, tmp)
                if local is None:  # runs from before an artifact existed, or a failed upload: left out
                    continue
                if name.endswith(".json"):
                    art.kl_per_dim[label] = json.loads(local.read_text())
                else:
                    target = folder / f"{label}-{name}"
                    target.write_bytes(local.read_bytes())
                    art.grids.setdefault(label, {})[name[:-4]] = target
    art.rd_curves = fetch_curves(report, tracker)
    return art


def fetch_curves(report: Report, tracker: Tracker) -> dict[int, list[dict]]:
    """z-dim -> the rd_curve.json of the beta-conditional model behind its rows (the first seed's)."""
    curves: dict[int, list[dict]] = {}
    if "tags.vae.trained_by" not in report.runs:  # no conditional rows
        return curves
    rows = report.runs.dropna(subset=["tags.vae.trained_by"])
    for run_id, z_dim in rows.groupby("tags.vae.trained_by")["z_dim"].first().items():
        with tempfile.TemporaryDirectory() as tmp:
            local = tracker.download(run_id, "rd_curve.json", tmp)
            if local is not None:  # else a training run killed before its curve: the table still stands
                curves.setdefault(int(z_dim), json.loads(local.read_text()))
    return curves
