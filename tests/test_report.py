"""The balance table against the MLflow metrics it comes from, the files, and the page in Chromium."""

import re
import shutil
import subprocess

import pytest
from click.testing import CliRunner

from pipelines.cli import cli
from pipelines.report import build, load_runs, to_csv
from pipelines.spec import load_spec
from pipelines.sweep import run_sweep
from pipelines.tracking import Tracker

SPEC = """study: r
dataset: digits
data_dir: {data}
limit: 160
width: 8
epochs: 1
batch_size: 32
iw_samples: 2
device: cpu
search:
  z_dim: [2, 4]
  beta: [0.1, 0.01]
  seed: [0, 1]
"""


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """A 2x2 grid with two seeds; (z=4, beta=0.1, seed=1) diverges."""
    import torch

    import vae.train

    tmp = tmp_path_factory.mktemp("report")
    (tmp / "r.yaml").write_text(SPEC.format(data=tmp / "data"))
    storage, tracking = f"sqlite:///{tmp}/optuna.db", f"sqlite:///{tmp}/mlflow.db"
    real = vae.train.vae_loss

    def diverge_one(recon, x, mu, logvar, beta, *args):
        terms = real(recon, x, mu, logvar, beta, *args)
        if mu.shape[1] == 4 and beta == 0.1 and torch.initial_seed() // 100_003 == 1 and torch.is_grad_enabled():
            terms.loss = terms.loss * float("nan")
        return terms

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(vae.train, "vae_loss", diverge_one)
        summary = run_sweep(load_spec(tmp / "r.yaml"), storage, tracking, progress=False)
    assert (summary.complete, summary.failed) == (7, 1)
    return tmp, tracking


def test_table_values_are_the_mlflow_metrics(study):
    _, tracking = study
    _, runs = load_runs("r", Tracker(tracking))
    rep = build("r", runs)
    t = rep.table
    assert list(t.columns[:7]) == ["Z-dim", "Beta", "Loss", "KLD-loss", "R-loss", "KLD-loss ×B", "R-loss ×B"]
    assert list(zip(t["Z-dim"], t["Beta"])) == [(2, 0.1), (2, 0.01), (4, 0.1), (4, 0.01)]
    done = runs[(runs["tags.vae.role"] == "trial") & (runs["tags.vae.state"] == "COMPLETE")]
    for _, row in t.iterrows():
        mine = done[(done["params.z_dim"] == str(row["Z-dim"])) & (done["params.beta"].astype(float) == row["Beta"])]
        for col, metric in (("KLD-loss", "test/kld_loss"), ("R-loss", "test/r_loss"), ("KL (nats)", "test/kl"),
                            ("SSE", "test/sse"), ("AU", "diag/active_units"), ("NLL (bits/dim)", "diag/nll_bpd")):
            assert row[col] == pytest.approx(mine[f"metrics.{metric}"].mean()), col
        assert row["R-loss ×B"] == pytest.approx(row["R-loss"] * 32)
        assert row["Seeds"] == len(mine)
    # two seeds: mean ± std; the row with a failed seed has one seed and no std
    assert t["Seeds"].tolist() == [2, 2, 1, 2]
    two = done[(done["params.z_dim"] == "2") & (done["params.beta"] == "0.1")]["metrics.test/r_loss"]
    assert rep.std["R-loss"].iloc[0] == pytest.approx(two.std())
    assert rep.std["R-loss"].isna().tolist() == [False, False, True, False]


def test_failures_are_listed_not_mixed_in(study):
    _, tracking = study
    rep = build("r", load_runs("r", Tracker(tracking))[1])
    assert len(rep.failures) == 1
    failure = rep.failures.iloc[0]
    assert (failure["z_dim"], failure["beta"], failure["seed"]) == (4, 0.1, 1)
    assert "diverged" in failure["reason"]


def test_cli_writes_every_file(study):
    tmp, tracking = study
    out = tmp / "out"
    result = CliRunner().invoke(cli, ["report", "--study", "r", "--out", str(out), "--tracking-uri", tracking])
    assert result.exit_code == 0, result.output
    assert "not in the table: trial" in result.output and "diverged" in result.output
    for name in ("report.md", "table.csv", "report.html", "rate_distortion.png", "curves.png", "kl_per_dim.png"):
        assert (out / name).stat().st_size > 0, name
    md = (out / "report.md").read_text()
    assert md.count("\n| 2 |") == 2 and md.count("\n| 4 |") == 2 and "±" in md and "## Not in the table" in md
    csv = CliRunner().invoke(cli, ["report", "--study", "r", "--format", "csv", "--tracking-uri", tracking]).output
    assert csv.splitlines()[0].startswith("Z-dim,Beta,Loss,KLD-loss,R-loss") and len(csv.splitlines()) == 5
    assert csv == to_csv(build("r", load_runs("r", Tracker(tracking))[1]))
    # the report files are artifacts of the study's parent run
    from mlflow import MlflowClient

    client = MlflowClient(tracking)
    exp = client.get_experiment_by_name("r")
    parent = client.search_runs([exp.experiment_id], "tags.`vae.role` = 'parent'")[0]
    assert "report/report.html" in {a.path for a in client.list_artifacts(parent.info.run_id, "report")}


def chromium():
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


@pytest.mark.skipif(chromium() is None, reason="needs Chromium (apt-get install chromium; .ci/run installs it)")
def test_page_renders_in_chromium(study, tmp_path):
    tmp, tracking = study
    out = tmp / "page"
    assert CliRunner().invoke(cli, ["report", "--study", "r", "--out", str(out), "--tracking-uri", tracking]).exit_code == 0
    flags = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=10000"]
    page = (out / "report.html").as_uri()
    dom = subprocess.run([*flags, "--dump-dom", page], capture_output=True, text=True, timeout=120).stdout
    images = re.search(r'data-images="(\d+)/(\d+)"', dom)
    assert images, "the page's load script did not run"
    loaded, total = map(int, images.groups())
    assert total == 3 + 2 * 7 and loaded == total  # 3 plots + recon and samples of 7 complete runs
    assert dom.count("<tr") == 1 + 4 and "diverged" in dom
    shot = tmp_path / "shot.png"
    subprocess.run([*flags, f"--screenshot={shot}", "--window-size=1200,1600", page], capture_output=True, timeout=120)
    assert shot.stat().st_size > 10_000


def test_unknown_and_empty_study(study):
    from mlflow import MlflowClient

    _, tracking = study
    result = CliRunner().invoke(cli, ["report", "--study", "nope", "--tracking-uri", tracking])
    assert result.exit_code == 2 and "no study named 'nope'" in result.output and "r" in result.output
    MlflowClient(tracking).create_experiment("empty")
    result = CliRunner().invoke(cli, ["report", "--study", "empty", "--tracking-uri", tracking])
    assert result.exit_code == 2 and "has no runs yet" in result.output
    assert len(result.output.strip().splitlines()) == 1
