"""Between and beyond the grid: the β-conditional model's continuum (vae/continuum.py), judged.

    scans = fetch_continua(rep, tracker)           # z-dim -> [continuum.json of each seed's model]
    c = judge(scans[100], kind="balance")          # its best beta, against the grid's best on it
    fig = figure(scans)                            # R-loss (and FID) against beta, grid betas marked

The scan is read, never computed, here: the trial measured it once at its end and logged it as
its run's `continuum.json`. Several seeds' scans are averaged per beta (the standard error over
seeds where several ran, else the estimators' own). The rule is the verdict's
(pipelines/report/verdict.py): with FID on every point, the smallest R/R* + FID/FID* (R*, FID* the
best on the scan), else the lowest validation −ELBO in bits/dim. The continuum's best beats the
grid when it is better beyond noise (2 standard errors of the difference) on a deciding number
than the best of the scan's grid betas, and worse beyond noise on none: both read off the same
model with the same estimators, so the comparison is fair even though the scan's FID uses fewer
samples than the table's.
"""

from __future__ import annotations

import json
import math
import tempfile

import pandas as pd

Z_SE = 2.0
COLS = {"r_loss": "validation R-loss", "fid": "validation FID", "elbo_bpd": "validation −ELBO (bits/dim)"}


def fetch_continua(rep, tracker) -> dict[int, list[list[dict]]]:
    """z-dim -> the continuum.json of each β-conditional model behind the study's rows."""
    out: dict[int, list[list[dict]]] = {}
    if "tags.vae.trained_by" not in rep.runs:
        return out
    rows = rep.runs.dropna(subset=["tags.vae.trained_by"])
    for run_id, z_dim in rows.groupby("tags.vae.trained_by")["z_dim"].first().items():
        with tempfile.TemporaryDirectory() as tmp:
            local = tracker.download(run_id, "continuum.json", tmp)
            if local is not None:  # runs from before the scan: nothing to read
                points = json.loads(local.read_text())
                if points:
                    out.setdefault(int(z_dim), []).append(points)
    return out


def average(scans: list[list[dict]]) -> pd.DataFrame:
    """One row per beta: the mean over the scans (seeds) and its standard error."""
    frame = pd.DataFrame([p for s in scans for p in s])
    cols = [c for c in COLS if c in frame and frame[c].notna().all()]
    g = frame.groupby("beta")
    mean = g[cols + ["kl"]].mean()
    n = g.size()
    for c in cols:
        own = g[f"{c}_se"].mean() if f"{c}_se" in frame else pd.Series(0.0, index=mean.index)
        spread = g[c].std() / n.pow(0.5)
        mean[f"{c}_se"] = spread.where(n > 1, own).fillna(own)
    mean["grid"] = g["grid"].first() if "grid" in frame else False
    mean["seeds"] = n
    if "fid_samples" in frame:
        mean["fid_samples"] = g["fid_samples"].first()
    return mean.reset_index()


def _scores(t: pd.DataFrame, kind: str) -> pd.Series:
    if kind == "balance":
        return t["r_loss"] / t["r_loss"].min() + t["fid"] / t["fid"].min()
    return t["elbo_bpd"]


