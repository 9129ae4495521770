import os

import pytest
import torch

torch.set_num_threads(min(2, os.cpu_count() or 1))


def tiny_config(tmp_path, **overrides):
    """A digits run that trains in about a second."""
    from vae.config import TrainConfig

    values = dict(dataset="digits", data_dir=str(tmp_path / "data"), limit=256, z_dim=4, width=8,
                  epochs=2, batch_size=32, beta=0.05, out=str(tmp_path / "run"), progress=False,
                  iw_samples=4, device="cpu")
    values.update(overrides)
    return TrainConfig(**values)


@pytest.fixture(autouse=True)
def runs_dir(tmp_path, monkeypatch):
    """Sweeps keep each configuration's run folder under VAE_RUNS_DIR while it trains."""
    monkeypatch.setenv("VAE_RUNS_DIR", str(tmp_path / "sweep-runs"))
    return tmp_path / "sweep-runs"


@pytest.fixture
def tiny(tmp_path):
    return lambda **kw: tiny_config(tmp_path, **kw)


def make_image_folder(root, n_per_class=6, size=(12, 10), mode="RGB", splits=("train", "test")):
    """ImageFolder layout with generated PNGs: root/<split>/<class>/<i>.png."""
    from PIL import Image

    g = torch.Generator().manual_seed(0)
    channels = 3 if mode == "RGB" else 1
    for split in splits:
        for cls in ("a", "b"):
            folder = root / split / cls if split else root / cls
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n_per_class):
                pixels = torch.randint(0, 256, (size[1], size[0], channels), generator=g, dtype=torch.uint8)
                array = pixels.squeeze(-1).numpy() if channels == 1 else pixels.numpy()
                Image.fromarray(array, mode=None).save(folder / f"{i}.png")
    return root


@pytest.fixture
def image_folder(tmp_path):
    return make_image_folder(tmp_path / "images")


from sweeping import env  # noqa: E402, F401  (the `env` fixture: a tiny grid sweep with its own stores)
