"""No lost work: a worker stopped in each named window of its life (pipelines/faults.py), then
restarted until the study is complete, leaves every grid point complete exactly once, no MLflow
run RUNNING, and retrains no epoch that had been checkpointed."""

import os
import random
import signal
import subprocess
import time
from collections import Counter

import pytest
from sweeping import GRID, points

# each run stops itself in one window; the runs share one study, which the last run completes
WINDOWS = ["created", "claimed", "owned", "epoch", "result", "recovering", "epoch@INT,cleanup@INT"]


def run(env, path, fault=None, *args):
    environ = {**os.environ, **({"VAE_FAULT": fault} if fault else {})}
    # a terminal's Ctrl-C: SIGINT raises KeyboardInterrupt (a shell's background job ignores it)
    return subprocess.run(env.cli(path, *args), env=environ, capture_output=True, text=True, timeout=600,
                          preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def assert_exactly_once(env, grid=GRID):
    trials = env.trials()
    assert points(trials) == Counter(grid), [(t.number, t.state.name, t.params) for t in trials]
    assert not [t for t in trials if t.state.name in ("RUNNING", "WAITING")]
    runs = env.runs()
    assert not (runs["status"] == "RUNNING").any(), runs[["tags.mlflow.runName", "status"]]
    complete = runs[(runs["tags.vae.role"] == "trial") & (runs["tags.vae.state"] == "COMPLETE")]
    assert len(complete) == len(grid) and set(complete["status"]) == {"FINISHED"}
    return trials, runs


def test_a_kill_in_every_window_loses_nothing(env, runs_dir):
    from mlflow import MlflowClient

    path = env.spec(epochs=3)
    codes = {}
    for window in WINDOWS:
        out = run(env, path, window)
        codes[window] = out.returncode
        assert "Traceback" not in out.stderr, out.stderr[-3000:]
    assert codes == {**{w: -signal.SIGKILL for w in WINDOWS[:-1]}, WINDOWS[-1]: 130}, codes
    final = run(env, path)
    assert final.returncode == 0, final.stdout + final.stderr
    trials, runs = assert_exactly_once(env)
    # the trial killed after its first epoch was resumed from that epoch, not from scratch
    resumed = runs["tags.vae.resumed_from_epoch"].dropna()
    assert len(resumed) >= 1 and set(resumed) <= {"1", "2"}
    # killed while uploading: the result stood, and its artifacts were uploaded by the next start
    client = MlflowClient(env.tracking)
    for run_id in runs[runs["tags.vae.state"] == "COMPLETE"].run_id:
        assert {"checkpoint.pt", "metrics.json", "loss_curves.png"} <= {a.path for a in client.list_artifacts(run_id)}
    assert set(runs[runs["tags.vae.role"] == "parent"]["status"]) == {"FINISHED"}
    assert not list(runs_dir.glob("t/trial-*"))  # every folder gone once its result is logged
    # a finished study: one line, exit 0
    again = run(env, path)
    assert again.returncode == 0 and "study t is complete" in again.stdout


def test_concurrent_first_starts_on_an_empty_store(env):
    path = env.spec(epochs=1)
    procs = [subprocess.Popen(env.cli(path), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for _ in range(3)]
    outs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], outs
    assert_exactly_once(env)


@pytest.mark.slow
def test_random_sigkills_with_two_workers(env):
    """The fault loop: SIGKILL a random worker process at a random moment, restart, repeat;
    then let the study finish and count what was lost, done twice or left RUNNING."""
    path = env.spec(epochs=12)
    rng = random.Random(0)
    kills = 0
    for _ in range(12):
        proc = subprocess.Popen([*env.cli(path), "--workers", "2"], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)
        time.sleep(rng.uniform(2, 25))
        children = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
        victim = int(rng.choice(children)) if children and rng.random() < 0.7 else proc.pid
        try:
            os.kill(victim, signal.SIGKILL)
            kills += 1
        except ProcessLookupError:
            pass
        time.sleep(0.5)
        os.killpg(proc.pid, signal.SIGKILL)  # the rest of this round's processes
        proc.wait()
    final = run(env, path, None, "--workers", "2")
    assert final.returncode == 0, final.stdout + final.stderr
    trials, runs = assert_exactly_once(env)
    print(f"{kills} kills, {len(trials)} trials for {len(GRID)} points, "
          f"resumed from epochs {sorted(runs['tags.vae.resumed_from_epoch'].dropna())}")
