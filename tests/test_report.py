"""The balance table against the MLflow metrics it comes from, the files, and the page in Chromium."""

import re
import shutil
import subprocess

import pandas as pd
import pytest
from click.testing import CliRunner

from pipelines.cli import cli
from pipelines.common.spec_file import load_spec
from pipelines.engine.sweep import run_sweep
from pipelines.report.data import build
from pipelines.report.fetch import load_runs
from pipelines.report.tables import GROUPS, KEY, MAX_KEY_COLUMNS, ROW_ID, to_csv
from pipelines.tracking.runs import Tracker

# its module-scoped fixtures are built once: `make test` keeps the module on one test process
pytestmark = pytest.mark.xdist_group("report")

SPEC = """study: r
dataset: digits
data_dir: {data}
limit: 400
lr: 0.01
width: 8
epochs: 1
batch_size: 32
iw_samples: 2
device: cpu
search:
  z_dim: [2, 4]
  beta: [0.01, 0.001]
  seed: [0, 1]
"""


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """A 2x2 grid with two seeds; (z=4, beta=0.01, seed=1) diverges; beta 0.01 collapses, 0.001 learns."""
    import torch

    import vae.train

    tmp = tmp_path_factory.mktemp("report")
    (tmp / "r.yaml").write_text(SPEC.format(data=tmp / "data"))
    storage, tracking = f"sqlite:///{tmp}/optuna.db", f"sqlite:///{tmp}/mlflow.db"
    real = vae.train.vae_loss

    def diverge_one(recon, x, mu, logvar, beta, *args):
        terms = real(recon, x, mu, logvar, beta, *args)
        if mu.shape[1] == 4 and beta == 0.01 and torch.initial_seed() // 100_003 == 1 and torch.is_grad_enabled():
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
    assert list(t.columns[:8]) == ["Z-dim", "Beta", "Loss", "Training", "KLD-loss", "R-loss", "KLD-loss ×B", "R-loss ×B"]
    assert set(t["Training"]) == {"independent"}
    assert list(zip(t["Z-dim"], t["Beta"])) == [(2, 0.01), (2, 0.001), (4, 0.01), (4, 0.001)]
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
    two = done[(done["params.z_dim"] == "2") & (done["params.beta"] == "0.01")]["metrics.test/r_loss"]
    assert rep.std["R-loss"].iloc[0] == pytest.approx(two.std())
    assert rep.std["R-loss"].isna().tolist() == [False, False, True, False]


def test_failures_are_listed_not_mixed_in(study):
    _, tracking = study
    rep = build("r", load_runs("r", Tracker(tracking))[1])
    assert len(rep.failures) == 1
    failure = rep.failures.iloc[0]
    assert (failure["z_dim"], failure["beta"], failure["seed"]) == (4, 0.01, 1)
    assert "diverged" in failure["reason"]


