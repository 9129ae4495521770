"""The README's first example, sweeps/quick.yaml, trains real models: no row collapses and beta matters.

This runs the shipped spec unchanged (about a minute on two cores), so a change of model or
training defaults that brings back the all-collapsed demo fails here.
"""

from pathlib import Path

from pipelines.common.spec_file import load_spec
from pipelines.engine.sweep import run_sweep
from pipelines.report.data import build
from pipelines.report.fetch import load_runs
from pipelines.tracking.runs import Tracker
from vae.collapse import collapsed

QUICK = Path(__file__).parent.parent / "sweeps" / "quick.yaml"


def test_quick_spec_gives_a_non_trivial_table(tmp_path):
    spec = load_spec(QUICK, [f"data_dir={tmp_path / 'data'}"])
    tracking = f"sqlite:///{tmp_path}/mlflow.db"
    summary = run_sweep(spec, f"sqlite:///{tmp_path}/optuna.db", tracking, progress=False)
    assert summary.complete == spec.total == 4
    table = build(spec.study, load_runs(spec.study, Tracker(tracking))[1]).table
    assert len(table) == 4
    for _, row in table.iterrows():
        assert row["AU"] >= 1 and not collapsed(row["AU"], row["KL (nats)"]), dict(row)
    for z_dim, rows in table.groupby("Z-dim"):
        r_loss = rows["R-loss"]
        assert r_loss.max() >= 1.2 * r_loss.min(), (z_dim, list(r_loss))  # beta moves the balance
        # smaller beta, better reconstruction: the trend of the original table
        assert rows.sort_values("Beta")["R-loss"].is_monotonic_increasing, (z_dim, list(r_loss))
