"""`vae ui`: the MLflow UI on a tracking store, lean and quiet, announced once it answers.

MLflow 3's `mlflow ui` starts 4 uvicorn workers and a job-runner (huey) pool, about 14 processes
and 2 GB, and logs every request. One local user needs one worker and no job execution (used for
GenAI judges and trace roll-ups); telemetry is off; access logs are off and the server's start-up
chatter goes to a temporary log file, named if the server fails to start. What remains:
the `mlflow` launcher process and one uvicorn worker (about 0.5 GB together).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from pipelines.common.signals import TERMINATED, on_sigterm
from pipelines.tracking.runs import Tracker, TrackingError
from vae.redact import redact

START_TIMEOUT_S = 180

# MLflow's "shared view" of the runs page (an experiment tag the UI reads for ?viewStateShareKey=):
# the trials as rows, without their parent, with these columns (a UI column id is `type.`key``)
VIEW_KEY = "vae-balance"
# the verdict first: MLflow 3.17 opens its assistant panel beside the table, and in a window of 1,100–1,400 px a
# column after the parameters was scrolled out of sight (and out of the page: the grid renders
# only the columns in view)
# the deciding numbers (the objective and what the verdict compares, on the validation split) right after z_dim and beta, so
# that a 1,366 px window with MLflow's assistant panel open still shows them
VIEW_COLUMNS = [("tags", "vae.verdict"), ("params", "z_dim"), ("params", "beta"),
                ("metrics", "val/elbo_bpd"), ("metrics", "val/r_loss"), ("metrics", "val/fid"),
                ("params", "seed"), ("params", "loss"), ("metrics", "diag/active_units"), ("metrics", "diag/nll_bpd"),
                ("metrics", "test/r_loss"), ("metrics", "test/kld_loss"), ("metrics", "diag/fid"),
                ("params", "mode"), ("tags", "vae.state")]
HINT = (f"columns: the verdict, {', '.join(key for _, key in VIEW_COLUMNS[1:6])} first (the study's objective "
        "in bits per dim, then what the verdict compares); MLflow's assistant panel takes a quarter of a laptop window: close it "
        "(× at its top) to see more columns; a run's images: its page, Artifacts, recon.png, samples.png and images/")


def dashboard_view() -> dict:
    """The runs page as vae-balance shows a study: trials only (no collapsed parent row, no killed
    attempts), the verdict's run first (tag `vae.verdict` = chosen, pipelines/usecases/publish.py; MLflow
    sorts runs without the tag after it), the balance table's key columns."""
    columns = [f"{kind}.`{key}`" for kind, key in VIEW_COLUMNS]
    # killed attempts (their configuration ran again) stay out of the way; `vae report` lists them
    # columnOrder (MLflow >= 3.15's saved views): without it the table puts its Metrics group before
    # Parameters, whatever selectedColumns says, and z_dim and beta would come after the metrics.
    # Digits cannot be set: the table shows a metric as logged (no per-column number format).
    return {"searchFilter": "tags.`vae.role` = 'trial' and attributes.status != 'KILLED'",
            "orderByKey": "tags.`vae.verdict`", "orderByAsc": False, "selectedColumns": columns,
            "columnOrder": columns}


def runs_url(tracker: Tracker, study: str | None, host: str = "127.0.0.1", port: int = 5000) -> str:
    """The UI page a user should land on: the study's trials in the machine-learning view, with the
    columns of `dashboard_view` (stored on the experiment as MLflow's shared view state)."""
    base = f"http://{host}:{port}"
    if study is None:
        return f"{base}/#/experiments?workflowType=machine_learning"
    found = tracker.client.get_experiment_by_name(study)
    if found is None:  # a typo, or `make ui` before its sweep: as `vae report` says it
        names = ", ".join(tracker.study_names()) or "none yet; run `vae sweep` first"
        raise TrackingError(f"no study named {study!r} in {redact(tracker.uri)} (studies: {names})")
    view = dashboard_view()
    tracker.client.set_experiment_tag(found.experiment_id, f"mlflow.sharedViewState.{VIEW_KEY}", json.dumps(view))
    return (f"{base}/#/experiments/{found.experiment_id}/runs?viewStateShareKey={VIEW_KEY}"
            f"&workflowType=machine_learning")


def server_command(uri: str, host: str, port: int) -> list[str]:
    return [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", uri, "--host", host,
            "--port", str(port), "--workers", "1", "--uvicorn-opts", "--no-access-log --log-level warning"]


def serve(uri: str, host: str, port: int, on_ready) -> int:
    """Run the server until it exits or Ctrl-C; call on_ready() once /health answers."""
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", "MLFLOW_DISABLE_TELEMETRY": "true",
           "DO_NOT_TRACK": "true", "PYTHONWARNINGS": "ignore"}
    log = tempfile.NamedTemporaryFile("w+", prefix="vae-ui-", suffix=".log", delete=False)
    # its own process group: stopping `vae ui` (Ctrl-C or SIGTERM) stops the server and its worker
    proc = subprocess.Popen(server_command(uri, host, port), stdout=log, stderr=subprocess.STDOUT, env=env,
                            start_new_session=True)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, on_sigterm)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not _answers(host, port):
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = Path(log.name).read_text().strip().splitlines()[-1:] or ["no output"]
                proc.kill()
                raise TrackingError(f"the MLflow UI did not start on {host}:{port}: {tail[0][:300]} "
                                    f"(log: {log.name})")
            time.sleep(0.5)
        on_ready()
        code = proc.wait()
    except KeyboardInterrupt:
        if TERMINATED.is_set():
            raise  # the server is stopped below; the CLI says "terminated (SIGTERM)"
        code = 0
    finally:
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    Path(log.name).unlink(missing_ok=True)
    return code


def _answers(host: str, port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://{host}:{port}/health", timeout=2) as r:
            return r.status == 200
    except OSError:
        return False
