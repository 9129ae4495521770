"""No lost work: a worker stopped in each named window of its life (pipelines/common/faults.py), then
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

    path = env.spec(epochs=3, extra="max_retries: 100\n")  # each window's kill is a death: not what this counts
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
    # its image series starts at the resume point: the run says where the earlier grids are
    gaps = runs.loc[resumed.index, "tags.vae.images_missing"]
    assert all(g.startswith(f"epochs 1-{k}: trained by an earlier attempt") for g, k in zip(gaps, resumed))
    # killed while uploading: the result stood, and its artifacts were uploaded by the next start
    client = MlflowClient(env.tracking)
    for run_id in runs[runs["tags.vae.state"] == "COMPLETE"].run_id:
        assert {"checkpoint.pt", "metrics.json", "loss_curves.png"} <= {a.path for a in client.list_artifacts(run_id)}
    assert set(runs[runs["tags.vae.role"] == "parent"]["status"]) == {"FINISHED"}
    assert not list(runs_dir.glob("t/trial-*"))  # every folder gone once its result is logged
    assert not (runs_dir / "t").exists()  # and the study's folder with them: nothing empty left
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


def retrained_epochs(env, epochs: int) -> int:
    """Whole epochs trained twice: per configuration, the epochs its trials trained (each trial's
    last logged epoch beyond the epoch it resumed from; a retry's run also shows the epochs it
    resumed from) minus the epochs of one run. The epoch in progress at a kill is lost by design
    and not counted."""
    from mlflow import MlflowClient

    from pipelines.common.trials import chains

    client = MlflowClient(env.tracking)
    runs = env.runs()
    runs = runs[runs["tags.vae.role"] == "trial"]
    trained = {}
    for _, r in runs.iterrows():
        last = max((m.step for m in client.get_metric_history(r.run_id, "train/loss")), default=0)
        resumed = r.get("tags.vae.resumed_from_epoch")
        trained[int(r["tags.vae.trial"])] = max(0, last - (int(resumed) if isinstance(resumed, str) else 0))
    # a trial killed between its checkpoint and logging that epoch leaves it unlogged: at least 0
    return sum(max(0, sum(trained.get(t.number, 0) for t in chain) - epochs)
               for chain in chains(env.trials()).values() if chain[-1].state.name == "COMPLETE")


@pytest.mark.slow
def test_random_kills_with_several_workers(env):
    """The fault loop: SIGKILL a random worker at a random moment (a `--workers 2` child, its
    parent, or one of 3 separate processes), let the rest go on a while, stop everything, restart;
    then finish the study and count what was lost, done twice, left RUNNING or trained twice."""
    path = env.spec(epochs=30)
    rng = random.Random(int(os.environ.get("FAULT_SEED", "0")))
    kills = 0
    for round_ in range(int(os.environ.get("FAULT_ROUNDS", "12"))):
        if round_ % 2 == 0:
            procs = [subprocess.Popen([*env.cli(path), "--workers", "2"], stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL, start_new_session=True)]
        else:
            procs = [subprocess.Popen(env.cli(path), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                      start_new_session=True) for _ in range(3)]
        time.sleep(rng.uniform(1, 20))  # from a worker's first second to the middle of a trial
        pids = [p.pid for p in procs]
        for p in procs:
            pids += subprocess.run(["pgrep", "-P", str(p.pid)], capture_output=True, text=True).stdout.split()
        try:
            os.kill(int(rng.choice(pids)), signal.SIGKILL)
            kills += 1
        except ProcessLookupError:
            pass
        time.sleep(rng.uniform(0, 10))  # the others recover the dead one's trial meanwhile
        for p in procs:  # the whole session: children outlive a killed `--workers` parent
            kills += p.poll() is None
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait()
    final = run(env, path, None, "--workers", "2")
    assert final.returncode == 0, final.stdout + final.stderr
    trials = env.trials()
    lost = len(GRID) - len(points(trials))
    twice = sum(n - 1 for n in points(trials).values())
    runs = env.runs()
    stuck = int((runs["status"] == "RUNNING").sum())
    again = retrained_epochs(env, 30)
    print(f"\nfault loop: {kills} kills, {len(trials)} trials for {len(GRID)} points; lost {lost}, "
          f"complete twice {twice}, runs stuck RUNNING {stuck}, whole epochs trained twice {again}")
    assert (lost, twice, stuck, again) == (0, 0, 0, 0)
    assert_exactly_once(env)


def test_a_configuration_that_always_kills_its_worker_is_given_up_and_the_rest_finish(env):
    """Its attempts die max_retries times (here 2): it is failed for good with the reason, named in
    `vae status` and the verdict's report; the other points finish, and the sweep exits 1. A Ctrl-C
    never counts (tests/test_sweep.py: an interrupted trial resumes however often)."""
    import os
    import subprocess

    from pipelines.usecases.status import study_status

    path = env.spec(epochs=2, extra="max_retries: 2\n")
    killer = {**os.environ, "VAE_FAULT": "epoch:z_dim=4:beta=0.1"}  # SIGKILL in that configuration's first epoch
    codes = [subprocess.run(env.cli(path), env=killer, capture_output=True, text=True, timeout=600)
             for _ in range(3)]
    assert [c.returncode for c in codes[:2]] == [-9, -9], [c.stderr[-300:] for c in codes]
    last = codes[2]
    assert last.returncode == 1, last.stderr
    assert "1 configuration(s) were given up, their attempts killed their workers" in last.stdout
    info = study_status("t", env.storage)
    assert (info["complete"], info["done"], info["gave_up"]) == (3, True, 1)
    (row,) = [r for r in info["trials"] if r["state"] == "FAIL" and r["note"].startswith("given up")]
    assert (row["z_dim"], row["beta"]) == (4, 0.1) and "died 2 times" in row["note"] and "max_retries 2" in row["note"]
    from pipelines.tracking.runs import Tracker
    from pipelines.usecases.publish import compute_verdict

    _, v = compute_verdict("t", Tracker(env.tracking), env.storage)  # the report's verdict says so
    assert any(w.startswith("left out, given up: z-dim 4, beta 0.1 (seed 0): its attempts died 2 times")
               for w in v["warnings"]), v["warnings"]
    again = subprocess.run(env.cli(path), capture_output=True, text=True, timeout=600)  # no fault now: stays given up
    assert again.returncode == 0 and len(env.trials()) == len(study_status("t", env.storage)["trials"])
