"""SLURM as the launcher: deploy/slurm/sweep.sbatch as a job array on a one-node cluster started
here from Debian's packages (`apt-get install -y slurm-wlm munge`), against a real PostgreSQL
study and MLflow server. One task is scancelled in the middle of a trial; another task resumes
that trial from the checkpoint it uploaded, and the study completes with every point exactly once.
"""

import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from servers import mlflow_server, pg_bin, postgres
from slurm import available, slurm_cluster

ROOT = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(pg_bin("initdb") is None, reason="needs PostgreSQL's initdb/pg_ctl"),
              pytest.mark.skipif(not available() or os.geteuid() != 0,
                                 reason="needs root and SLURM: apt-get install -y slurm-wlm munge")]

SPEC = """study: slurm
dataset: digits
data_dir: data
limit: 200
width: 4
epochs: 10
batch_size: 16
iw_samples: 2
eval_images: 20
device: cpu
search:
  z_dim: [2]
  beta: [0.1, 0.03, 0.01, 0.003]
heartbeat_interval: 1
grace_period: 10
images_every: 10
checkpoint_every: 1
"""


def test_a_scancelled_task_s_trial_resumes_in_another_task(tmp_path):
    import optuna
    from mlflow import MlflowClient

    (tmp_path / "spec.yaml").write_text(SPEC)
    bin_dir = Path(sys.executable).parent  # where `vae` is installed
    with postgres(tmp_path) as dbs, mlflow_server(dbs["mlflow"], tmp_path) as url, slurm_cluster(cpus=3) as env:
        env = {**env, "VAE_STORAGE": dbs["optuna"], "MLFLOW_TRACKING_URI": url,
               "PATH": f"{bin_dir}{os.pathsep}{env['PATH']}",
               "PYTHONPATH": os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])}
        for name in ("VAE_RUNS_DIR", "VAE_FAULT", "VAE_ARTIFACT_LOCATION"):
            env.pop(name, None)
        client = MlflowClient(url)
        client.search_experiments(max_results=1)  # a new server's first answer is slow: not within a worker's 5 s check
        submitted = subprocess.run(["sbatch", "--parsable", "--array=0-2", "--cpus-per-task=1",
                                    "--output=task-%a.out", str(ROOT / "deploy/slurm/sweep.sbatch"), "spec.yaml"],
                                   cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
        assert submitted.returncode == 0, submitted.stderr
        job = submitted.stdout.strip().split(";")[0]

        def running() -> bool:
            return bool(subprocess.run(["squeue", "-h", "-j", job], env=env, capture_output=True, text=True,
                                       timeout=60).stdout.strip())
        store = optuna.storages.RDBStorage(dbs["optuna"])

        def logs():
            return "\n".join(f"--- {f.name}\n{f.read_text()[-3000:]}" for f in sorted(tmp_path.glob("task-*.out")))

        # cancel the task that runs a trial in its first half: 2 to 5 of its 10 epochs reported
        victim, deadline = None, time.monotonic() + 600
        while victim is None:
            assert time.monotonic() < deadline and running(), "no trial ran:\n" + logs()
            try:
                trials = optuna.load_study(study_name="slurm", storage=store).get_trials()
            except KeyError:
                trials = []
            victim = next((t for t in trials if t.state.name == "RUNNING" and 2 <= len(t.intermediate_values) <= 5
                           and "mlflow_run_id" in t.user_attrs), None)
            if victim is None:
                time.sleep(0.3)
        task = client.get_run(victim.user_attrs["mlflow_run_id"]).data.tags["vae.slurm_job"]
        assert task.startswith(f"{job}_")
        subprocess.run(["scancel", task], env=env, check=True, timeout=60)

        deadline = time.monotonic() + 900
        while running():
            assert time.monotonic() < deadline, "the array did not finish:\n" + logs()
            time.sleep(1)

        trials = optuna.load_study(study_name="slurm", storage=store).get_trials()
        complete = Counter(t.params["beta"] for t in trials if t.state.name == "COMPLETE")
        assert complete == Counter({b: 1 for b in (0.1, 0.03, 0.01, 0.003)}), logs()
        assert [t.number for t in trials if t.state.name != "COMPLETE"] == [victim.number], logs()
        assert trials[victim.number].user_attrs["fail_kind"] in ("interrupted", "died")

        exp = client.get_experiment_by_name("slurm")
        runs = client.search_runs([exp.experiment_id], "tags.`vae.role` = 'trial'")
        assert Counter(r.info.status for r in runs) == Counter({"FINISHED": 4, "KILLED": 1}), logs()
        cancelled = next(r for r in runs if r.info.status == "KILLED")
        assert cancelled.data.tags["vae.slurm_job"] == task
        retry = next(r for r in runs if r.data.tags.get("vae.resumed_from_epoch"))
        assert retry.data.params["beta"] == cancelled.data.params["beta"]
        assert retry.data.tags["vae.slurm_job"] != task  # another task took it over
        resumed = int(retry.data.tags["vae.resumed_from_epoch"])
        # from the checkpoint the cancelled task uploaded (each task has run folders of its own)
        assert retry.data.tags["vae.checkpoint_from"] == f"run {cancelled.info.run_id}, epoch {resumed}"
        trained = max(m.step for m in client.get_metric_history(cancelled.info.run_id, "train/loss"))
        assert resumed >= 2 and trained - 1 <= resumed <= trained  # at most the epoch in flight is trained again
        print(f"\nslurm: task {task} cancelled in trial {victim.number} after epoch {trained}; "
              f"{retry.data.tags['vae.slurm_job']} resumed it at epoch {resumed + 1}")
        parent = client.search_runs([exp.experiment_id], "tags.`vae.role` = 'parent'")[0]
        assert parent.info.status == "FINISHED"
