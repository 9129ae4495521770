import os

# One CPU thread per test process and per command it starts (OMP_NUM_THREADS is inherited): the
# tests train tiny models, which a second thread slows down, and an OpenMP team that shares its
# cores with another busy process spins at every barrier (measured on 2 cores beside a training:
# 300 steps of the digits model 13.9 s with 2 threads, 0.7 s with 1). `make test` runs two test
# processes side by side (pytest-xdist), one per core.
os.environ["OMP_NUM_THREADS"] = "1"

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)


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