def test_cli_writes_every_file(study):
    tmp, tracking = study
    out = tmp / "out"
    storage = f"sqlite:///{tmp}/optuna.db"
    result = CliRunner().invoke(cli, ["report", "--study", "r", "--out", str(out), "--tracking-uri", tracking,
                                      "--storage", storage])
    assert result.exit_code == 0, result.output
    assert "not in the table: trial" in result.output and "diverged" in result.output
    for name in ("report.md", "table.csv", "report.html", "rate_distortion.png", "curves.png", "kl_per_dim.png",
                 "heatmaps.png", "verdict.json"):
        assert (out / name).stat().st_size > 0, name
    import json

    import optuna

    v = json.loads((out / "verdict.json").read_text())
    label = f"z-dim {v['z_dim']}, beta {v['beta']:g}"
    assert result.output.startswith(f"verdict: {label} (trial {v['trial']}")  # the answer first
    assert "◀ verdict" in result.output
    # one verdict everywhere: the Optuna study's attribute, the parent run's tags, report.md
    assert optuna.load_study(study_name="r", storage=storage).user_attrs["verdict"] == v
    md = (out / "report.md").read_text()
    assert md.index("## Verdict") < md.index("| Z-dim") and f"**{label} (trial {v['trial']}" in md
    assert v["noise"].startswith("2 seeds")  # two seeds ran: the spread over seeds is the noise
    tables = md_tables(md)
    assert all([r[0] for r in rows] == ["2", "2", "4", "4"] for rows in tables.values())  # z-dim up, every table
    key = md[md.index("| Z-dim"):].split("\n\n")[0].splitlines()[2:]  # the key table's rows: the verdict's bold
    assert [row.startswith("| **") for row in key] == [f"| **{v['z_dim']}** | **{v['beta']:g}**" in row for row in key]
    assert sum(row.startswith("| **") for row in key) == 1
    assert "±" in md and "## Not in the table" in md
    # what a ± is, said wherever the table is shown: the spread over seeds, not the verdict's error
    spread = "a row of several seeds shows mean ± standard deviation over its seeds"
    assert spread in md and spread in " ".join(result.output.split())
    assert spread[0].upper() + spread[1:] in (out / "report.html").read_text()
    # the page's caption names the detail columns this study has: no FID here, so no KID or precision
    page = (out / "report.html").read_text()
    caption = page[page.index("More columns below:"):].split("</p>")[0]
    assert "epochs and seeds. table.csv" in caption and "−ELBO" in caption
    assert not {"KID", "precision", "recall", "FID"} & set(re.findall(r"[A-Za-z]+", caption))
    csv = CliRunner().invoke(cli, ["report", "--study", "r", "--format", "csv", "--tracking-uri", tracking]).output
    assert csv.splitlines()[0].startswith("Z-dim,Beta,R-loss,KLD-loss,AU") and len(csv.splitlines()) == 5
    assert csv == to_csv(build("r", load_runs("r", Tracker(tracking))[1]))
    # the report files are artifacts of the study's parent run
    from mlflow import MlflowClient

    client = MlflowClient(tracking)
    exp = client.get_experiment_by_name("r")
    parent = client.search_runs([exp.experiment_id], "tags.`vae.role` = 'parent'")[0]
    assert "report/report.html" in {a.path for a in client.list_artifacts(parent.info.run_id, "report")}
    tags = parent.data.tags
    assert (tags["best.z_dim"], tags["best.beta"], tags["best.trial"]) == (str(v["z_dim"]), f"{v['beta']:g}",
                                                                         str(v["trial"]))
    assert tags["best.loss"] == "beta" and tags["best.rule"] == v["rule"] and "Verdict" in tags["mlflow.note.content"]
    chosen = client.search_runs([exp.experiment_id], "tags.`vae.verdict` = 'chosen'")
    assert [r.info.run_id for r in chosen] == [v["run_id"]]


def md_tables(md: str) -> dict[tuple[str, ...], list[list[str]]]:
    """report.md's pipe tables: header -> rows of cells."""
    found, lines = {}, md.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("| ") and i + 1 < len(lines) and lines[i + 1].startswith("|---"):
            rows = []
            for row in lines[i + 2:]:
                if not row.startswith("|"):
                    break
                rows.append([c.strip().removeprefix("**").removesuffix("**") for c in row.strip("|").split("|")])
            found[tuple(c.strip() for c in line.strip("|").split("|"))] = rows
    return found


def test_markdown_and_csv_have_the_same_columns(study):
    """report.md (key table, then the details) holds exactly table.csv's columns; the key table
    comes first, starts with the row's identity and fits a laptop screen."""
    tmp, tracking = study
    out = tmp / "columns"
    assert CliRunner().invoke(cli, ["report", "--study", "r", "--out", str(out), "--tracking-uri", tracking]).exit_code == 0
    headers = list(md_tables((out / "report.md").read_text()))
    csv = (out / "table.csv").read_text().splitlines()[0].split(",")
    assert {c for h in headers for c in h} == {c for c in csv if not c.endswith(" std")}
    assert {c[:-4] for c in csv if c.endswith(" std")} <= set(csv)  # a spread only beside its column
    key = headers[0]
    assert list(key[:2]) == ["Z-dim", "Beta"] and list(key) == [c for c in GROUPS[KEY] if c in key]
    assert {"R-loss", "KLD-loss", "AU", "NLL (bits/dim)", "Status"} <= set(key) and len(key) <= MAX_KEY_COLUMNS
    assert all(h[:2] == ("Z-dim", "Beta") for h in headers[1:])  # each detail table names its rows
    assert {"Epochs", "Seeds", "σ implied", "MI (nats)"} <= {c for h in headers[1:] for c in h} - set(key)


