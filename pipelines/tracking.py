"""MLflow tracking for sweeps: one experiment per study, one parent run, one child run per trial.

The default store is `sqlite:///mlruns/mlflow.db` with artifacts under mlruns/artifacts (MLflow 3
no longer writes a plain mlruns/ file store); `--tracking-uri` or MLFLOW_TRACKING_URI points at a
tracking server instead. See the results with `vae ui` (same URI).

Per trial: every training setting as params; per-epoch metrics (`train/r_loss`, `test/kl`, ...)
in one batch per epoch; reconstruction and sample grids every K epochs; then the loss curves,
the checkpoint, metrics.json and the resolved config as artifacts.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path

from pipelines.database import (
    DATABASES,
    check_database,
    create_parent,
    create_sqlite,
    is_database,
    scheme,
)
from vae.errors import VAEError, first_line
from vae.redact import redact

DEFAULT_URI = "sqlite:///mlruns/mlflow.db"
# the runs table, not the GenAI view MLflow 3.17 opens in
EXPERIMENT_TAGS = {"mlflow.experimentKind": "custom_model_development"}
SCHEMES = (*DATABASES, "http", "https", "file", "databricks")  # what MLflow can track to


class TrackingError(VAEError):
    """The tracking store cannot be reached or used."""


def resolve_uri(uri: str | None = None) -> str:
    return uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_URI


def artifact_root(uri: str) -> Path:
    """Artifacts sit beside a SQLite store (mlruns/mlflow.db -> mlruns/artifacts), else in ./mlruns."""
    if uri.startswith("sqlite:///"):
        return Path(uri[len("sqlite:///"):]).parent / "artifacts"
    return Path("mlruns/artifacts")


def is_local(uri: str) -> bool:
    return is_database(uri)


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=2,
                             cwd=Path(__file__).parent)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


@contextmanager
def _quick_http():
    """Fail within seconds when a tracking server is down, instead of MLflow's minutes of retries."""
    saved = {k: os.environ.get(k) for k in ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_TIMEOUT")}
    os.environ.update({"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "5"})
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


class Tracker:
    def __init__(self, uri: str | None = None, create: bool = True):
        """create=False (read-only commands): a SQLite store must exist already; none is created."""
        import logging

        from mlflow import MlflowClient

        logging.getLogger("mlflow").setLevel(logging.WARNING)  # no "Creating initial tables" chatter

        self.uri = resolve_uri(uri)
        kind = scheme(self.uri) or "file"
        if kind not in SCHEMES:
            raise TrackingError(f"cannot use tracking store {redact(self.uri)}: unknown scheme {kind!r} "
                                f"(sqlite:///PATH, postgresql://USER@HOST/DB or http://HOST:PORT)")
        if is_database(self.uri):  # before MLflow creates a file or retries a dead server for minutes
            check_database(self.uri, "tracking store", TrackingError, create=create)
            if create:
                create_parent(self.uri)
        try:
            if create:
                create_sqlite(self.uri, lambda url: MlflowClient(tracking_uri=url).search_experiments(max_results=1))
            self.client = MlflowClient(tracking_uri=self.uri)
        except Exception as e:
            raise TrackingError(f"cannot use tracking store {redact(self.uri)}: {redact(first_line(e))[:300]}") from None

    def check(self) -> None:
        """One cheap request, so that a bad URI fails before any study or run is created."""
        with _quick_http():
            try:
                self.client.search_experiments(max_results=1)
            except Exception as e:
                raise TrackingError(f"cannot use tracking store {redact(self.uri)}: {redact(first_line(e))[:300]}") from None

    # --- the study: experiment and parent run --------------------------------------------
    def experiment(self, study: str) -> str:
        from mlflow.exceptions import MlflowException

        found = self.client.get_experiment_by_name(study)
        if found is not None:
            return found.experiment_id
        location = (artifact_root(self.uri) / study).resolve().as_uri() if is_local(self.uri) else None
        try:
            return self.client.create_experiment(study, artifact_location=location,
                                                 tags={**EXPERIMENT_TAGS, "vae.study": study})
        except MlflowException:  # created by another worker meanwhile
            return self.client.get_experiment_by_name(study).experiment_id

    def parent_run(self, experiment_id: str, study: str, spec: dict) -> str:
        runs = self.client.search_runs([experiment_id], "tags.`vae.role` = 'parent'", max_results=1,
                                       order_by=["attributes.start_time ASC"])
        if runs:
            run_id = runs[0].info.run_id
            self.client.update_run(run_id, status="RUNNING")
            return run_id
        run = self.client.create_run(experiment_id, run_name=f"{study}-sweep",
                                     tags={"vae.role": "parent", "vae.study": study,
                                           "mlflow.source.git.commit": git_commit() or "unknown"})
        self.client.log_dict(run.info.run_id, spec, "spec.json")
        return run.info.run_id

    def finish_parent(self, run_id: str, summary: dict, status: str = "FINISHED") -> None:
        """Counts of the study's trials as metrics; FINISHED when the study is complete, KILLED
        when interrupted, FAILED when configurations failed by errors."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self.client.log_batch(run_id, metrics=[Metric(f"trials/{k}", float(v), now, 0) for k, v in summary.items()])
        self.client.set_terminated(run_id, status)

    def running_trial_runs(self, study: str) -> list[tuple[str, int]]:
        """(run id, trial number) of the study's trial runs that MLflow still shows RUNNING."""
        exp = self.client.get_experiment_by_name(study)
        if exp is None:
            return []
        runs = self.client.search_runs([exp.experiment_id], "tags.`vae.role` = 'trial' and attributes.status = 'RUNNING'",
                                       max_results=1000)
        return [(r.info.run_id, int(r.data.tags["vae.trial"])) for r in runs if "vae.trial" in r.data.tags]

    # --- one trial: a child run ---------------------------------------------------------
    def start_trial(self, experiment_id: str, parent_id: str, study: str, number: int, config: dict,
                    device: str) -> str:
        from mlflow.entities import Param

        balance = "sigma" if config.get("loss") == "sigma-vae" else f"b{config['beta']:g}"
        name = f"z{config['z_dim']}-{balance}" + (f"-s{config['seed']}" if config["seed"] else "") + f"-t{number}"
        tags = {"mlflow.parentRunId": parent_id, "vae.role": "trial", "vae.study": study,
                "vae.trial": str(number), "vae.state": "RUNNING", "vae.device": device,
                "vae.host": socket.gethostname(), "mlflow.source.git.commit": git_commit() or "unknown"}
        run_id = self.client.create_run(experiment_id, run_name=name, tags=tags).info.run_id
        params = [Param(k, redact("None" if v is None else str(v))) for k, v in config.items()]
        self.client.log_batch(run_id, params=params)
        return run_id

    def log_epoch(self, run_id: str, metrics: dict, epoch: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [Metric(k, float(v), now, epoch) for k, v in metrics.items() if k != "epoch"]
        self.client.log_batch(run_id, metrics=batch)

    def log_images(self, run_id: str, model, x_test, epoch: int) -> None:
        from torchvision.transforms.functional import to_pil_image

        from vae.images import recon_grid, sample_grid

        self.client.log_image(run_id, to_pil_image(recon_grid(model, x_test)), key="recon", step=epoch)
        self.client.log_image(run_id, to_pil_image(sample_grid(model)), key="samples", step=epoch)

    def finish_trial(self, run_id: str, state: str, run_dir: Path | None = None, history: list | None = None,
                     reason: str | None = None) -> None:
        """state (tag vae.state): COMPLETE, PRUNED, DIVERGED, ERROR, INTERRUPTED or DIED. MLflow's
        status: FINISHED for results, KILLED for trials stopped from outside, FAILED otherwise."""
        if history is None and run_dir is not None and (run_dir / "metrics.json").exists():
            import json

            history = json.loads((run_dir / "metrics.json").read_text()).get("history")
        if history:
            import matplotlib.pyplot as plt

            from pipelines.plots import loss_curves

            fig = loss_curves(history, title=self.client.get_run(run_id).info.run_name)
            self.client.log_figure(run_id, fig, "loss_curves.png")
            plt.close(fig)
        if run_dir is not None and run_dir.exists():
            self.client.log_artifacts(run_id, str(run_dir))
        self.client.set_tag(run_id, "vae.state", state)
        if reason:
            self.client.set_tag(run_id, "vae.fail_reason", redact(reason)[:5000])
        status = {"COMPLETE": "FINISHED", "PRUNED": "FINISHED", "INTERRUPTED": "KILLED", "DIED": "KILLED"}.get(
            state, "FAILED")  # vae.state says why
        self.client.set_terminated(run_id, status)


def runs_url(tracker: Tracker, study: str | None, host: str = "127.0.0.1", port: int = 5000) -> str:
    """The UI page a user should land on: the study's runs table in the machine-learning view."""
    base = f"http://{host}:{port}"
    if study is None:
        return f"{base}/#/experiments?workflowType=machine_learning"
    found = tracker.client.get_experiment_by_name(study)
    if found is None:
        raise TrackingError(f"no experiment named {study!r} in {redact(tracker.uri)}; run `vae sweep` first")
    return f"{base}/#/experiments/{found.experiment_id}/runs?workflowType=machine_learning"
