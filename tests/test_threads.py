"""CPU threads: chosen from the cores this process may use and the load on them; the numbers of a
run depend on its thread count, and repeat exactly at the same count."""

import subprocess

import pytest


def test_threads_are_the_free_usable_cores_shared_by_the_workers(monkeypatch):
    import vae.runtime as rt

    monkeypatch.setattr(rt, "usable_cores", lambda: 2)
    monkeypatch.setattr(rt, "other_load", lambda: 0.1)  # idle
    assert rt.choose_threads() == (2, "2 usable core(s), load 0.1")
    assert rt.choose_threads(workers=2)[0] == 1
    monkeypatch.setattr(rt, "other_load", lambda: 5.0)  # a busy machine: one thread, never two spinning teams
    assert rt.choose_threads()[0] == 1
    monkeypatch.setattr(rt, "usable_cores", lambda: 16)
    monkeypatch.setattr(rt, "other_load", lambda: 6.0)
    assert rt.choose_threads()[0] == 10 and rt.choose_threads(workers=4)[0] == 3  # (16 - 6) / 4, rounded


def test_usable_cores_follow_a_cgroup_quota(monkeypatch, tmp_path):
    import os
    from pathlib import Path

    import vae.runtime as rt

    quota = tmp_path / "cpu.max"
    quota.write_text("150000 100000\n")  # 1.5 CPUs
    real = Path.read_text
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    monkeypatch.setattr(Path, "read_text", lambda self, *a, **k: real(quota) if str(self) == "/sys/fs/cgroup/cpu.max"
                        else real(self, *a, **k))
    assert rt.usable_cores() == 1


def test_a_worker_says_once_when_its_epochs_slow_down():
    from pipelines.engine.worker import Worker

    w = Worker(spec=None, tracker=None, experiment_id="", parent="")
    assert [w.timed(s) for s in (1.0, 1.1, 0.9, 1.2)] == [None] * 4
    note = w.timed(4.0)
    assert note.startswith("note: epochs now take 4.0 s, 4.0x this worker's first (1.0 s): the machine is busy")
    assert w.timed(9.0) is None  # once


@pytest.mark.parametrize("threads", [1])
def test_a_rerun_with_the_same_threads_gives_the_same_numbers(env, threads):
    """The README's numbers say the thread count they were made with: at that count a fresh rerun
    repeats them to the last digit."""
    import optuna

    path = env.spec(epochs=2)
    path.write_text(path.read_text().replace("z_dim: [2, 4]", "z_dim: [4]"))
    first = env.sweep(path, f"threads={threads}")
    assert first.complete == 2
    values = {t.params.get("beta", t.user_attrs.get("beta")): (t.value, t.user_attrs["test/r_loss"])
              for t in env.trials()}
    path.write_text(path.read_text().replace("study: t", "study: again"))
    env.sweep(path, f"threads={threads}")
    again = {t.params.get("beta", t.user_attrs.get("beta")): (t.value, t.user_attrs["test/r_loss"])
             for t in optuna.load_study(study_name="again", storage=env.storage).trials}
    assert again == values
    runs = env.runs()
    assert set(runs["params.threads"]) == {str(threads)}  # logged with every run


def test_a_sweep_says_the_threads_it_chose_and_logs_them(env):
    """Without --threads (and none in the spec) a sweep picks them from the cores and the load,
    says so in one line, bars or not, and every run records the count."""
    path = env.spec(epochs=1)
    path.write_text(path.read_text().replace("z_dim: [2, 4]", "z_dim: [4]"))
    out = subprocess.run(env.cli(path, "--n-trials", "1"), capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    line = next(x for x in (out.stdout + out.stderr).splitlines() if x.startswith("CPU threads per trial: "))
    chosen = line.split()[4]
    assert "usable core(s), load " in line and "--threads N sets it" in line, line
    assert set(env.runs()["params.threads"].dropna()) == {chosen}
