"""MLflow tracking helpers and `vae ui` against a real (tiny) tracking store."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from servers import free_port

from pipelines.tracking.runs import Tracker, TrackingError, artifact_root
from pipelines.tracking.ui import runs_url

# its module-scoped fixtures are built once: `make test` keeps the module on one test process
pytestmark = pytest.mark.xdist_group("tracking")


def test_runs_url_opens_the_machine_learning_view(tmp_path):
    tracker = Tracker(f"sqlite:///{tmp_path}/mlflow.db")
    experiment_id = tracker.experiment("s")
    assert runs_url(tracker, "s") == (f"http://127.0.0.1:5000/#/experiments/{experiment_id}/runs"
                                      "?viewStateShareKey=vae-balance&workflowType=machine_learning")
    view = json.loads(tracker.client.get_experiment(experiment_id).tags["mlflow.sharedViewState.vae-balance"])
    assert view["searchFilter"].startswith("tags.`vae.role` = 'trial'") and "!= 'KILLED'" in view["searchFilter"] and "params.`z_dim`" in view["selectedColumns"]
    # z_dim and beta first: the column order is part of the view (else MLflow puts metrics before params)
    assert view["columnOrder"][:3] == ["tags.`vae.verdict`", "params.`z_dim`", "params.`beta`"] == view["selectedColumns"][:3]
    assert view["orderByKey"] == "tags.`vae.verdict`" and "tags.`vae.verdict`" in view["columnOrder"]  # chosen first
    assert tracker.client.get_experiment(experiment_id).tags["mlflow.experimentKind"] == "custom_model_development"
    with pytest.raises(TrackingError, match=r"no study named 'nope' .*\(studies: s\)"):
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
        time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGTERM)  # twice, as `timeout make ui` does (the group, then make)
        proc.wait(timeout=30)
    assert proc.returncode == 143  # "terminated (SIGTERM)", not a traceback from the second one


def test_a_second_sigterm_during_the_clean_up_is_ignored(monkeypatch):
    from pipelines.common import signals
    from pipelines.common.signals import CTRL_C

    monkeypatch.setattr(signals, "TERMINATED", __import__("threading").Event())
    try:
        with pytest.raises(signals.Terminated):
            signals.on_sigterm()
        assert signals.on_sigterm() is None and CTRL_C.is_set()  # the clean-up of the first goes on
    finally:
        CTRL_C.clear()


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """A finished 2-trial sweep (one seed) in a fresh store: (tmp, storage, tracking uri)."""
    from pipelines.common.spec_file import load_spec
    from pipelines.usecases.sweep import sweep

    tmp = tmp_path_factory.mktemp("swept")
    spec = tmp / "s.yaml"
    spec.write_text(f"study: s\ndataset: digits\ndata_dir: {tmp / 'data'}\nlimit: 128\nwidth: 8\nepochs: 2\n"
                    "batch_size: 32\niw_samples: 2\ndevice: cpu\nsearch:\n  z_dim: [2]\n  beta: [0.1, 0.01]\n"
                    "  seed: [3]\nmetric: val/elbo_bpd\n")
    storage, tracking = f"sqlite:///{tmp}/optuna.db", f"sqlite:///{tmp}/mlflow.db"
    assert sweep(load_spec(spec), storage, tracking, progress=True).summary.complete == 2  # as `vae sweep`
    return tmp, storage, tracking


def test_trial_params_are_the_settings_that_define_it_as_applied(swept):
    from mlflow import MlflowClient

    tmp, _, tracking = swept
    client = MlflowClient(tracking)
    exp = client.get_experiment_by_name("s")
    trials = client.search_runs([exp.experiment_id], "tags.`vae.role` = 'trial'")
    assert len(trials) == 2
    for run in trials:
        params = run.data.params
        assert not {"out", "progress", "resume", "data_dir"} & set(params), params
        assert params["limit"] == "128"  # None only for `limit` (all images): threads and compile are resolved
        assert params["device"] == "cpu" and params["amp"] == "False" and params["compile"] in ("True", "False")
        assert int(params["threads"]) >= 1 and params["seed"] == "3" and params["z_dim"] == "2"
        # only what applies, with the values used: no conditional settings on an ordinary run, the
        # evaluation subset capped at the 128 test images there are, FID off (resolved) for 8x8 digits
        assert not {"betas", "beta_range", "film_hidden"} & set(params), params
        assert params["eval_images"] == "128" and params["iw_images"] == "128" and params["fid_samples"] == "0"
        assert "None" not in {v for k, v in params.items() if k != "limit"}, params
        folder = tmp / run.info.run_id
        folder.mkdir()
        config = json.loads(Path(client.download_artifacts(run.info.run_id, "config.json", str(folder))).read_text())
        assert "out" not in config and "progress" not in config  # no path to the deleted run folder


def test_parent_carries_the_spec_and_the_verdict(swept):
    import optuna
    from mlflow import MlflowClient

    _, storage, tracking = swept
    client = MlflowClient(tracking)
    exp = client.get_experiment_by_name("s")
    parent = client.search_runs([exp.experiment_id], "tags.`vae.role` = 'parent'")[0]
    assert parent.data.params["search.beta"] == "[0.1, 0.01]" and parent.data.params["metric"] == "val/elbo_bpd"
    study = optuna.load_study(study_name="s", storage=storage)
    v = study.user_attrs["verdict"]  # the sweep's verdict: the same on the parent run
    tags = parent.data.tags
    # 2 epochs on 115 images: both models collapse (AU 0), so the verdict names none and says so;
    # tests/test_report.py checks the best.* tags of a verdict that names a model
    assert v["trial"] is None and v["excluded"] == ["z-dim 2, beta 0.1", "z-dim 2, beta 0.01"]
    assert "best.trial" not in tags and "no model can be recommended" in tags["mlflow.note.content"]
    (swept[0] / "parent").mkdir(exist_ok=True)
    verdict_json = json.loads(Path(client.download_artifacts(parent.info.run_id, "verdict.json",
                                                             str(swept[0] / "parent"))).read_text())
    assert verdict_json == v
    assert study.metric_names == ["val/elbo_bpd"]  # optuna-dashboard names the objective
    # a constant of the search is a fixed attribute, not a parameter with importance 0
    assert all("seed" not in t.params and t.user_attrs["seed"] == 3 for t in study.trials)
    assert not {"z_dim", "beta", "seed", "out", "progress"} & set(study.user_attrs["spec"]["train"])


def chromium():
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def dump_dom(url: str, profile) -> str:
    flags = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={profile}", "--virtual-time-budget=20000", "--window-size=1366,900", "--dump-dom", url]
    return subprocess.run(flags, capture_output=True, text=True, timeout=180).stdout


@pytest.mark.skipif(chromium() is None, reason="needs Chromium (apt-get install chromium; .ci/run installs it)")
def test_ui_shows_the_trials_and_a_trial_page_its_params(swept):
    from mlflow import MlflowClient

    tmp, _, tracking = swept
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "pipelines.cli", "ui", "--study", "s", "--tracking-uri", tracking,
                             "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        first = proc.stdout.readline()  # printed once the server answers
        url = first.split(": ", 1)[1].split()[0]
        hint = proc.stdout.readline()  # the next line says what the columns are and where the images are
        assert hint.startswith("columns: the verdict, z_dim, beta") and "recon.png" in hint, hint
        assert url.startswith(f"http://127.0.0.1:{port}/#/experiments/") and "viewStateShareKey=" in url, first
        client = MlflowClient(tracking)
        exp = client.get_experiment_by_name("s")
        trials = client.search_runs([exp.experiment_id], "tags.`vae.role` = 'trial'")
        # this tiny study's models all collapse (no verdict): tag one as `vae report` tags the chosen run
        client.set_tag(trials[-1].info.run_id, "vae.verdict", "chosen")
        runs = dump_dom(url, tmp / "p1")
        for run in trials:  # the trials are rows, not hidden under a collapsed parent
            assert run.info.run_name in runs
        assert "s-sweep" not in runs
        # on a laptop's 1,366 px window the verdict and the deciding numbers are in view (the grid leaves
        # out the columns out of view)
        assert "vae.verdict" in runs and ">chosen<" in runs
        assert "val/elbo_bpd" in runs and "val/r_loss" in runs
        run = trials[0]
        page = dump_dom(f"http://127.0.0.1:{port}/#/experiments/{exp.experiment_id}/runs/{run.info.run_id}"
                        "?workflowType=machine_learning", tmp / "p2")
        text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page))
        assert f"Parameters ({len(run.data.params)})" in text
        for key in ("z_dim", "beta", "seed", "device"):
            assert f" {key} {run.data.params[key]} " in text, key
        assert "Final test-set values" in text  # the run's description: the diagnostics as a table
        assert proc.poll() is None
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    assert "GET /" not in proc.stdout.read()  # no access log


def test_applied_settings_of_a_conditional_run_and_one_without_diagnostics():
    import torch

    from vae.config import TrainConfig
    from vae.data import Data
    from vae.runtime import applied

    data = Data("x", torch.zeros(40, 3, 32, 32, dtype=torch.uint8), torch.zeros(30, 3, 32, 32, dtype=torch.uint8))
    cond = applied(TrainConfig(betas=[0.1, 0.01], device="cpu"), data)
    assert cond["betas"] == [0.1, 0.01] and cond["beta_range"] == [0.001, 1.0] and cond["film_hidden"] == 512
    assert "beta" not in cond and cond["fid_samples"] == 500 and cond["eval_images"] == 30 and cond["iw_images"] == 30
    bare = applied(TrainConfig(iw_samples=0, fid_samples=0, device="cpu"), data)
    assert not {"iw_images", "betas", "fid_recon"} & set(bare) and bare["iw_samples"] == 0 and bare["beta"] == 0.01
    assert bare["eval_images"] == 30  # the per-epoch test curve (test_subset/) still reads the evaluation subset
