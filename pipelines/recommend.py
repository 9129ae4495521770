"""Recommendations from the balance table: plain rules, each stated with its result.

They weigh both sides of the trade-off the original README described (good reconstruction vs
good generation): per z-dim, the models on the Pareto front of (R-loss, FID of prior samples),
both measured on the evaluation subset of the test split, naming the best for generation, the
best for reconstruction and a balanced choice. Collapsed models (vae/collapse.py: AU = 0 or
KL < 0.01 nats per image) are never recommended. Without FID (old runs, fid_samples 0) the rule
falls back to the importance-weighted NLL.
"""

from __future__ import annotations

import math

import pandas as pd

from vae.collapse import collapsed


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats in both coordinates (both minimised)."""
    return [i for i, (a, b) in enumerate(points)
            if not any(c <= a and d <= b and (c, d) != (a, b) for c, d in points)]


def _label(row) -> str:
    return "σ-VAE" if row["Loss"] == "sigma-vae" else f"beta {row['Beta']:g}"


def is_collapsed(row) -> bool:
    return collapsed(row.get("AU"), row.get("KL (nats)"))


def recommendations(t: pd.DataFrame) -> list[str]:
    """Plain rules on the balance table (pipelines/report.py), each stated with its result."""
    lines = []
    r_col = "_r_loss_eval" if "_r_loss_eval" in t and t["_r_loss_eval"].notna().any() else "R-loss"
    for z, rows in t.groupby("Z-dim"):
        dead = rows[rows.apply(is_collapsed, axis=1)]
        if len(dead):
            lines.append(f"z-dim {z}: {', '.join(_label(r) for _, r in dead.iterrows())} collapsed "
                         f"(AU = 0 or KL < 0.01 nats per image): never recommended.")
        alive = rows.drop(dead.index).dropna(subset=[r_col, "FID (samples)"])
        if alive.empty:
            continue
        front = alive.iloc[pareto_front(list(zip(alive[r_col], alive["FID (samples)"])))]
        gen, rec = front.loc[front["FID (samples)"].idxmin()], front.loc[front[r_col].idxmin()]
        spread = front[[r_col, "FID (samples)"]]
        scaled = (spread - spread.min()) / (spread.max() - spread.min()).replace(0, 1)
        balanced = front.loc[scaled.sum(axis=1).idxmin()]
        names = ", ".join(_label(r) for _, r in front.sort_values(r_col).iterrows())
        if len(front) == 1:
            lines.append(f"z-dim {z}: {names} has both the lowest R-loss ({rec[r_col]:.4g}) and the lowest FID "
                         f"({gen['FID (samples)']:.1f}) of the models that did not collapse (rule: Pareto front of "
                         f"(R-loss, FID of samples) on the evaluation subset).")
            continue
        lines.append(
            f"z-dim {z}: Pareto front of (R-loss, FID of samples) on the evaluation subset: {names}. "
            f"Best generation: {_label(gen)} (FID {gen['FID (samples)']:.1f}, R-loss {gen[r_col]:.4g}); "
            f"best reconstruction: {_label(rec)} (R-loss {rec[r_col]:.4g}, FID {rec['FID (samples)']:.1f}); "
            f"balanced: {_label(balanced)} (rule: on the front, the smallest sum of R-loss and FID each "
            f"scaled to 0–1 over the front).")
    if "NLL (bits/dim)" in t and ("FID (samples)" not in t or t["FID (samples)"].isna().all()):
        for z, rows in t[(t["Loss"] == "beta") & ~t.apply(is_collapsed, axis=1)].groupby("Z-dim"):
            best = rows.loc[rows["NLL (bits/dim)"].idxmin()]
            lines.append(f"z-dim {z}: beta {best['Beta']:g} has the best importance-weighted NLL "
                         f"({best['NLL (bits/dim)']:.3f} bits/dim) of the betas tried "
                         f"(rule: lowest NLL, which rewards neither blur nor an unused prior).")
    if "AU" in t:
        for z, rows in t[~t.apply(is_collapsed, axis=1)].groupby("Z-dim"):
            au = rows["AU"].max()
            verdict = ("all dimensions are used: a larger z-dim may help" if au >= 0.9 * z
                       else f"at most {au:.0f} of {z} dimensions are active: a z-dim near {max(1, math.ceil(au)):d} suffices at these betas")
            lines.append(f"z-dim {z}: {verdict} (rule: active units, Cov_x E[z_u|x] > 0.01, Burda et al. 2016).")
    return lines
