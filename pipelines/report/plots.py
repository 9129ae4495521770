"""The report's matplotlib figures (a trial's own loss curves: pipelines/tracking/figures.py).

    files = report_figures(report.table, report.dead, artifacts, out)   # name -> PNG, for the page

Figures take plain data (the balance table, per-run histories), never MLflow or Optuna objects.
Epoch axes have integer ticks; every reference line is in the legend, saying what it is.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: files only, never a window
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402

from pipelines.tracking.figures import epoch_axis as _epoch_axis  # noqa: E402
from pipelines.tracking.figures import loss_curves  # noqa: E402, F401  (the report draws them too)

DPI = 110


def save(fig, path: Path) -> Path:
    from vae.atomic import atomic_write

    try:  # whole or not at all
        atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=DPI, format=Path(path).suffix[1:] or "png"))
    finally:
        plt.close(fig)
    return path


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


def _rate_distortion_axes(ax) -> None:
    """Rate (total KL, nats, log scale) on x, R-loss on y; plain tick numbers (2, 5, 10, 20 ...)
    instead of overlapping "3×10⁰4×10⁰" labels."""
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(matplotlib.ticker.FuncFormatter(
        lambda v, _: f"{v:g}" if f"{v:g}"[0] in "25" else ""))
    ax.set_xlabel("rate: KL(q(z|x) ‖ p(z)) in nats per image (log scale)")
    ax.set_ylabel("R-loss (SSE / (H·W·C), per image)")


def rate_distortion(table, r_col: str = "R-loss", rate_col: str = "KL (nats)", dead=None):
    """R-loss against the rate, KL in nats per image (total over the latent, Alemi et al., 2018),
    on a log axis: comparable across z-dims, unlike KL per dimension."""
    fig, ax = plt.subplots(figsize=(6, 4.5), constrained_layout=True)
    _by_z_dim(ax, table, rate_col, r_col, dead)
    _rate_distortion_axes(ax)
    signs = _trend(table, rate_col, r_col)
    shown = ("more rate gave lower R-loss at every z-dim" if signs and all(v < 0 for v in signs)
             else "no consistent rate–distortion trend across z-dims" if signs else "too few points per z-dim for a trend")
    ax.set_title(f"rate–distortion (test split): {shown}", fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return fig


def two_fronts(c):
    """Two studies' rate–distortion fronts on one figure: every row (KL in nats against R-loss, test
    split), each study's front (the rows no other row of it beats on both) joined, each verdict's row
    starred; shared rows or none, one picture of which study reaches lower R-loss at a rate."""
    fig, ax = plt.subplots(figsize=(8.5, 5.5), constrained_layout=True)
    for (name, table, v), colour in zip(zip((c.base, c.other), c.fronts, c.verdicts), ("C0", "C3")):
        t = table.dropna(subset=["KL (nats)", "R-loss"])
        dead = t[t["Status"] == "collapsed"] if "Status" in t else t.iloc[:0]
        t = t.drop(dead.index)
        if len(dead):
            ax.plot(dead["KL (nats)"].clip(lower=1e-3), dead["R-loss"], "x", color=colour, ms=8,
                    label=f"{name}: collapsed (AU = 0 or KL < 0.01 nats)")
        ax.plot(t["KL (nats)"], t["R-loss"], "o", color=colour, alpha=0.6, label=f"{name}: every row")
        front = t.sort_values("KL (nats)")
        front = front[front["R-loss"] <= front["R-loss"].cummin()]
        ax.plot(front["KL (nats)"], front["R-loss"], "-", color=colour, lw=2, label=f"{name}: its front")
        if v and v.get("trial") is not None and v.get("numbers", {}).get("test/kl") is not None:
            ax.plot([v["numbers"]["test/kl"]], [v["numbers"]["test/r_loss"]], "*", ms=16, color=colour,
                    markeredgecolor="black", label=f"{name}: verdict ({v['label']})")
    _rate_distortion_axes(ax)
    ax.set_title("two studies' rate–distortion fronts (test split): lower-left is better on both", fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return fig


def conditional_curve(curves: dict[int, list[dict]], points=None):
    """The continuous rate-distortion curve of each z-dim's beta-conditional model (rd_curve.json:
    R-loss against KL in nats at log-spaced betas over its training range, on the evaluation subset
    of the test split), with the models
    trained for one beta each (`points`: Z-dim, Beta, KL (nats), R-loss, Source) as markers; a
    dotted segment joins two sources' points of the same (z-dim, beta): the gap."""
    fig, ax = plt.subplots(figsize=(8.5, 6), constrained_layout=True)
    markers = {}
    for z_dim in sorted(curves):
        c = sorted(curves[z_dim], key=lambda r: r["kl"])
        line = ax.plot([r["kl"] for r in c], [r["r_loss"] for r in c], "-", lw=2, alpha=0.7,
                       label=f"z-dim {z_dim}: one β-conditional model, β {min(r['beta'] for r in c):.2g}–"
                             f"{max(r['beta'] for r in c):.2g}")[0]
        if points is None:
            continue
        mine = points[points["Z-dim"] == z_dim]
        for source, rows in mine.groupby("Source", sort=False):
            marker = markers.setdefault(source, "os^D"[len(markers) % 4])
            ax.plot(rows["KL (nats)"], rows["R-loss"], marker, ls="none", ms=7, mfc="none" if marker != "o" else None,
                    color=line.get_color(), label=f"z-dim {z_dim}: {source}")
        for beta, same in mine.groupby("Beta"):
            ax.plot(same["KL (nats)"], same["R-loss"], ":", lw=1, color="grey")
            first = same.iloc[0]
            ax.annotate(f"β={beta:g}", (first["KL (nats)"], first["R-loss"]), textcoords="offset points",
                        xytext=(-8, -12), ha="right", fontsize=7, color=line.get_color())
    _rate_distortion_axes(ax)
    ax.set_title("rate–distortion (evaluation subset of the test split):\none β-conditional model per z-dim (lines) "
                 "against one model per β", fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, loc="upper right")  # the curves fall from upper left to lower right
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
        if best_r == best_g:
            shown = "one model has both the best reconstruction and the best generation"
        elif _apart(rows, best_r, best_g, fid_col, "_val_fid_se") and _apart(rows, best_g, best_r, r_col, "_val_r_loss_se"):
            shown = "the best reconstruction and the best generation are different models"
        else:  # a gap of 0.1 FID against ±6.7 of noise names no second model
            shown = ("the best reconstruction and the best generation differ within noise: no model is better on "
                     "one without being as good, within noise, on the other")
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