def test_columns_no_group_names_are_kept():
    """A column the data gains (a new metric) shows up in "Other" in every format, never dropped."""
    import pandas as pd

    from pipelines.report.tables import display_frame, groups, shown

    table = pd.DataFrame({"Z-dim": [2], "Beta": [0.1], "Loss": ["beta"], "R-loss": [0.05], "New metric": [1.5],
                          "Status": ["ok"], "_hidden": [1.0]})
    rep = type("R", (), {"table": table, "std": table.drop(columns=["Loss", "Status"]) * float("nan")})()
    assert shown(table) == ["Z-dim", "Beta", "R-loss", "Status", "New metric"]  # one loss kind: no Loss column
    assert groups(display_frame(rep)) == {KEY: ["Z-dim", "Beta", "R-loss", "Status"], "Other": ["Z-dim", "Beta", "New metric"]}
    assert to_csv(rep).splitlines()[0] == "Z-dim,Beta,R-loss,Status,New metric"
    mixed = pd.concat([table, table.assign(Loss="sigma-vae")])
    assert shown(mixed)[:3] == ["Z-dim", "Beta", "Loss"]
    both = pd.concat([table.assign(Training="independent"), table.assign(Training="conditional")])
    assert shown(both)[:3] == ["Z-dim", "Beta", "Training"]  # a conditional model's rows beside trained ones
    assert shown(table.assign(Training="conditional"))[:3] == ["Z-dim", "Beta", "Training"]  # says what they are
    assert set(ROW_ID) == {"Z-dim", "Beta", "Loss", "Training"}


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
    flags.append("--window-size=1366,900")  # a laptop screen
    page = (out / "report.html").as_uri()
    dom = subprocess.run([*flags, "--dump-dom", page], capture_output=True, text=True, timeout=120).stdout
    images = re.search(r'data-images="(\d+)/(\d+)"', dom)
    assert images, "the page's load script did not run"
    loaded, total = map(int, images.groups())
    assert total == 4 + 7 and loaded == total, re.findall(r"alt=.([\w./ -]*)", dom)  # 4 plots + one labelled grid figure for each of 7 complete runs
    start = re.search(r'<table[^>]*class="dataframe balance"', dom).start()
    key = dom[start:]
    assert key[:key.index("</table>")].count("<tr") == 1 + 4 and "diverged" in dom
    rows = key[:key.index("</table>")].split("<tr")[2:]  # the body's rows
    assert sum("verdict" in r for r in rows) == 1  # the verdict's row, highlighted (every cell of it)
    marked = next(r for r in rows if "verdict" in r)
    assert marked.count("<td") == marked.count("verdict")
    assert dom.index('id="verdict"') < start  # the answer comes first
    assert "<details><summary>More columns" in dom  # the details start collapsed
    right, view = (int(re.search(rf'data-{k}="(\d+)"', dom).group(1)) for k in ("key-right", "view-width"))
    assert 0 < right <= view  # the key table fits the window: no sideways scrolling
    shot = tmp_path / "shot.png"
    subprocess.run([*flags, f"--screenshot={shot}", page], capture_output=True, timeout=120)
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


def test_sweep_objective_is_the_validation_elbo(study):
    import optuna

    tmp, tracking = study
    _, runs = load_runs("r", Tracker(tracking))
    trials = optuna.load_study(study_name="r", storage=f"sqlite:///{tmp}/optuna.db").get_trials()
    done = runs[(runs["tags.vae.role"] == "trial") & (runs["tags.vae.state"] == "COMPLETE")]
    for t in (t for t in trials if t.state.name == "COMPLETE"):
        run = done[done["tags.vae.trial"] == str(t.number)].iloc[0]
        assert t.value == pytest.approx(run["metrics.val/elbo_bpd"])  # the default: favours no beta
        assert t.value != pytest.approx(run["metrics.test/elbo_bpd"])


def fake_runs(rows):
    """MLflow's search_runs frame for complete trials: (z, beta, loss, metrics) each."""
    import pandas as pd

    records = []
    for i, (z, beta, loss, metrics) in enumerate(rows):
        records.append({"run_id": f"r{i}", "status": "FINISHED", "tags.vae.role": "trial", "tags.vae.state": "COMPLETE",
                        "tags.vae.trial": str(i), "tags.mlflow.runName": f"t{i}", "params.z_dim": str(z),
                        "params.beta": str(beta), "params.seed": "0", "params.loss": loss, "params.epochs": "2",
                        "params.batch_size": "64", **{f"metrics.{k}": v for k, v in metrics.items()}})
    return pd.DataFrame(records)


