"""Many hosts for real: two working folders (two "hosts") that share nothing but a PostgreSQL
server and an MLflow server. A trial whose host dies resumes on the other from the checkpoint
its first host uploaded; a shared tracking database keeps its artifacts in one named place.

Servers listen on 127.0.0.1 only and are stopped at the end. Skipped only where PostgreSQL's
server programs are missing (.ci/run installs them).
"""

import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from servers import mlflow_server, pg_bin, postgres

# its module-scoped fixtures are built once: `make test` keeps the module on one test process
pytestmark = [pytest.mark.xdist_group("hosts"),
              pytest.mark.skipif(pg_bin("initdb") is None, reason="needs PostgreSQL's initdb/pg_ctl")]

SPEC = """study: {study}
dataset: digits
data_dir: data
limit: 120
width: 4
epochs: {epochs}
batch_size: 32
iw_samples: 2
eval_images: 20
device: cpu
search:
  z_dim: [2]
  beta: {betas}
heartbeat_interval: 1
grace_period: 5
images_every: 10
{extra}"""


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("servers")
    with postgres(tmp, databases=("optuna", "mlflow", "tracking")) as dbs, mlflow_server(dbs["mlflow"], tmp) as url:
        yield dbs, url


def host(tmp_path, name: str, study: str, epochs: int = 2, betas="[0.1]", extra="") -> Path:
    """A working folder of its own: spec, data, run folders and ./mlruns are all local to it."""
    folder = tmp_path / name
    folder.mkdir(exist_ok=True)
    (folder / "spec.yaml").write_text(SPEC.format(study=study, epochs=epochs, betas=betas, extra=extra))
    return folder


def sweep(folder: Path, *args, fault: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "VAE_RUNS_DIR": str(folder / "runs"),
           "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[1]), os.environ.get("PYTHONPATH", "")])}
    env.pop("VAE_FAULT", None)
    env.pop("VAE_ARTIFACT_LOCATION", None)
    if fault:
        env["VAE_FAULT"] = fault
    return subprocess.run([sys.executable, "-m", "pipelines.cli", "sweep", "spec.yaml", "--no-progress",
                           "--threads", "1", *map(str, args)], cwd=folder, env=env, capture_output=True, text=True,
                          timeout=600)


def test_a_shared_tracking_database_needs_one_artifact_location(servers, tmp_path):
    import optuna
    from mlflow import MlflowClient

    dbs, _ = servers
    a = host(tmp_path, "a", "located")
    stores = ["--storage", dbs["optuna"], "--tracking-uri", dbs["tracking"]]
    refused = sweep(a, *stores)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1 and "keeps no artifacts" in lines[0] and "--artifact-location" in lines[0], lines
    assert not (a / "mlruns").exists() and not (a / "runs").exists()  # nothing written, here or in the stores
    assert "located" not in [s.study_name for s in optuna.get_all_study_summaries(dbs["optuna"])]
    assert MlflowClient(dbs["tracking"]).get_experiment_by_name("located") is None

    shared = tmp_path / "shared"
    done = sweep(a, *stores, "--artifact-location", shared)
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    client = MlflowClient(dbs["tracking"])
    exp = client.get_experiment_by_name("located")
    assert exp.artifact_location == (shared / "located").as_uri()
    run = client.search_runs([exp.experiment_id], "tags.`vae.role` = 'trial'")[0]
    assert (Path(run.info.artifact_uri.removeprefix("file://")) / "checkpoint.pt").is_file()
    assert not (a / "mlruns").exists()  # no artifact left on this worker's disk


def test_a_trial_whose_host_died_resumes_on_another_host(servers, tmp_path):
    """Host a's worker is SIGKILLed right after it uploaded epoch 2 of its first trial; host b,
    with an empty working folder, resumes that trial at epoch 3 from the uploaded checkpoint."""
    import optuna
    from mlflow import MlflowClient

    dbs, url = servers
    extra = "checkpoint_every: 2\nkeep_checkpoints: 1\n"
    a, b = (host(tmp_path, name, "moved", epochs=4, betas="[0.1, 0.01]", extra=extra) for name in "ab")
    stores = ["--storage", dbs["optuna"], "--tracking-uri", url]
    killed = sweep(a, *stores, fault="uploaded")
    assert killed.returncode == -signal.SIGKILL, killed.stdout + killed.stderr[-3000:]
    client = MlflowClient(url)
    exp = client.get_experiment_by_name("moved")
    dead = client.search_runs([exp.experiment_id], "tags.`vae.role` = 'trial'")
    assert [r.info.status for r in dead] == ["RUNNING"]
    dead = dead[0]
    assert [x.path for x in client.list_artifacts(dead.info.run_id, "checkpoints")] == ["checkpoints/epoch-0002.pt"]

    done = sweep(b, *stores)
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    trials = optuna.load_study(study_name="moved", storage=dbs["optuna"]).get_trials()
    complete = Counter(t.params["beta"] for t in trials if t.state.name == "COMPLETE")
    assert complete == Counter({0.1: 1, 0.01: 1})  # every point complete exactly once
    assert [t.state.name for t in trials if t.state.name != "COMPLETE"] == ["FAIL"]

    runs = {r.info.run_id: r for r in client.search_runs([exp.experiment_id], "tags.`vae.role` = 'trial'")}
    dead = runs.pop(dead.info.run_id)
    assert (dead.info.status, dead.data.tags["vae.state"]) == ("KILLED", "DIED")
    assert {r.info.status for r in runs.values()} == {"FINISHED"} and len(runs) == 2
    retry = next(r for r in runs.values() if "vae.resumed_from_epoch" in r.data.tags)
    # resumed at epoch 3 from what host a uploaded: b's working folder had no checkpoint of its own
    assert retry.data.tags["vae.resumed_from_epoch"] == "2"
    assert retry.data.tags["vae.checkpoint_from"] == f"run {dead.info.run_id}, epoch 2"
    assert retry.data.params["beta"] == dead.data.params["beta"]
    # no epoch trained twice: a trained (and logged) 1-2, b's retry 3-4 (1-2 replayed from the checkpoint's history)
    assert [m.step for m in client.get_metric_history(dead.info.run_id, "train/loss")] == [1, 2]
    # the last epoch twice: before the end-of-training measurements, and again measured (a retry keeps them)
    assert [m.step for m in client.get_metric_history(retry.info.run_id, "time/checkpoint_upload_s")] == [4, 4]
    assert [m.step for m in client.get_metric_history(retry.info.run_id, "train/loss")] == [1, 2, 3, 4]
    # retention: a finished trial's model is its checkpoint.pt; the per-epoch uploads only served retries
    for r in runs.values():
        assert client.list_artifacts(r.info.run_id, "checkpoints") == []
        assert "checkpoint.pt" in {x.path for x in client.list_artifacts(r.info.run_id)}
    parent = client.search_runs([exp.experiment_id], "tags.`vae.role` = 'parent'")[0]
    assert parent.info.status == "FINISHED"
    assert not list((b / "runs").glob("moved/*"))  # b's run folders gone once logged
