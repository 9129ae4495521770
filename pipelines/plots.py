"""matplotlib figures shared by tracking (per trial) and the report (per study)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # headless: files only, never a window
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402


def loss_curves(history: list[dict], title: str = ""):
    """Train and test R-loss and KLD-loss per epoch (per image)."""
    epochs = [m["epoch"] for m in history]
    fig, axes = plt.subplots(1, 2, figsize=(8, 3), constrained_layout=True)
    for ax, term, label in ((axes[0], "r_loss", "R-loss (SSE / D)"), (axes[1], "kld_loss", "KLD-loss (KL / z)")):
        for split, style in (("train", "--"), ("test", "-")):
            if f"{split}/{term}" in history[0]:  # a conditional model's beta rows: no train/ of their own
                ax.plot(epochs, [m[f"{split}/{term}"] for m in history], style, label=split)
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0].legend()
    if title:
        fig.suptitle(title)
    return fig


def _trend(table, x_col: str, y_col: str) -> list[int]:
    """Per z-dim with >= 2 points: the sign of the rank correlation of y with x (0 if none)."""
    signs = []
    for _, rows in table.dropna(subset=[x_col, y_col]).groupby("Z-dim"):
        if len(rows) >= 2:
            rho = rows[x_col].rank().corr(rows[y_col].rank())
            signs.append(0 if rho != rho else (1 if rho > 0 else -1 if rho < 0 else 0))
    return signs


def _by_z_dim(ax, table, x_col: str, y_col: str, dead=None):
    """One line per z-dim through its beta rows (labelled), a star for sigma-vae, a cross on collapsed rows."""
    for z_dim, rows in table.dropna(subset=[x_col, y_col]).groupby("Z-dim", sort=True):
        betas = rows[rows["Loss"] == "beta"].sort_values(x_col)
        line = ax.plot(betas[x_col], betas[y_col], "o-", label=f"z-dim {z_dim}")[0]
        for _, row in betas.iterrows():
            ax.annotate(f"β={row['Beta']:g}", (row[x_col], row[y_col]), textcoords="offset points",
                        xytext=(4, 4), fontsize=8, color=line.get_color())
        sigma = rows[rows["Loss"] == "sigma-vae"]
        if len(sigma):  # self-balanced: no beta, so a marker of its own beside the beta line
            ax.plot(sigma[x_col], sigma[y_col], "*", ms=13, color=line.get_color(), label=f"z-dim {z_dim}, σ-VAE")
        if dead is not None and dead[rows.index].any():
            gone = rows[dead[rows.index]]
            labelled = "collapsed (AU = 0 or KL < 0.01 nats)" in ax.get_legend_handles_labels()[1]
            ax.plot(gone[x_col], gone[y_col], "x", ms=11, color="black", ls="none",
                    label=None if labelled else "collapsed (AU = 0 or KL < 0.01 nats)")


def rate_distortion(table, r_col: str = "R-loss", rate_col: str = "KL (nats)", dead=None):
    """R-loss against the rate, KL in nats per image (total over the latent, Alemi et al., 2018),
    on a log axis: comparable across z-dims, unlike KL per dimension."""
    fig, ax = plt.subplots(figsize=(6, 4.5), constrained_layout=True)
    _by_z_dim(ax, table, rate_col, r_col, dead)
    ax.set_xscale("log")
    # plain numbers (2, 5, 10, 20 ...) instead of overlapping "3×10⁰4×10⁰" labels
    ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(matplotlib.ticker.FuncFormatter(
        lambda v, _: f"{v:g}" if f"{v:g}"[0] in "25" else ""))
    ax.set_xlabel("rate: KL(q(z|x) ‖ p(z)) in nats per image (log scale)")
    ax.set_ylabel("R-loss (SSE / (H·W·C), per image)")
    signs = _trend(table, rate_col, r_col)
    shown = ("more rate gave lower R-loss at every z-dim" if signs and all(v < 0 for v in signs)
             else "no consistent rate–distortion trend across z-dims" if signs else "too few points per z-dim for a trend")
    ax.set_title(f"rate–distortion (test split): {shown}", fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return fig


def generation_vs_reconstruction(table, r_col: str = "R-loss", fid_col: str = "FID (samples)", dead=None):
    """FID of prior samples against R-loss, one point per row: the original README's trade-off,
    good reconstruction vs good generation, as measured. Crosses mark collapsed models."""
    fig, ax = plt.subplots(figsize=(6, 4.5), constrained_layout=True)
    _by_z_dim(ax, table, r_col, fid_col, dead)
    ax.set_xlabel("R-loss (SSE / (H·W·C), per image; evaluation subset)")
    ax.set_ylabel("FID of prior samples (lower: better generation)")
    rows = table.dropna(subset=[r_col, fid_col])
    if dead is not None:
        rows = rows[~dead[rows.index]]  # the title speaks of the models that did not collapse
    if len(rows) >= 2:
        best_r, best_g = rows[r_col].idxmin(), rows[fid_col].idxmin()
        shown = ("one model has both the best reconstruction and the best generation" if best_r == best_g
                 else "the best reconstruction and the best generation are different models")
        signs = _trend(table, r_col, fid_col)
        if signs and all(v < 0 for v in signs):
            shown += "; lower R-loss came with higher FID at every z-dim (a trade-off)"
        elif signs and all(v > 0 for v in signs):
            shown += "; lower R-loss came with lower FID at every z-dim (no trade-off)"
    else:
        shown = "fewer than two models with FID that did not collapse"
    ax.set_title(f"generation vs reconstruction: {shown}", fontsize=9, wrap=True)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
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
