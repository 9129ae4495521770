"""The chosen model in MLflow: a trial's run and model files, and the model in the Model Registry.

    run_id = trial_run(tracker, "quick", trial)            # the run holding trial's checkpoint
    fetch_files(tracker, run_id, folder)                   # checkpoint.pt and config.json, into folder
    log_chosen_model(tracker, "quick", verdict, run_id)    # models:/quick/1

`log_chosen_model` logs the model as an MLflow model, a wrapper `images (N, C, H, W) in [0, 1] ->
reconstructions from the posterior mean` (deterministic, as MLflow 3's default torch.export format
needs), and registers it under the study's name. `vae export` (pipelines/usecases/export.py) uses
the first two.
"""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path

from pipelines.common.trials import RUN_ID
from pipelines.tracking import beta_runs
from vae.checkpoint import CHECKPOINT
from vae.errors import VAEError, first_line
from vae.redact import redact

QUIET = ("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # no download bars between our lines
FILES = (CHECKPOINT, "config.json")  # what a trial's MLflow run holds and the export copies


class ExportError(VAEError):
    """The study, trial, beta or folder named cannot be exported."""


def trial_run(tracker, study: str, t) -> str:
    """The MLflow run holding trial t's checkpoint: its user attr, else the run tagged with its number
    (a conditional trial: its training run, not the rows of its betas)."""
    if t.user_attrs.get(RUN_ID):
        return t.user_attrs[RUN_ID]
    exp = tracker.client.get_experiment_by_name(study)
    runs = [] if exp is None else tracker.client.search_runs(
        [exp.experiment_id], f"tags.`vae.trial` = '{t.number}'", max_results=100)
    runs = [r for r in runs if beta_runs.TRAINED_BY not in r.data.tags
            and r.data.tags.get("vae.role") in ("trial", beta_runs.ROLE)]
    if not runs:
        raise ExportError(f"trial {t.number} of study {study!r} has no MLflow run in {redact(tracker.uri)} "
                          "(another tracking store? pass --tracking-uri)")
    return runs[0].info.run_id


def row_run(tracker, run_id: str, beta: float | None) -> str | None:
    """The run whose metrics are the model's: the trial's own, or a conditional trial's row of `beta`
    (None: a beta between its grid points, which the sweep did not measure)."""
    rows = tracker.beta_runs(run_id)
    if not rows:
        return run_id
    return next((r for b, r in rows.items() if math.isclose(b, beta, rel_tol=1e-9)), None)


def fetch_files(tracker, run_id: str, folder: Path) -> None:
    """Copy the run's model files (FILES) into `folder`; the first download that fails raises
    (pipelines/usecases/export.py tells a full disk from a run without them)."""
    for name in FILES:
        tracker.client.download_artifacts(run_id, name, str(folder))


def artifact_size(tracker, run_id: str, name: str) -> int | None:
    """Bytes of one artifact of the run, or None where the store does not say."""
    try:
        return next((a.file_size for a in tracker.client.list_artifacts(run_id) if a.path == name), None)
    except Exception:
        return None


def _reconstruction(model):
    """What MLflow logs: images in [0, 1] -> reconstructions from the posterior mean (no sampling:
    what torch.export traces must be deterministic)."""
    import torch

    class Reconstruction(torch.nn.Module):
        def __init__(self, vae):
            super().__init__()
            self.vae = vae

        def forward(self, x):
            return self.vae.decode(self.vae.encode(x)[0])

    return Reconstruction(model).eval()


def log_chosen_model(tracker, study: str, verdict: dict, run_id: str) -> str | None:
    """Log the verdict's model as an MLflow model and register it under the study's name; return
    its registry URI (`models:/<study>/<version>`), or None after a one-line warning (nothing is lost:
    the runs and their checkpoints stay as they are).

    `run_id`: the chosen trial's run (a conditional trial's training run or its row of the verdict's
    beta). The model is a LoggedModel in the study's experiment, the output of that row's run, logged
    by `mlflow.pytorch.log_model` in the pt2 format (torch.export) with a signature and an input
    example; the version is tagged `z_dim`, `beta` (`σ-VAE` for none), `rule`, `trial`, `vae.run_id`.
    A second call for the same model and beta returns the version already registered (its `rule` tag
    updated), so `vae sweep` and `vae report` can both call it."""
    try:
        return _log_chosen_model(tracker, study, verdict, run_id)
    except Exception as e:
        print(f"warning: the chosen model was not logged to MLflow's Model Registry: {redact(first_line(e))[:300]}",
              file=sys.stderr)
        return None


def _log_chosen_model(tracker, study: str, verdict: dict, run_id: str) -> str:
    import tempfile

    import mlflow
    import torch
    from mlflow.entities import LoggedModelStatus
    from mlflow.exceptions import MlflowException
    from mlflow.models import infer_signature
    from mlflow.tracking._tracking_service.utils import _use_tracking_uri

    from vae.export import load_model

    os.environ.setdefault(*QUIET)
    client = tracker.client
    training = client.get_run(run_id).data.tags.get(beta_runs.TRAINED_BY, run_id)  # a row: its model's run
    conditional = client.get_run(training).data.tags.get("vae.role") == beta_runs.ROLE
    beta = verdict.get("beta")
    row = row_run(tracker, training, beta) or training
    tags = {"z_dim": str(verdict["z_dim"]), "beta": "σ-VAE" if beta is None else f"{beta:g}",
            "rule": str(verdict.get("rule") or ""), "trial": str(verdict.get("trial")), "vae.run_id": training}
    for version in client.search_model_versions(f"name = '{study}'"):
        if version.tags.get("vae.run_id") == training and version.tags.get("beta") == tags["beta"]:
            if version.tags.get("rule") != tags["rule"]:
                client.set_model_version_tag(study, version.version, "rule", tags["rule"])
            return f"models:/{study}/{version.version}"
    with tempfile.TemporaryDirectory() as tmp:
        client.download_artifacts(training, CHECKPOINT, tmp)
        model = load_model(Path(tmp) / CHECKPOINT, beta=beta if conditional else None)
    wrapper = _reconstruction(model)
    # batch 2: a batch of 1 would be traced as a fixed size; random pixels: no data set to load here
    example = torch.rand(2, *model.shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        signature = infer_signature(example.numpy(), wrapper(example).numpy())
    run = client.get_run(row)
    # ours, not log_model's: it would put the model in the Default experiment. No '.' in its name allowed
    logged = client.create_logged_model(run.info.experiment_id, name=run.info.run_name.replace(".", "_"),
                                        source_run_id=row, params=run.data.params, tags=tags, model_type="vae")
    # log_model writes, and a version's models:/ source is resolved, where the global URI points
    with _use_tracking_uri(tracker.uri):
        try:  # run_id: the model is that run's output; pip_requirements given: no inference subprocess
            mlflow.pytorch.log_model(wrapper, model_id=logged.model_id, run_id=row, signature=signature,
                                     input_example=example.numpy(), serialization_format="pt2",
                                     pip_requirements=[f"torch=={torch.__version__.split('+')[0]}"])
        except Exception:
            client.finalize_logged_model(logged.model_id, LoggedModelStatus.FAILED)  # not left PENDING
            raise
        try:
            client.create_registered_model(study, description=f"The chosen model of the vae-balance study {study}.")
        except MlflowException as e:
            if e.error_code not in ("RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS"):
                raise
        version = client.create_model_version(study, f"models:/{logged.model_id}", run_id=row, tags=tags,
                                              description=tags["rule"] or None, model_id=logged.model_id)
    return f"models:/{study}/{version.version}"
