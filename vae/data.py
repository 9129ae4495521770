"""Datasets as uint8 tensors (N x C x H x W), decoded once and cached on disk.

    from vae.data import load_dataset
    data = load_dataset("folder:data/cifar10", data_dir="data", limit=5000)
    data.train.shape   # torch.Size([5000, 3, 32, 32]), dtype uint8

Training slices batches from these tensors (moved to the training device once), so no
Dataset/DataLoader work happens per epoch. A second load of CIFAR-10 reads one cached file
(a second or two) instead of decoding 60,000 JPEGs again.
"""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import torch

from vae.errors import DataError
from vae.progress import phase

TORCHVISION = {"cifar10": "CIFAR10", "mnist": "MNIST", "fashion-mnist": "FashionMNIST"}
NAMES = (*TORCHVISION, "digits", "folder:PATH")
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm"}
CACHE_VERSION = 1


@dataclass
class Data:
    name: str
    train: torch.Tensor
    """uint8, N x C x H x W"""
    test: torch.Tensor

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.train.shape[1:])


def load_dataset(name: str, data_dir: str | os.PathLike = "data", limit: int | None = None,
                 seed: int = 0) -> Data:
    """Load `name` (see NAMES), from the on-disk cache when it has been decoded before."""
    data_dir = Path(data_dir)
    if name in TORCHVISION:
        key, loader = name, lambda: _torchvision(name, data_dir)
    elif name == "digits":
        key, loader = "digits", _digits
    elif name.startswith("folder:"):
        root = Path(name[len("folder:"):]).expanduser()
        key, loader = f"folder-{_folder_signature(root)}", lambda: _folder(root)
    else:
        raise DataError(f"unknown dataset {name!r}; choose one of: {', '.join(NAMES)}")
    train, test = _cached(data_dir / "cache" / f"{key}.v{CACHE_VERSION}.pt", loader)
    if limit is not None:
        train, test = _subset(train, limit, seed), _subset(test, limit, seed + 1)
    if len(train) == 0 or len(test) == 0:
        raise DataError(f"dataset {name!r} has an empty train or test split")
    return Data(name, train, test)


def _cached(path: Path, loader) -> tuple[torch.Tensor, torch.Tensor]:
    if path.exists():
        try:
            with phase(f"loading the decoded images from {path}"):
                blob = torch.load(path, weights_only=True)
            return blob["train"], blob["test"]
        except Exception:  # a truncated or stale cache is rebuilt, never trusted
            path.unlink(missing_ok=True)
    train, test = loader()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    torch.save({"train": train.contiguous(), "test": test.contiguous()}, tmp)
    os.replace(tmp, path)  # atomic: concurrent workers never read half a file
    return train, test


def _subset(x: torch.Tensor, limit: int, seed: int) -> torch.Tensor:
    if limit >= len(x):
        return x
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(x), generator=g)[:limit].sort().values
    return x[idx]


def _split(x: torch.Tensor, seed: int = 0, test_fraction: float = 0.1):
    """Seeded 90/10 split for sources that ship no test set."""
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(x), generator=g)
    n_test = max(1, int(round(len(x) * test_fraction)))
    return x[idx[n_test:].sort().values], x[idx[:n_test].sort().values]


def _torchvision(name: str, data_dir: Path):
    import torchvision

    cls = getattr(torchvision.datasets, TORCHVISION[name])
    try:
        splits = [cls(root=str(data_dir), train=t, download=True) for t in (True, False)]
    except Exception as e:  # URLError, socket errors, HTTP errors: all mean "no download"
        raise DataError(
            f"could not download {name} into {data_dir}/ ({type(e).__name__}: {e}); offline, "
            "use --dataset digits, or --dataset folder:PATH with an ImageFolder copy "
            "(e.g. `make data/cifar10` unpacks ../shared/data/cifar10-jpg.tar.gz)"
        ) from None
    out = []
    for ds in splits:
        x = torch.as_tensor(ds.data)
        x = x.permute(0, 3, 1, 2) if x.ndim == 4 else x.unsqueeze(1)  # CIFAR is NHWC, MNIST NHW
        out.append(x.contiguous())
    return tuple(out)


def _digits():
    from sklearn.datasets import load_digits

    images = torch.as_tensor(load_digits().images)  # 1797 x 8 x 8, values 0..16
    x = (images * (255 / 16)).round().to(torch.uint8).unsqueeze(1)
    return _split(x)


def _image_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def _folder_signature(root: Path) -> str:
    if not root.is_dir():
        raise DataError(f"image folder {str(root)!r} does not exist")
    files = _image_files(root)
    if not files:
        raise DataError(f"image folder {str(root)!r} contains no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    h = hashlib.sha1(str(root.resolve()).encode())
    for p in files:  # path, size and mtime: a changed folder gets a fresh cache entry
        st = p.stat()
        h.update(f"{p.relative_to(root)}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def _folder(root: Path):
    """ImageFolder layout: root/train/<class>/* and root/test/<class>/*, or one tree to split."""
    if (root / "train").is_dir() and (root / "test").is_dir():
        return _decode(_image_files(root / "train")), _decode(_image_files(root / "test"))
    return _split(_decode(_image_files(root)))


def _decode(files: list[Path]) -> torch.Tensor:
    from PIL import Image

    if not files:
        raise DataError("an image folder split contains no images")

    with Image.open(files[0]) as first:
        mode = "L" if first.mode in ("1", "L", "I", "I;16", "F") else "RGB"
        size = first.size

    def read(path: Path) -> torch.Tensor:
        try:
            with Image.open(path) as im:
                im = im.convert(mode)
                if im.size != size:  # mixed sizes: resize to the first image's size
                    im = im.resize(size, Image.BILINEAR)
                t = torch.frombuffer(bytearray(im.tobytes()), dtype=torch.uint8)
        except Exception as e:
            raise DataError(f"cannot decode image {path}: {e}") from None
        return t.view(size[1], size[0], -1).permute(2, 0, 1)

    images = []
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool, \
            phase(f"decoding {len(files):,} images of {files[0].parent.parent} (once: cached afterwards)",
                  total=len(files), unit="image") as bar:
        for image in pool.map(read, files, chunksize=256):
            images.append(image)
            bar.update(1)
    return torch.stack(images)