def test_cells_columns_and_collapse_of_a_table():
    from pipelines.report.data import sources
    from pipelines.report.tables import display_frame

    def m(r, fid, kl=20.0, au=10.0, mi=3.0, saturated=0.0):
        return {"test/r_loss": r, "test/kld_loss": kl / 10, "test/kl": kl, "test/sse": r * 3072, "diag/r_loss": r,
                "diag/fid": fid, "diag/active_units": au, "diag/mi_nats": mi, "diag/mi_ceiling_nats": 7.6,
                "diag/mi_saturated": saturated, "diag/rate_minus_mi": kl - mi, "data/test_images": 10000,
                "diag/eval_images": 2000, "diag/fid_samples": 500}

    rep = build("x", fake_runs([
        (10, 0.1, "beta", m(0.05, 80)),
        (10, 0.05, "beta", m(0.04, 90)),
        (10, 0.01, "beta", m(0.03, 120)),
        (10, 0.005, "beta", m(0.035, 130)),
        (10, 1.0, "beta", m(0.09, 10, kl=0.001, au=0, mi=-0.02)),  # collapsed
        (20, 0.01, "beta", m(0.02, 100, mi=7.7, saturated=1.0)),
    ]))
    frame = display_frame(rep)
    mi = frame["MI (nats)"].tolist()  # rows: z-dim up, beta down
    assert (mi[0], mi[-1]) == ("≈ 0 (noise)", "≥ 7.6, saturated")
    assert frame["Rate − MI (nats)"].iloc[-1].startswith("≤ ")
    assert "FID (recon)" not in frame and "Precision" not in frame  # columns these runs did not log: left out
    assert not [c for c in frame if c.startswith("_")]
    from pipelines.report import plots

    dead = rep.dead
    assert dead.tolist() == [True, False, False, False, False, False]  # beta 1 first
    assert frame["Status"].tolist() == ["collapsed"] + ["ok"] * 5  # the one rule, vae/collapse.py
    title = plots.generation_vs_reconstruction(rep.table, r_col="_r_loss_eval", dead=dead).axes[0].get_title()
    assert "best reconstruction and the best generation are different models" in title
    assert plots.rate_distortion(rep.table, dead=dead).axes[0].get_xscale() == "log"  # rate: total KL, log axis
    assert "10,000" in sources(rep)[0] and "2,000" in sources(rep)[1] and "500 prior samples" in sources(rep)[2]


def test_the_first_line_says_when_trials_ran_with_different_thread_counts():
    from pipelines.report.data import meta

    rows = [(2, 0.1, "beta", {"test/r_loss": 0.05, "test/kld_loss": 0.1}), (2, 0.01, "beta", {"test/r_loss": 0.04})]
    runs = fake_runs(rows).assign(**{"params.dataset": "digits", "tags.vae.device": "cpu", "tags.vae.host": "h"})
    assert "threads" not in meta(build("x", runs.assign(**{"params.threads": "2"})))
    mixed = meta(build("x", runs.assign(**{"params.threads": ["1", "2"]})))
    assert "CPU threads mixed (1, 2)" in mixed and "β-conditional" in mixed


def test_the_conditional_curve_markers_are_measured_on_the_curves_images():
    """rd_curve.json is measured on the evaluation subset: the markers beside it are the rows'
    `test_subset/` numbers (the same images), not the whole test split's table cells."""
    from pipelines.report.data import curve_points

    def m(r, kl, subset_r, subset_kl):
        return {"test/r_loss": r, "test/kl": kl, "test/kld_loss": kl / 8, "test_subset/r_loss": subset_r,
                "test_subset/kl": subset_kl}

    rep = build("x", fake_runs([(8, 0.1, "beta", m(0.05, 10.0, 0.051, 10.2)), (8, 0.01, "beta", m(0.03, 30.0, 0.031, 29.5)),
                                (8, 1.0, "sigma-vae", m(0.02, 50.0, 0.02, 50.0))]))
    points = curve_points(rep)
    assert points.sort_values("Beta")[["Beta", "KL (nats)", "R-loss"]].values.tolist() == [[0.01, 29.5, 0.031], [0.1, 10.2, 0.051]]
    assert points["Source"].unique().tolist() == ["trained per β (x)"]
    old = build("x", fake_runs([(8, 0.1, "beta", {"test/r_loss": 0.05, "test/kl": 10.0, "test/kld_loss": 1.0})]))
    assert curve_points(old).empty  # runs from before the subset was measured: no marker on other images


def test_the_caption_names_only_the_columns_there():
    from pipelines.report.page import _more

    assert _more(pd.DataFrame(columns=["Z-dim", "FID (recon)", "KID", "Epochs"]), 64) == \
        "FID of the reconstructions, KID and epochs"
    assert "batch size 64" in _more(pd.DataFrame(columns=["R-loss ×B"]), 64)


