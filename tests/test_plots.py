"""What a reader of the figures relies on: whole-epoch ticks, reference lines that say what they are,
image grids whose rows and panels are named."""

import pytest

from pipelines.report import plots


def history(epochs):
    return [{"epoch": e, "train/r_loss": 0.1 / e, "val/r_loss": 0.11 / e, "train/kld_loss": 0.5,
             "val/kld_loss": 0.6} for e in range(1, epochs + 1)]


@pytest.mark.parametrize("epochs", [2, 3, 7])
def test_epoch_axes_have_whole_ticks(epochs):
    for fig in (plots.loss_curves(history(epochs)), plots.validation_curves({"a": history(epochs), "b": history(epochs)})):
        fig.canvas.draw()
        for ax in fig.axes:
            assert ax.get_xlabel() == "epoch"
            lo, hi = ax.get_xlim()
            ticks = [t for t in ax.get_xticks() if lo <= t <= hi]
            assert len(ticks) >= 2 and all(t == int(t) for t in ticks), ticks  # not 1.0, 1.5, 2.0
        plots.plt.close(fig)


def test_threshold_line_on_the_kl_plot_is_labelled():
    from vae.collapse import COLLAPSE_KL_NATS

    fig = plots.kl_per_dim({"z2-b0.1": [0.5, 0.001], "z4-b0.01": [2.0, 1.0, 0.2, 0.05]})
    ax = fig.axes[0]
    dotted = [line for line in ax.get_lines() if line.get_linestyle() == ":"]
    assert len(dotted) == 1 and set(dotted[0].get_ydata()) == {COLLAPSE_KL_NATS}
    handles, labels = ax.get_legend_handles_labels()
    assert dotted[0] in handles and "collapsed" in labels[handles.index(dotted[0])] and "0.01 nats" in labels[handles.index(dotted[0])]
    label = labels[handles.index(dotted[0])]
    assert f"{COLLAPSE_KL_NATS:g} nats" in label
    shown = [t.get_text() for legend in [*fig.legends, ax.get_legend()] if legend for t in legend.get_texts()]
    assert label in shown  # drawn in a legend, not only attached to the line
    plots.plt.close(fig)


def test_image_grids_are_labelled(tmp_path):
    import torch
    from torchvision.utils import save_image

    from vae.images import recon_grid, sample_grid

    class Tiny(torch.nn.Module):  # stands in for a VAE: encode/decode/sample on 8x8 images
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def encode(self, x):
            return x.mean((1, 2, 3))[:, None], None

        def decode(self, z):
            return z[:, :, None, None].expand(-1, 1, 8, 8)

        def sample(self, n, generator=None):
            return torch.rand(n, 1, 8, 8, generator=generator)

    x = (torch.rand(20, 1, 8, 8) * 255).to(torch.uint8)
    save_image(recon_grid(Tiny(), x), tmp_path / "recon.png")
    save_image(sample_grid(Tiny()), tmp_path / "samples.png")
    fig = plots.image_grids(tmp_path / "recon.png", tmp_path / "samples.png", "z-dim = 2; β = 0.1; seed 0")
    left, right = fig.axes
    rows = [t.get_text() for t in left.get_yticklabels()]
    assert rows == ["originals", "reconstructions", "originals", "reconstructions"]
    height = left.get_images()[0].get_array().shape[0]
    ticks = left.get_yticks()  # each label at the middle of its row of images (image y runs downwards)
    assert [round(t / height * 4 - 0.5) for t in ticks] == [0, 1, 2, 3]
    assert "samples" in right.get_title() and "reconstructions" in left.get_title()
    assert fig._suptitle.get_text() == "z-dim = 2; β = 0.1; seed 0"
    plots.plt.close(fig)
