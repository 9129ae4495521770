"""MLflow tracking helpers and `vae ui` against a real (tiny) tracking store."""

import os
import signal
import subprocess
import sys
import time
import urllib.request

import pytest
from servers import free_port

from pipelines.tracking import Tracker, TrackingError, artifact_root, runs_url


def test_runs_url_opens_the_machine_learning_view(tmp_path):
    tracker = Tracker(f"sqlite:///{tmp_path}/mlflow.db")
    experiment_id = tracker.experiment("s")
    assert runs_url(tracker, "s") == f"http://127.0.0.1:5000/#/experiments/{experiment_id}/runs?workflowType=machine_learning"
    assert tracker.client.get_experiment(experiment_id).tags["mlflow.experimentKind"] == "custom_model_development"
    with pytest.raises(TrackingError, match="no experiment named 'nope'"):
        runs_url(tracker, "nope")
    assert artifact_root(f"sqlite:///{tmp_path}/mlflow.db") == tmp_path / "artifacts"


def test_ui_serves_the_store_on_loopback(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    Tracker(uri).experiment("s")
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "pipelines.cli", "ui", "--study", "s", "--tracking-uri", uri,
                             "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            start_new_session=True)
    try:
        first = proc.stdout.readline()
        assert f"http://127.0.0.1:{port}/#/experiments/" in first and "workflowType=machine_learning" in first
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                    assert r.status == 200
                    break
            except OSError:
                assert time.monotonic() < deadline and proc.poll() is None, "the UI did not start"
                time.sleep(0.5)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