def _apart(rows, a, b, col: str, se_col: str) -> bool:
    """Is row a worse than row b on `col` beyond noise (2 standard errors of the difference; `se_col`,
    the validation split's standard error of the same estimator, stands for it: the figure's
    numbers have none of their own)? Without standard errors, any difference counts."""
    diff = float(rows.at[a, col] - rows.at[b, col])
    if se_col not in rows or rows[se_col].isna().any():
        return diff > 0
    return diff > 2 * float((rows.at[a, se_col] ** 2 + rows.at[b, se_col] ** 2) ** 0.5)


def validation_curves(histories: dict[str, list[dict]]):
    """Validation R-loss and KLD-loss per epoch (measured every epoch, what models are chosen on),
    one line per run (label), the same colour in both panels."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6), layout="constrained")
    for label, history in histories.items():
        epochs = [h["epoch"] for h in history]
        line = axes[0].plot(epochs, [h.get("val/r_loss") for h in history], label=label)[0]
        axes[1].plot(epochs, [h.get("val/kld_loss") for h in history], color=line.get_color())
    axes[0].set_ylabel("validation R-loss (per image)")
    axes[1].set_ylabel("validation KLD-loss (per image)")
    for ax in axes:
        _epoch_axis(ax)
        ax.grid(alpha=0.3)
    fig.legend(fontsize=7, loc="outside right upper")  # beside the panels, never over a curve
    return fig


def kl_per_dim(curves: dict[str, list[float]]):
    """Sorted per-dimension KL of each run (one line per label), against the collapse threshold."""
    from vae.collapse import COLLAPSE_KL_NATS

    fig, ax = plt.subplots(figsize=(8, 3.8), layout="constrained")
    for label, values in curves.items():
        ax.plot(range(1, len(values) + 1), values, label=label)
    # a model whose total KL is below it has collapsed, so a dimension below it carries ~nothing
    ax.axhline(COLLAPSE_KL_NATS, color="grey", lw=0.8, ls=":",
               label=f"{COLLAPSE_KL_NATS:g} nats: a dimension below carries ~nothing\n(the whole model below it: collapsed)")
    ax.set_yscale("symlog", linthresh=COLLAPSE_KL_NATS)
    ax.set_ylim(bottom=0)
    ax.set_xlabel("latent dimension (sorted by KL)")
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.set_ylabel("KL (nats)")
    ax.grid(alpha=0.3)
    fig.legend(fontsize=7, loc="outside right upper")  # beside the axes: the threshold line stays visible
    return fig


def image_grids(recon: Path, samples: Path, caption: str):
    """A run's reconstruction grid (rows labelled originals / reconstructions, vae/images.py's
    layout) beside its prior samples, titled with the run's configuration."""
    import matplotlib.image

    from vae.images import recon_rows

    left, right = matplotlib.image.imread(recon), matplotlib.image.imread(samples)
    rows = recon_rows()
    # one figure pixel per grid pixel (room for the labels and titles around them): nothing blurred
    width, height = left.shape[1] + right.shape[1] + 150, max(left.shape[0], right.shape[0]) + 70
    fig, axes = plt.subplots(1, 2, figsize=(width / DPI, height / DPI), width_ratios=[left.shape[1], right.shape[1]],
                             constrained_layout=True)
    for ax, image in zip(axes, (left, right)):
        ax.imshow(image, interpolation="nearest", cmap="gray" if image.ndim == 2 else None)
        ax.set_xticks([])
        ax.tick_params(length=0)
        for side in ax.spines.values():
            side.set_visible(False)
    axes[0].set_yticks([(i + 0.5) * left.shape[0] / len(rows) for i in range(len(rows))], rows, fontsize=8)
    axes[0].set_title("test images and their reconstructions", fontsize=9)
    axes[1].set_yticks([])
    axes[1].set_title("samples from the prior N(0, I)", fontsize=9)
    fig.suptitle(caption, fontsize=10)
    return fig