def _hashes(folder):
    import hashlib

    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(folder.rglob("*"))}


USER_FOLDERS = {  # the tester's cases (issue 32): each a folder a user had, with what is theirs in it
    "photos": {"holiday.png": b"\x89PNG holiday", "cat.png": b"\x89PNG cat"},
    "proj": {".env": b"SECRET=1", ".git/HEAD": b"ref: refs/heads/main"},
    "home": {".bashrc": b"alias ll='ls -l'", ".ssh/id_rsa": b"-----BEGIN KEY-----"},
    "work": {"grids/mine.png": b"\x89PNG mine", "grids/my_notes.txt": b"notes"},
}


@pytest.mark.parametrize("name", sorted(USER_FOLDERS))
def test_a_report_never_deletes_a_users_files(study, tmp_path, name):
    """`--out DIR` on a folder with the user's files (hidden ones, images, grids/): refused with one
    line naming them, exit 2, every file as it was."""
    _, tracking = study
    out = tmp_path / name
    for rel, data in USER_FOLDERS[name].items():
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_bytes(data)
    before = _hashes(out)
    result = CliRunner().invoke(cli, ["report", "--study", "r", "--out", str(out), "--tracking-uri", tracking])
    assert result.exit_code == 2, result.output
    first = sorted(USER_FOLDERS[name])[0].split("/")[0]
    assert f"holds files a report did not write ({first}" in result.output and "Traceback" not in result.output
    assert _hashes(out) == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(f".{name}.")]  # no staging folder left


def test_a_report_replaces_its_own_files_but_not_one_the_user_added_or_edited(study, tmp_path):
    _, tracking = study
    out = tmp_path / "reports" / "r"
    args = ["report", "--study", "r", "--out", str(out), "--tracking-uri", tracking]
    assert CliRunner().invoke(cli, args).exit_code == 0
    assert CliRunner().invoke(cli, args).exit_code == 0  # its own, unchanged: replaced
    (out / "my_annotated.png").write_bytes(b"\x89PNG annotated")
    before = _hashes(out)
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2 and "(my_annotated.png)" in result.output, result.output
    assert _hashes(out) == before
    (out / "my_annotated.png").unlink()
    (out / "report.md").write_text("my edits")  # a report's file, changed since: the user's now
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2 and "(report.md)" in result.output, result.output
    assert (out / "report.md").read_text() == "my edits"


def test_a_file_added_while_the_report_is_computed_is_kept(study, tmp_path, monkeypatch):
    """The folder is checked again just before the swap: a file put there meanwhile is refused."""
    import pipelines.report.folder as folder

    _, tracking = study
    out = tmp_path / "rep"
    out.mkdir()
    real = folder.staging_folder

    def meanwhile(path):
        (out / "late.txt").write_text("mine")  # after the first check, before the swap
        return real(path)

    monkeypatch.setattr(folder, "staging_folder", meanwhile)
    result = CliRunner().invoke(cli, ["report", "--study", "r", "--out", str(out), "--tracking-uri", tracking])
    assert result.exit_code == 2 and "(late.txt)" in result.output, result.output
    assert [p.name for p in out.iterdir()] == ["late.txt"]


def test_a_previous_report_that_cannot_be_removed_is_named_not_left_in_silence(study, tmp_path):
    """An immutable verdict.json in the old report (chattr +i): the new report is in place, and one
    warning names the hidden folder left behind (it was left in silence, after exit 0)."""
    _, tracking = study
    out = tmp_path / "rep"
    args = ["report", "--study", "r", "--out", str(out), "--tracking-uri", tracking]
    assert CliRunner().invoke(cli, args).exit_code == 0
    if subprocess.run(["chattr", "+i", str(out / "verdict.json")], capture_output=True).returncode != 0:
        pytest.skip("chattr +i is not available here")
    try:
        result = CliRunner().invoke(cli, args)
        left = [p for p in tmp_path.iterdir() if p.name.startswith(".rep.new")]
        assert result.exit_code == 0, result.output
        assert len(left) == 1 and f"warning: the new report is in {out}, but the previous one could not be removed " \
                                  f"entirely: {left[0]} is left" in result.output
    finally:
        for p in tmp_path.rglob("verdict.json"):
            subprocess.run(["chattr", "-i", str(p)], capture_output=True)
