"""The fast trainer computes what the textbook loop computes (speed itself: benchmarks/train_speed.py)."""

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent.parent / "benchmarks"))

from conftest import make_image_folder  # noqa: E402
from textbook import textbook_train  # noqa: E402

from vae.config import TrainConfig  # noqa: E402
from vae.data import validation_indices  # noqa: E402
from vae.train import train  # noqa: E402


@pytest.mark.parametrize("options", [
    {},
    {"threads": 1},
    {"amp": False},
    pytest.param({"compile": True}, marks=pytest.mark.skipif(sys.platform != "linux", reason="inductor needs a compiler")),
])
def test_trainer_matches_the_textbook_loop(tmp_path, options):
    import torchvision

    folder = make_image_folder(tmp_path / "img", n_per_class=24, size=(8, 8))
    cfg = TrainConfig(dataset=f"folder:{folder}", data_dir=str(tmp_path / "data"), z_dim=3, width=4, beta=0.05,
                      epochs=2, batch_size=16, out=str(tmp_path / "run"), progress=False, iw_samples=0, device="cpu",
                      **options)
    threads = torch.get_num_threads()
    ours = train(cfg)
    torch.set_num_threads(threads)
    dataset = torchvision.datasets.ImageFolder(str(folder / "train"), transform=torchvision.transforms.ToTensor())
    train_part, _ = validation_indices(len(dataset), cfg.val_size)  # vae.train holds out a validation split
    dataset = torch.utils.data.Subset(dataset, train_part.tolist())
    n = len(dataset)
    # the same shuffles vae.train draws (per-epoch seeded permutations)
    orders = lambda epoch: torch.randperm(n, generator=torch.Generator().manual_seed(cfg.seed * 100_003 + epoch + 1))  # noqa: E731
    reference = textbook_train(dataset, (3, 8, 8), cfg.z_dim, cfg.beta, cfg.epochs, cfg.batch_size, width=cfg.width,
                               orders=orders)
    for a, b in zip(ours, reference):
        for key in ("train/loss", "train/r_loss", "train/kld_loss"):
            assert a[key] == pytest.approx(b[key], rel=2e-4, abs=1e-6), (key, a["epoch"])
