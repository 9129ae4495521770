"""The β-conditional model's continuum: the scan a trial logs, and the verdict's reading of it."""

import json

import pytest

from pipelines.report.continuum import judge
from vae.continuum import SCAN_POINTS, scan_betas
from vae.train import train

BETAS = [0.05, 0.005]


def test_the_scan_reads_the_whole_range_and_agrees_with_the_grid_betas_own_numbers(tiny, tmp_path):
    cfg = tiny(betas=BETAS, epochs=2, iw_samples=0)
    history = train(cfg)
    points = json.loads((tmp_path / "run" / "continuum.json").read_text())
    betas = [p["beta"] for p in points]
    lo, hi = cfg.training_range
    assert len(betas) == SCAN_POINTS + len(BETAS) and betas == sorted(betas)
    assert betas[0] == pytest.approx(lo) and betas[-1] == pytest.approx(hi)  # the whole trained range
    assert [p["beta"] for p in points if p["grid"]] == sorted(BETAS)
    last = history[-1]
    for p in points:
        if p["grid"]:  # the same model, images and estimators as the grid's own validation numbers
            b = f"b{p['beta']:g}/val/"
            assert p["r_loss"] == last[b + "r_loss"] and p["elbo_bpd"] == last[b + "elbo_bpd"]
            assert p["r_loss_se"] == last[b + "r_loss_se"]
    # R-loss falls as beta falls along the continuum (the trade-off the model learned), roughly
    assert points[0]["kl"] > points[-1]["kl"]


def test_scan_betas_are_log_spaced_and_include_the_grid():
    betas = scan_betas((0.001, 1.0), [0.1, 0.01, 0.005])
    assert {0.1, 0.01, 0.005} <= set(betas) and len(betas) == SCAN_POINTS + 3  # no grid beta on the lattice
    assert scan_betas((0.001, 1.0), [])[4] == pytest.approx(10 ** -1.5, rel=1e-5)


def _scan(values, grid, se=0.001, fid=None):
    """A scan whose −ELBO (or R-loss and FID) at each beta is given."""
    out = []
    for i, (b, e) in enumerate(values):
        p = {"beta": b, "grid": b in grid, "kl": 10.0 / b, "r_loss": e, "r_loss_se": se, "elbo_bpd": e,
             "elbo_bpd_se": se}
        if fid is not None:
            p |= {"fid": fid[i], "fid_se": 1.0, "fid_samples": 1000}
        out.append(p)
    return out


def test_the_continuums_best_beats_the_grid_only_beyond_noise():
    grid = [0.1, 0.01]
    # best between the grid's betas, by 0.1 bits/dim against noise ±0.003: it beats the grid
    c = judge([_scan([(0.1, 6.5), (0.03, 6.0), (0.01, 6.1), (0.001, 6.4)], grid)], "likelihood")
    assert (c["best_beta"], c["grid_best_beta"], c["beats_grid"]) == (0.03, 0.01, True)
    # the same by 0.001: within noise, the grid's best stands
    c = judge([_scan([(0.1, 6.5), (0.03, 6.099), (0.01, 6.1), (0.001, 6.4)], grid)], "likelihood")
    assert c["best_beta"] == 0.03 and not c["beats_grid"]
    # two seeds that disagree: their spread is the noise
    a = _scan([(0.1, 6.5), (0.03, 5.5), (0.01, 6.1)], grid)
    b = _scan([(0.1, 6.5), (0.03, 6.6), (0.01, 6.1)], grid)
    c = judge([a, b], "likelihood")
    assert c["best_beta"] == 0.03 and c["seeds"] == 2 and not c["beats_grid"]
    # the balance rule with FID on every point: better FID, worse R-loss beyond noise -> no win
    c = judge([_scan([(0.1, 0.03), (0.03, 0.02), (0.01, 0.01)], grid, se=0.0001, fid=[300, 90, 200])], "balance")
    assert c["kind"] == "balance" and c["best_beta"] == 0.03 and not c["beats_grid"]
