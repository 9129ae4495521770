"""The figure a trial logs to its own MLflow run: its loss curves, epoch by epoch.

    fig = loss_curves(history, title="z16-b0.01-t2")   # logged as loss_curves.png (pipelines/tracking/runs.py)
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # headless: files only, never a window
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402


def epoch_axis(ax) -> None:
    """Whole epochs only: a 3-epoch run gets ticks 1, 2, 3, not 1.0, 1.5, 2.0."""
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))


def loss_curves(history: list[dict], title: str = ""):
    """Train and validation R-loss and KLD-loss per epoch (per image): the curves measured every
    epoch (the test split's are at test_every epochs, its whole split once)."""
    epochs = [m["epoch"] for m in history]
    fig, axes = plt.subplots(1, 2, figsize=(8, 3), constrained_layout=True)
    for ax, term, label in ((axes[0], "r_loss", "R-loss (SSE / D)"), (axes[1], "kld_loss", "KLD-loss (KL / z)")):
        for split, style, name in (("train", "--", "train"), ("val", "-", "validation")):
            if f"{split}/{term}" in history[0]:  # a conditional model's beta rows: no train/ of their own
                ax.plot(epochs, [m.get(f"{split}/{term}") for m in history], style, label=name)
        epoch_axis(ax)
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0].legend()
    if title:
        fig.suptitle(title)
    return fig
