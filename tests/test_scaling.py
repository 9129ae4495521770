"""Many workers against a real PostgreSQL study and a real MLflow tracking server, with a SIGKILL.

Servers listen on 127.0.0.1 only and are stopped at the end. Skipped only where PostgreSQL's
server programs are missing (.ci/run installs them).
"""

import signal
import subprocess
import sys
import time
from collections import Counter

import pytest
from click.testing import CliRunner
from servers import mlflow_server, pg_bin, postgres

from pipelines.cli import cli

# its module-scoped fixtures are built once: `make test` keeps the module on one test process
pytestmark = [pytest.mark.xdist_group("scaling"),
              pytest.mark.skipif(pg_bin("initdb") is None, reason="needs PostgreSQL's initdb/pg_ctl")]

SPEC = """study: scale
dataset: digits
data_dir: {data}
limit: 160
width: 8
epochs: 8
batch_size: 16
iw_samples: 2
device: cpu
search:
  z_dim: [2, 4]
  beta: [0.1, 0.03, 0.01]
heartbeat_interval: 1
grace_period: 10
images_every: 4
"""


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("servers")
    with postgres(tmp) as dbs, mlflow_server(dbs["mlflow"], tmp) as url:
        yield tmp, dbs["optuna"], url


def worker(spec, storage, url):
    return subprocess.Popen([sys.executable, "-m", "pipelines.cli", "sweep", str(spec), "--storage", storage,
                             "--tracking-uri", url, "--no-progress", "--threads", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_workers_survive_a_sigkill(servers):
    import optuna
    from mlflow import MlflowClient

    tmp, storage, url = servers
    spec = tmp / "scale.yaml"
    spec.write_text(SPEC.format(data=tmp / "data"))
    a, b = worker(spec, storage, url), worker(spec, storage, url)
    # kill worker a in the middle of one of its trials
    deadline = time.monotonic() + 180
    victim = None
    store = optuna.storages.RDBStorage(storage)  # one pool: a storage per poll leaks connections
    while victim is None:
        assert time.monotonic() < deadline, "worker a never ran a trial"
        try:
            trials = optuna.load_study(study_name="scale", storage=store).get_trials()
        except KeyError:
            trials = []
        # in its first half: a trial seen near its last epoch may store its result before the kill lands
        victim = next((t for t in trials if t.state.name == "RUNNING" and 1 <= len(t.intermediate_values) <= 4
                       and t.system_attrs.get("vae_worker", {}).get("pid") == a.pid), None)
        if victim is None:
            time.sleep(0.2)
    a.send_signal(signal.SIGKILL)
    a.wait()
    c = worker(spec, storage, url)
    for p in (b, c):
        out, _ = p.communicate(timeout=300)
        assert p.returncode == 0, out[-3000:]

    trials = optuna.load_study(study_name="scale", storage=storage).get_trials()
    complete = Counter((t.params["z_dim"], t.params["beta"]) for t in trials if t.state.name == "COMPLETE")
    assert complete == Counter({(z, b): 1 for z in (2, 4) for b in (0.1, 0.03, 0.01)})
    assert trials[victim.number].state.name == "FAIL"
    assert [t.number for t in trials if t.state.name == "FAIL"] == [victim.number]

    client = MlflowClient(url)
    exp = client.get_experiment_by_name("scale")
    runs = client.search_runs([exp.experiment_id], "tags.`vae.role` = 'trial'")
    statuses = Counter(r.info.status for r in runs)
    assert statuses == Counter({"FINISHED": 6, "KILLED": 1})
    killed = next(r for r in runs if r.info.status == "KILLED")
    assert killed.data.tags["vae.trial"] == str(victim.number) and "is gone" in killed.data.tags["vae.fail_reason"]
    # the retry resumed from the dead trial's last checkpointed epoch
    retry = next(r for r in runs if r.data.tags["mlflow.runName"].startswith(
        killed.data.tags["mlflow.runName"].rsplit("-t", 1)[0]) and r.info.status == "FINISHED")
    assert int(retry.data.tags["vae.resumed_from_epoch"]) >= 1

    result = CliRunner().invoke(cli, ["report", "--study", "scale", "--tracking-uri", url, "--format", "csv"])
    assert result.exit_code == 0, result.output
    assert len(result.output.strip().splitlines()) == 1 + 6
    result = CliRunner().invoke(cli, ["status", "--study", "scale", "--storage", storage])
    assert result.exit_code == 0 and "6 complete" in result.output and "0 of 6 left" in result.output


@pytest.mark.parametrize("option, value, message", [
    ("--storage", "postgresql://vae@127.0.0.1:9/optuna", "cannot use Optuna storage"),
    ("--storage", "nosuchdb://x/y", "cannot use Optuna storage"),
    ("--tracking-uri", "http://127.0.0.1:9", "cannot use tracking store"),
])
def test_bad_connections_fail_fast(tmp_path, option, value, message):
    spec = tmp_path / "s.yaml"
    spec.write_text(SPEC.format(data=tmp_path / "data"))
    args = ["sweep", str(spec), "--storage", f"sqlite:///{tmp_path}/o.db", "--tracking-uri", f"sqlite:///{tmp_path}/m.db"]
    args[args.index(option) + 1] = value
    t0 = time.monotonic()
    result = CliRunner().invoke(cli, args)
    assert time.monotonic() - t0 < 60  # "in seconds": 5 s of connect timeout, bounded loosely for a busy machine
    assert result.exit_code == 2, result.output
    assert message in result.output and len(result.output.strip().splitlines()) == 1
    result = CliRunner().invoke(cli, ["status", "--study", "x", "--storage", "postgresql://vae:secret@127.0.0.1:9/o"])
    assert result.exit_code == 2 and "secret" not in result.output
