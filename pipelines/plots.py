"""matplotlib figures shared by tracking (per trial) and the report (per study)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # headless: files only, never a window
import matplotlib.pyplot as plt  # noqa: E402


def loss_curves(history: list[dict], title: str = ""):
    """Train and test R-loss and KLD-loss per epoch (per image)."""
    epochs = [m["epoch"] for m in history]
    fig, axes = plt.subplots(1, 2, figsize=(8, 3), constrained_layout=True)
    for ax, term, label in ((axes[0], "r_loss", "R-loss (SSE / D)"), (axes[1], "kld_loss", "KLD-loss (KL / z)")):
        for split, style in (("train", "--"), ("test", "-")):
            ax.plot(epochs, [m[f"{split}/{term}"] for m in history], style, label=split)
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0].legend()
    if title:
        fig.suptitle(title)
    return fig


def rate_distortion(table, r_col: str = "R-loss", kld_col: str = "KLD-loss"):
    """KLD-loss against R-loss, one line per z-dim, points labelled by beta (or sigma-vae)."""
    fig, ax = plt.subplots(figsize=(6, 4.5), constrained_layout=True)
    for z_dim, rows in table.groupby("Z-dim", sort=True):
        betas = rows[rows["Loss"] == "beta"].sort_values(kld_col)
        line = ax.plot(betas[kld_col], betas[r_col], "o-", label=f"z-dim {z_dim}")[0]
        for _, row in betas.iterrows():
            ax.annotate(f"β={row['Beta']:g}", (row[kld_col], row[r_col]), textcoords="offset points",
                        xytext=(4, 4), fontsize=8, color=line.get_color())
        sigma = rows[rows["Loss"] == "sigma-vae"]
        if len(sigma):  # self-balanced: no beta, so a marker of its own beside the beta line
            ax.plot(sigma[kld_col], sigma[r_col], "*", ms=13, color=line.get_color(), label=f"z-dim {z_dim}, σ-VAE")
    ax.set_xlabel("KLD-loss (KL nats / z-dim, per image)")
    ax.set_ylabel("R-loss (SSE / (H·W·C), per image)")
    ax.set_title("rate–distortion: smaller beta → more KL, better reconstruction")
    ax.grid(alpha=0.3)
    ax.legend()
    return fig


def kl_per_dim(curves: dict[str, list[float]]):
    """Sorted per-dimension KL of each run (one line per label)."""
    fig, ax = plt.subplots(figsize=(6, 3.5), constrained_layout=True)
    for label, values in curves.items():
        ax.plot(range(1, len(values) + 1), values, label=label)
    ax.axhline(0.01, color="grey", lw=0.8, ls=":")
    ax.set_yscale("symlog", linthresh=0.01)
    ax.set_ylim(bottom=0)
    ax.set_xlabel("latent dimension (sorted by KL)")
    ax.set_ylabel("KL (nats)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    return fig