def report_figures(table, dead, artifacts, out: Path, curve_points=None) -> dict[str, Path]:
    """The report's figures as PNG files in `out`: name -> path; each run's grids as "grid/<run>".
    `table`, `dead` and `artifacts`: pipelines/report/data.py's Report.table, Report.dead and Artifacts."""
    files = {"rate_distortion": save(rate_distortion(table, dead=dead), out / "rate_distortion.png")}
    if "FID (samples)" in table and table["FID (samples)"].notna().any():
        r_col = "_r_loss_eval" if "_r_loss_eval" in table else "R-loss"
        files["generation"] = save(generation_vs_reconstruction(table, r_col=r_col, dead=dead),
                                   out / "generation_vs_reconstruction.png")
    files["curves"] = save(validation_curves(artifacts.histories), out / "curves.png")
    if artifacts.rd_curves:
        files["conditional"] = save(conditional_curve(artifacts.rd_curves, curve_points), out / "conditional_rd.png")
    if artifacts.kl_per_dim:
        files["kl_per_dim"] = save(kl_per_dim(artifacts.kl_per_dim), out / "kl_per_dim.png")
    (out / "grids").mkdir(exist_ok=True)
    for label, grids in artifacts.grids.items():
        if {"recon", "samples"} <= grids.keys():
            fig = image_grids(grids["recon"], grids["samples"], artifacts.captions.get(label, label))
            files[f"grid/{label}"] = save(fig, out / "grids" / f"{label}.png")
    return files