def judge(scans: list[list[dict]], kind: str) -> dict | None:
    """The continuum's best beta by the verdict's rule, and whether it beats the grid's best on it."""
    t = average(scans)
    if t.empty or not t["grid"].any():
        return None
    kind = "balance" if kind == "balance" and "fid" in t else "likelihood"
    cols = ["r_loss", "fid"] if kind == "balance" else ["elbo_bpd"]
    scores = _scores(t, kind)
    best, grid_best = scores.idxmin(), scores[t["grid"]].idxmin()
    phrases, better, worse = [], False, False
    for c in cols:
        diff = float(t.at[best, c] - t.at[grid_best, c])
        noise = Z_SE * math.hypot(t.at[best, f"{c}_se"], t.at[grid_best, f"{c}_se"])
        better |= diff < -noise
        worse |= diff > noise
        phrases.append(f"{COLS[c]} {diff:+.4g} (noise threshold ±{noise:.2g})")
    beats = bool(best != grid_best and better and not worse)
    return {"kind": kind, "betas": int(len(t)), "range": [float(t["beta"].min()), float(t["beta"].max())],
            "best_beta": float(t.at[best, "beta"]), "grid_best_beta": float(t.at[grid_best, "beta"]),
            "best": {c: float(t.at[best, c]) for c in cols}, "grid_best": {c: float(t.at[grid_best, c]) for c in cols},
            "beats_grid": beats, "margin": "; ".join(phrases), "seeds": int(t["seeds"].max()),
            "fid_samples": int(t["fid_samples"].max()) if "fid_samples" in t and kind == "balance" else None}


def sentence(c: dict, z_dim: int, command: str | None) -> str:
    """The verdict's line on the continuum."""
    fid = f", FID from {c['fid_samples']:,} samples per β" if c.get("fid_samples") else ""
    head = (f"the β-conditional model at z-dim {z_dim}, read at {c['betas']} betas over {c['range'][0]:.2g}–"
            f"{c['range'][1]:.2g} on the validation split{fid}, is best at β {c['best_beta']:.3g}")
    if c["best_beta"] == c["grid_best_beta"]:
        return head + ", a grid beta: the grid's best stands"
    if not c["beats_grid"]:
        return head + (f", within noise of the grid's best there (β {c['grid_best_beta']:g}: {c['margin']}): "
                       "the grid's best stands")
    return head + (f", better beyond noise than the grid's best there (β {c['grid_best_beta']:g}: {c['margin']})"
                   + (f"; `{command}` trains it as an independent model" if command else ""))


def figure(scans: dict[int, list[list[dict]]], chosen: dict | None = None):
    """Validation R-loss (and FID, right axis) of each z-dim's conditional model against beta, the
    grid's betas marked, the continuum's best starred."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8.5, 5), constrained_layout=True)
    right = None
    for z_dim in sorted(scans):
        t = average(scans[z_dim]).sort_values("beta")
        line = ax.plot(t["beta"], t["r_loss"], "-", lw=2, label=f"z-dim {z_dim}: validation R-loss")[0]
        grid = t[t["grid"]]
        ax.plot(grid["beta"], grid["r_loss"], "o", color=line.get_color(), ms=7, label=f"z-dim {z_dim}: grid betas")
        other = "fid" if "fid" in t and t["fid"].notna().all() else "elbo_bpd"
        right = right or ax.twinx()
        right.plot(t["beta"], t[other], "--", lw=1.5, color=line.get_color(), alpha=0.7,
                   label=f"z-dim {z_dim}: {COLS[other]} (dashed)")
        right.plot(grid["beta"], grid[other], "s", mfc="none", color=line.get_color(), ms=7)
        right.set_ylabel(f"{COLS[other]} (dashed)")
        c = (chosen or {}).get(str(z_dim))
        if c:
            b = c["best_beta"]
            y = float(t.loc[(t["beta"] - b).abs().idxmin(), "r_loss"])
            ax.plot([b], [y], "*", ms=16, color="#d62728", zorder=5, label=f"z-dim {z_dim}: continuum's best, β {b:.3g}")
    ax.set_xscale("log")
    ax.set_xlabel("β (the conditional model's input)")
    ax.set_ylabel("validation R-loss (per pixel)")
    ax.grid(alpha=0.3, which="both")
    handles, labels = ax.get_legend_handles_labels()
    if right is not None:
        h2, l2 = right.get_legend_handles_labels()
        handles, labels = handles + h2, labels + l2
    ax.legend(handles, labels, fontsize=8, loc="upper left")
    ax.set_title("the β-conditional model between and beyond the grid (validation split)", fontsize=10)
    return fig
