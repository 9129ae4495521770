"""z-dim × beta heatmaps of the balance table: where people would rather look than read.

    fig = heatmaps(report.table, report.std, chosen=3)   # R-loss, KL, NLL, FID panels; row 3 marked

One panel per measured column (R-loss, KL, NLL, FID of samples; a column no run measured is left
out), z-dim down, beta across in the original's order (large to small) with a σ-VAE column where
the study has one. Each cell states its value (± the spread over seeds where several ran); the
verdict's cell (pipelines/report/verdict.py) is outlined. Only for grids: a sampler's betas are no grid.
"""

from __future__ import annotations

import math

import numpy as np

from pipelines.report.plots import plt

PANELS = [("R-loss", "R-loss (test)"), ("KL (nats)", "KL, nats (test; the rate)"), ("NLL (bits/dim)", "NLL, bits/dim"),
          ("FID (samples)", "FID of prior samples")]
MAX_AXIS = 12  # more distinct values than this is a sampler's cloud, not a grid


def grid_rows(table):
    """The rows a heatmap shows (one training kind: independent where a study mixes both), or None."""
    t = table
    if "Training" in t and t["Training"].nunique() > 1:
        t = t[t["Training"] == "independent"]
    betas = t.loc[t["Loss"] == "beta", "Beta"].unique()
    if len(t) < 2 or len(betas) > MAX_AXIS or t["Z-dim"].nunique() > MAX_AXIS:
        return None
    return t


def heatmaps(table, std=None, chosen=None):
    """The figure, or None when the study is no grid (or has a single row)."""
    t = grid_rows(table)
    if t is None:
        return None
    panels = [(c, title) for c, title in PANELS if c in t and t[c].notna().any()]
    zs = sorted(t["Z-dim"].unique())
    betas = sorted(t.loc[t["Loss"] == "beta", "Beta"].unique(), reverse=True)
    cols = [f"{b:g}" for b in betas] + (["σ-VAE"] if (t["Loss"] == "sigma-vae").any() else [])

    def cell(row):
        return zs.index(row["Z-dim"]), cols.index("σ-VAE" if row["Loss"] == "sigma-vae" else f"{row['Beta']:g}")

    width = max(3.2, 0.9 * len(cols) + 1.4)
    fig, axes = plt.subplots(1, len(panels), figsize=(width * len(panels), 0.7 * len(zs) + 1.9),
                             constrained_layout=True, squeeze=False)
    fig.suptitle("brighter: lower", fontsize=9)
    for k, (ax, (col, title)) in enumerate(zip(axes[0], panels)):
        values = np.full((len(zs), len(cols)), np.nan)
        for _, row in t.iterrows():
            values[cell(row)] = row[col]
        ax.imshow(values, cmap="viridis_r", aspect="auto")  # bright: low, which is better for all four
        finite = values[np.isfinite(values)]
        mid = (finite.min() + finite.max()) / 2 if finite.size else 0
        for i, row in t.iterrows():
            (r, c), v = cell(row), row[col]
            if math.isnan(v):
                continue
            text = f"{v:.3g}"
            if std is not None and col in std and row.get("Seeds", 1) > 1 and not math.isnan(std.at[i, col]):
                text += f"\n± {std.at[i, col]:.2g}"
            ax.text(c, r, text, ha="center", va="center", fontsize=8, color="black" if v < mid else "white")
        if chosen is not None and chosen in t.index:
            r, c = cell(t.loc[chosen])
            ax.add_patch(plt.Rectangle((c - 0.5, r - 0.5), 1, 1, fill=False, edgecolor="#d62728", linewidth=3,
                                       label="the verdict"))
            if k == 0:
                ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.18), fontsize=8, frameon=False)
        ax.set_xticks(range(len(cols)), cols)
        ax.set_yticks(range(len(zs)), [str(z) for z in zs])
        ax.set_xlabel("beta")
        ax.set_ylabel("z-dim")
        ax.set_title(title, fontsize=10)
    return fig
