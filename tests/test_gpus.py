"""One worker per GPU: `--workers N` on a host with G GPUs puts worker i on GPU i mod G (its own
CUDA_VISIBLE_DEVICES), says so, and tags every trial with it; a CPU host is left as it was.
The GPU count is faked (this machine has none); the workers are real processes."""

import re
from collections import Counter

import pytest
from click.testing import CliRunner
from sweeping import GRID, points

import pipelines.engine.gpus
from pipelines.cli import cli
from pipelines.engine.gpus import GpuError, child_env, gpu_plan, parse


@pytest.fixture
def gpus(monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.delenv("VAE_WORKER_GPU", raising=False)

    def fake(n):
        monkeypatch.setattr(pipelines.engine.gpus, "device_count", lambda: n)
    return fake


def test_worker_i_gets_gpu_i_mod_g(gpus, monkeypatch):
    gpus(2)
    assert gpu_plan(5, None) == ["0", "1", "0", "1", "0"]
    gpus(4)
    assert gpu_plan(3, parse("3,1")) == ["3", "1", "3"]
    assert child_env(["3", "1", "3"], 1)["CUDA_VISIBLE_DEVICES"] == "1"
    # a process already narrowed (by hand, or a scheduler) shares out the GPUs it was given, by their names
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,6")
    gpus(2)
    assert gpu_plan(3, None) == ["4", "6", "4"]
    # --gpus there numbers the GPUs as torch does in this process: positions in that list
    assert gpu_plan(2, parse("1")) == ["6", "6"]
    with pytest.raises(GpuError, match=r"CUDA_VISIBLE_DEVICES=4,6 leaves 2 GPU\(s\) \(0-1\), not GPU 4"):
        gpu_plan(2, parse("4"))  # physical GPU 4 under its own name is outside what this process may use
    with pytest.raises(GpuError, match="GPU-abc is not among CUDA_VISIBLE_DEVICES=4,6"):
        gpu_plan(2, parse("GPU-abc"))


def test_a_worker_names_its_own_gpu(gpus, monkeypatch):
    from pipelines.engine.gpus import assigned

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")  # narrowed by hand, no parent assigned one
    assert (assigned("cuda"), assigned("cuda:1"), assigned("cpu")) == ("2", "3", None)
    monkeypatch.setenv("VAE_WORKER_GPU", "5")  # a --workers child: its parent's choice
    assert assigned("cuda") == "5"


def test_a_cpu_host_is_left_alone(gpus):
    gpus(0)
    assert gpu_plan(4, None) == []
    assert "CUDA_VISIBLE_DEVICES" not in child_env([], 0)
    with pytest.raises(GpuError, match="no CUDA GPU is usable here"):
        gpu_plan(2, parse("0"))


@pytest.mark.parametrize("value, message", [
    ("0,0", "lists GPU 0 more than once"), ("x", "'x' is not a GPU number"), (",", "name at least one GPU")])
def test_bad_gpu_lists(value, message):
    with pytest.raises(GpuError, match=message):
        parse(value)


def test_gpus_beyond_the_host_are_refused_in_one_line(env, gpus):
    gpus(2)
    result = CliRunner().invoke(cli, ["sweep", str(env.spec()), "--workers", "2", "--gpus", "1,2",
                                      "--storage", env.storage, "--tracking-uri", env.tracking])
    assert result.exit_code == 2
    assert result.output.strip() == "error: --gpus 1,2: this host has 2 GPU(s) (0-1), not GPU 2"


def test_each_worker_trains_on_its_gpu_and_every_trial_says_which(env, gpus):
    gpus(2)
    result = CliRunner().invoke(cli, ["sweep", str(env.spec(epochs=1)), "--workers", "2", "--no-progress",
                                      "--storage", env.storage, "--tracking-uri", env.tracking])
    assert result.exit_code == 0, result.output
    printed = {int(pid): gpu for pid, gpu in re.findall(r"worker \d of 2 \(pid (\d+)\): GPU (\d) "
                                                        r"\(CUDA_VISIBLE_DEVICES=\d\)", result.output)}
    assert sorted(printed.values()) == ["0", "1"], result.output
    trials = env.trials()
    assert points(trials) == Counter(GRID)
    runs = env.runs()
    trial_runs = runs[runs["tags.vae.role"] == "trial"].set_index("tags.vae.trial")
    for t in trials:  # the GPU tagged on each trial is the one its worker (by pid) was given
        assert trial_runs.loc[str(t.number), "tags.vae.gpu"] == printed[t.system_attrs["vae_worker"]["pid"]]
