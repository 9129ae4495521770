"""Files written whole or not at all, a report folder swapped in as a whole, and signals that end a
command with one line: a kill of `vae report` at its last moment leaves the earlier report intact."""

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from pipelines.cli import cli
from vae.atomic import (
    atomic_write,
    atomic_write_text,
    replace_folder,
    restore_folder,
    staging_folder,
)

# its module-scoped fixtures are built once: `make test` keeps the module on one test process
pytestmark = pytest.mark.xdist_group("atomic")

SPEC = """study: a
dataset: digits
data_dir: {data}
limit: 96
width: 4
epochs: 1
batch_size: 32
iw_samples: 0
device: cpu
search:
  z_dim: [2]
  beta: [0.01]
"""


def snapshot(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "folder"
            for p in sorted(folder.rglob("*"))}


def test_a_failed_write_keeps_the_old_file(tmp_path):
    target = tmp_path / "metrics.json"
    atomic_write_text(target, "old")

    def half(tmp):
        tmp.write_text("ne")
        raise OSError("disk full")
    with pytest.raises(OSError):
        atomic_write(target, half)
    assert target.read_text() == "old" and os.listdir(tmp_path) == ["metrics.json"]


def test_a_folder_is_replaced_whole_and_a_cut_short_swap_is_undone(tmp_path):
    out = tmp_path / "rep"
    out.mkdir()
    (out / "report.html").write_text("old")
    new = staging_folder(out)
    (new / "report.html").write_text("new")
    replace_folder(new, out)
    assert (out / "report.html").read_text() == "new" and sorted(os.listdir(tmp_path)) == ["rep"]
    os.replace(out, tmp_path / ".rep.old123")  # a kill between the fallback's two renames
    restore_folder(out)
    assert (out / "report.html").read_text() == "new" and sorted(os.listdir(tmp_path)) == ["rep"]


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    from pipelines.common.spec_file import load_spec
    from pipelines.engine.sweep import run_sweep

    tmp = tmp_path_factory.mktemp("atomic")
    (tmp / "a.yaml").write_text(SPEC.format(data=tmp / "data"))
    stores = [f"sqlite:///{tmp}/optuna.db", f"sqlite:///{tmp}/mlflow.db"]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("VAE_RUNS_DIR", str(tmp / "runs"))
        assert run_sweep(load_spec(tmp / "a.yaml"), *stores, progress=False).complete == 1
    return tmp, ["--storage", stores[0], "--tracking-uri", stores[1]]


def report(tmp: Path, stores: list[str], fault: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "VAE_FAULT"} | ({"VAE_FAULT": fault} if fault else {})
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1])
    return subprocess.run([sys.executable, "-m", "pipelines.cli", "report", "--study", "a", "--out", "rep", *stores],
                          cwd=tmp, env=env, capture_output=True, text=True, timeout=600)


def mark_earlier(folder: Path) -> None:
    """Make the report's verdict.json tell this report apart, as the report itself had written it
    (its manifest says so: a file edited behind a report's back is the user's, and never replaced)."""
    import hashlib
    import json

    from pipelines.report.folder import MANIFEST

    (folder / "verdict.json").write_text('{"earlier": true}\n')
    manifest = json.loads((folder / MANIFEST).read_text())
    manifest["files"]["verdict.json"] = hashlib.sha256(b'{"earlier": true}\n').hexdigest()
    (folder / MANIFEST).write_text(json.dumps(manifest))


@pytest.mark.parametrize("signal, code, line", [("TERM", 143, "terminated (SIGTERM)"), ("KILL", -9, None)])
def test_a_killed_report_leaves_the_earlier_one_intact(study, signal, code, line):
    tmp, stores = study
    if not (tmp / "rep").exists():
        first = CliRunner().invoke(cli, ["report", "--study", "a", "--out", str(tmp / "rep"), *stores])
        assert first.exit_code == 0, first.output
        mark_earlier(tmp / "rep")  # tell the earlier report apart
    before = snapshot(tmp / "rep")
    assert {"report.html", "verdict.json", "table.csv"} <= before.keys()

    # every new file is written, the swap not yet made: the latest moment a kill can find
    done = report(tmp, stores, fault=f"report-written@{signal}")

    assert done.returncode == code, done.stderr
    if line:
        assert done.stderr.strip().splitlines()[-1] == line and "Traceback" not in done.stderr
    assert snapshot(tmp / "rep") == before  # the earlier report, whole: no new verdict beside an old page
    again = report(tmp, stores)  # and the next report replaces it whole, leaving nothing aside
    assert again.returncode == 0, again.stderr
    assert (tmp / "rep" / "verdict.json").read_text() != '{"earlier": true}\n'
    assert not [p.name for p in tmp.iterdir() if p.name.startswith(".rep")]
    mark_earlier(tmp / "rep")
