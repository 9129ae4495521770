"""MLflow tracking for sweeps: one experiment per study, one parent run, one child run per trial.

The default store is `sqlite:///mlruns/mlflow.db` with artifacts under mlruns/artifacts (MLflow 3
no longer writes a plain mlruns/ file store); `--tracking-uri` or MLFLOW_TRACKING_URI points at a
tracking server instead (its proxied artifact store keeps the artifacts), and a database other than
SQLite needs `--artifact-location` (pipelines/tracking/artifacts.py). See the results with `vae ui` (same URI).

Per trial: the settings that define it as params, as applied (vae.runtime.applied: the device
picked, compile and threads as used, amp only on CUDA; no run folder, resume or progress flags);
per-epoch metrics (`train/r_loss`, `test/kl`, ...)
in one batch per epoch; reconstruction and sample grids every K epochs; then the loss curves,
the checkpoint, metrics.json and the resolved config as artifacts.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from pipelines.common.locks import create_sqlite
from pipelines.common.stores import (
    DATABASES,
    DEFAULTS,
    check_database,
    create_parent,
    is_database,
    scheme,
)
from pipelines.tracking import beta_runs, checkpoints
from pipelines.tracking.queries import Queries
from vae.config import run_name
from vae.errors import VAEError, first_line
from vae.redact import redact

DEFAULT_URI = DEFAULTS["mlflow"]
# the runs table, not the GenAI view MLflow 3.17 opens in
EXPERIMENT_TAGS = {"mlflow.experimentKind": "custom_model_development"}
SCHEMES = (*DATABASES, "http", "https", "file", "databricks")  # what MLflow can track to
# end-of-trial values the run's description shows as a table (label, metric, format)
SUMMARY = [("R-loss", "test/r_loss", ".4g"), ("KLD-loss", "test/kld_loss", ".4g"), ("AU", "diag/active_units", ".0f"),
           ("NLL (bits/dim)", "diag/nll_bpd", ".4f"), ("KL (nats)", "test/kl", ".4g"),
           ("−ELBO (bits/dim)", "diag/elbo_bpd", ".4f"), ("MI (nats)", "diag/mi_nats", ".3f"),
           ("Rate − MI (nats)", "diag/rate_minus_mi", ".3f"), ("σ MLE", "diag/sigma_mle", ".4g"),
           ("σ implied", "diag/sigma_implied", ".4g"), ("FID", "diag/fid", ".2f")]


class TrackingError(VAEError):
    """The tracking store cannot be reached or used."""


def resolve_uri(uri: str | None = None) -> str:
    return uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_URI


def artifact_root(uri: str) -> Path:
    """Artifacts sit beside a SQLite store (mlruns/mlflow.db -> mlruns/artifacts), else in ./mlruns."""
    if uri.startswith("sqlite:///"):
        return Path(uri[len("sqlite:///"):]).parent / "artifacts"
    return Path("mlruns/artifacts")


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


class Tracker(Queries):
    def __init__(self, uri: str | None = None, create: bool = True, artifacts: str | None = None):
        """create=False (read-only commands): a SQLite store must exist already; none is created.
        artifacts: where a new study's artifacts go (pipelines/tracking/artifacts.py; env VAE_ARTIFACT_LOCATION)."""
        import logging
        import os

        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # no download bars between our lines

        from mlflow import MlflowClient

        from pipelines.tracking.artifacts import resolve_location

        logging.getLogger("mlflow").setLevel(logging.WARNING)  # no "Creating initial tables" chatter
        # MLflow logs a database error it catches with the whole traceback before raising it again (seen when a
        # SIGTERM lands while two workers write to one SQLite file: "database is locked"); the error itself
        # still reaches our handlers, which say it in one line
        logging.getLogger("mlflow.store.db.utils").setLevel(logging.CRITICAL)

        self._beta_runs: dict[str, dict[float, str]] = {}  # training run id -> {beta: run id}
        self.uri = resolve_uri(uri)
        self.artifacts = resolve_location(artifacts)
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
    def check_experiment(self, study: str) -> None:
        """An existing study's MLflow experiment keeps its artifacts where it was created: refuse (one
        line, before anything is written) a location MLflow cannot use there (a study an earlier
        version created with a bad --artifact-location; a client package since uninstalled)."""
        from pipelines.tracking.artifacts import check_usable

        found = self.client.get_experiment_by_name(study)
        if found is not None and found.artifact_location and "://" in found.artifact_location:
            try:
                check_usable(found.artifact_location, TrackingError, f"study {study!r} keeps its artifacts at")
            except TrackingError as e:
                raise TrackingError(f"{e}; fix that, or run it as a new study (--set study=NEW_NAME)") from None

    def experiment(self, study: str) -> str:
        from mlflow.exceptions import MlflowException

        from pipelines.tracking.artifacts import experiment_location

        location = experiment_location(self.uri, self.artifacts, study, artifact_root(self.uri))
        found = self.client.get_experiment_by_name(study)
        if found is not None:
            if self.artifacts is not None and found.artifact_location != location:
                print(f"note: study {study}'s artifacts stay at {redact(found.artifact_location)}, where its MLflow "
                      f"experiment was created; --artifact-location applies to new studies", file=sys.stderr)
            return found.experiment_id
        try:
            return self.client.create_experiment(study, artifact_location=location,
                                                 tags={**EXPERIMENT_TAGS, "vae.study": study})
        except MlflowException:  # created by another worker meanwhile
            return self.client.get_experiment_by_name(study).experiment_id

    def parent_run(self, experiment_id: str, study: str, spec: dict) -> str:
        found = self.parent(experiment_id)
        if found is not None:
            run_id = found.info.run_id
            self.client.update_run(run_id, status="RUNNING")
            return run_id
        run = self.client.create_run(experiment_id, run_name=f"{study}-sweep",
                                     tags={"vae.role": "parent", "vae.study": study,
                                           "mlflow.source.git.commit": git_commit() or "unknown"})
        self.client.log_dict(run.info.run_id, spec, "spec.json")
        self.log_spec(run.info.run_id, spec)
        return run.info.run_id

    def log_spec(self, run_id: str, spec: dict) -> None:
        """The spec as the parent run's params: `search.z_dim`, `sampler`, `metric`, training settings by name."""
        from mlflow.entities import Param

        flat = {f"search.{k}": v for k, v in spec.get("search", {}).items()}
        flat |= {k: v for k, v in spec.items() if k not in ("search", "train")}
        flat |= {k: v for k, v in spec.get("train", {}).items() if k != "data_dir"}
        self.client.log_batch(run_id, params=[Param(k, str(v)) for k, v in flat.items() if v is not None])

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
        runs = self.client.search_runs([exp.experiment_id], "attributes.status = 'RUNNING'", max_results=1000)
        # a conditional trial's run is its training run; its beta runs end with it (pipelines/tracking/beta_runs.py)
        return [(r.info.run_id, int(r.data.tags["vae.trial"])) for r in runs if "vae.trial" in r.data.tags
                and r.data.tags.get("vae.role") in ("trial", beta_runs.ROLE) and beta_runs.TRAINED_BY not in r.data.tags]

    def beta_runs(self, run_id: str) -> dict[float, str]:
        """{beta: run id} of a conditional trial's per-beta runs; {} for an ordinary trial."""
        if run_id not in self._beta_runs:
            self._beta_runs[run_id] = beta_runs.runs_of(self.client, run_id)
        return self._beta_runs[run_id]

    # --- one trial: a child run ---------------------------------------------------------
    def start_trial(self, experiment_id: str, parent_id: str, study: str, number: int, config: dict,
                    device: str, training: str) -> str:
        """A child run for trial `number`; `config`: the settings as applied (vae.runtime.applied);
        `training`: how the model trains (TrainConfig.training)."""
        from mlflow.entities import Param

        conditional = training == "conditional"
        name = run_name(config["z_dim"], training, config.get("beta"), config["seed"], number)
        tags = {"mlflow.parentRunId": parent_id, "vae.role": "trial", "vae.study": study,
                "vae.trial": str(number), "vae.state": "RUNNING", "vae.device": device,
                "vae.host": socket.gethostname(), "mlflow.source.git.commit": git_commit() or "unknown"}
        if os.environ.get("SLURM_JOB_ID"):  # which scheduler job ran it: `scancel` takes this name
            array = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
            tags["vae.slurm_job"] = "_".join(array) if all(array) else os.environ["SLURM_JOB_ID"]
        run_id = self.client.create_run(experiment_id, run_name=name,
                                        tags={**tags, "vae.role": beta_runs.ROLE} if conditional else tags).info.run_id
        self.client.log_batch(run_id, params=[Param(k, redact(str(v))) for k, v in trial_params(config).items()])
        if conditional:  # one row per beta beside the ordinary trials
            self._beta_runs[run_id] = beta_runs.create(self.client, experiment_id, run_id, tags,
                                                       trial_params(config), number)
            self.client.set_tag(run_id, "mlflow.note.content",
                                f"One β-conditional model (YOTO) for β ∈ {config['betas']}, trained on β "
                                "log-uniform over its range; each β's results are the runs "
                                f"{', '.join(beta_runs.row_name(config, number, b) for b in config['betas'])}.\n")
        return run_id

    def log_epoch(self, run_id: str, metrics: dict, epoch: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        runs = self.beta_runs(run_id)
        if runs:  # a conditional trial: each beta's metrics to its own run, the rest to the training run
            metrics, per = beta_runs.per_beta(metrics, runs)
            for beta, values in per.items():
                self.log_epoch(runs[beta], values, epoch)
        batch = [Metric(k, float(v), now, epoch) for k, v in metrics.items() if k != "epoch"]
        self.client.log_batch(run_id, metrics=batch)
        if any(k.startswith("diag/") for k in metrics):  # the last epoch: diagnostics readable at a glance
            self.log_summary(run_id, metrics, epoch)

    def log_summary(self, run_id: str, final: dict, epoch: int) -> None:
        """The end-of-training values as the run's description (a table on its Overview page, where
        a one-point chart says little) and as `summary.json`; "posterior collapse" when it collapsed."""
        from vae.collapse import COLLAPSE_KL_NATS, collapsed

        rows = [(label, format(final[m], fmt)) for label, m, fmt in SUMMARY if final.get(m) is not None]
        lines = [f"**Final test-set values** (epoch {epoch}, per image)",
                 "", "| | |", "|---|---|", *[f"| {label} | {value} |" for label, value in rows]]
        if collapsed(final.get("diag/active_units"), final.get("test/kl")):
            lines += ["", f"**Posterior collapse**: AU = 0 or KL < {COLLAPSE_KL_NATS} nats; the decoder ignores z."]
        self.client.set_tag(run_id, "mlflow.note.content", "\n".join(lines) + "\n")
        self.client.log_text(run_id, json.dumps({"epoch": epoch, **final}, indent=2) + "\n", "summary.json")

    def log_first_images(self, run_id: str, config, x_test) -> None:
        """Grids of the untrained model at step 0, where the UI's image slider starts."""
        import torch

        from vae.build import build_model

        torch.manual_seed(config.seed)  # the initial weights `vae.train.train` starts from
        self.log_images(run_id, build_model(config, tuple(x_test.shape[1:])), x_test, 0)

    def log_images(self, run_id: str, model, x_test, epoch: int) -> None:
        from torchvision.transforms.functional import to_pil_image

        from vae.images import recon_grid, sample_grid

        runs = self.beta_runs(run_id)
        if runs:  # a conditional model: its grids at each beta, in that beta's run
            for beta, beta_run in runs.items():
                self.log_images(beta_run, model.at(beta), x_test, epoch)
            return
        self.client.log_image(run_id, to_pil_image(recon_grid(model, x_test)), key="recon", step=epoch)
        self.client.log_image(run_id, to_pil_image(sample_grid(model)), key="samples", step=epoch)

    def finish_trial(self, run_id: str, state: str, run_dir: Path | None = None, history: list | None = None,
                     reason: str | None = None) -> None:
        """state (tag vae.state): COMPLETE, PRUNED, DIVERGED, ERROR, INTERRUPTED or DIED. MLflow's
        status: FINISHED for results, KILLED for trials stopped from outside, FAILED otherwise."""
        if history is None and run_dir is not None and (run_dir / "metrics.json").exists():
            history = json.loads((run_dir / "metrics.json").read_text()).get("history")
        runs = self.beta_runs(run_id)
        split = [beta_runs.per_beta(h, runs)[1] for h in history or []] if runs else []  # once per epoch
        for beta, beta_run in runs.items():  # a conditional trial's rows end as its training run does
            self.finish_trial(beta_run, state, beta_runs.folder(run_dir, beta) if run_dir else None,
                              [per[beta] for per in split], reason)
        if history:
            import matplotlib.pyplot as plt

            from pipelines.tracking.figures import loss_curves

            fig = loss_curves(history, title=self.client.get_run(run_id).info.run_name)
            self.client.log_figure(run_id, fig, "loss_curves.png")
            plt.close(fig)
        if run_dir is not None and run_dir.exists():
            self.client.log_artifacts(run_id, str(run_dir))
            if state == "COMPLETE" and (run_dir / "checkpoint.pt").exists():  # the model is logged: no retry needs them
                checkpoints.discard(self, run_id)
        self.client.set_tag(run_id, "vae.state", state)
        if reason:
            self.client.set_tag(run_id, "vae.fail_reason", redact(reason)[:5000])
        status = {"COMPLETE": "FINISHED", "PRUNED": "FINISHED", "INTERRUPTED": "KILLED", "DIED": "KILLED"}.get(
            state, "FAILED")  # vae.state says why
        self.client.set_terminated(run_id, status)


def trial_params(config: dict) -> dict:
    """A trial's MLflow params: the settings of the roles vae/config.py logs (LOGGED), as applied.
    `limit` None means every image."""
    from vae.config import logged

    return logged(config)
