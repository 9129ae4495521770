"""Datasets as uint8 tensors (N x C x H x W), decoded once and cached on disk.

    from vae.data import load_dataset
    data = load_dataset("folder:data/cifar10", data_dir="data", limit=5000)
    data.train.shape   # torch.Size([5000, 3, 32, 32]), dtype uint8

Training slices batches from these tensors (moved to the training device once), so no
Dataset/DataLoader work happens per epoch. A second load of CIFAR-10 reads one cached file
(a second or two) instead of decoding 60,000 JPEGs again.

Splits. `limit` takes a seeded subset of the training split (seed: the run's) and of the test split
(one fixed seed, so every run of a study is judged on the same test images). `validation_split`
carves a seeded validation split from what remains of the training split: it chooses models
(objectives, pruning), the test split only reports them. `evaluation_order` is the one seeded
order of the test split that every end-of-trial estimator reads prefixes of (see vae/metrics.py).
Labels are kept (class indices; folder datasets: the class sub-folder) so that order is stratified.
"""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import torch

from vae.errors import DataError, first_line
from vae.paths import check_folder
from vae.progress import phase

TORCHVISION = {"cifar10": "CIFAR10", "mnist": "MNIST", "fashion-mnist": "FashionMNIST"}
NAMES = (*TORCHVISION, "digits", "folder:PATH")
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm"}
CACHE_VERSION = 2  # 2: labels stored beside the images
VAL_SEED = 2
"""seeds the validation split: the same images for every run with the same training split."""
EVAL_SEED = 0
"""seeds the evaluation order of the test split: chosen once per dataset."""
UNLABELLED_STRATA = 100
"""without labels, the order is stratified over this many contiguous blocks of the (class-sorted)
files instead, i.e. spread evenly over them."""


@dataclass
class Data:
    name: str
    train: torch.Tensor
    """uint8, N x C x H x W"""
    test: torch.Tensor
    test_labels: torch.Tensor | None = None
    """int64 class index of each test image (None when the source has no labels)"""

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.train.shape[1:])


def load_dataset(name: str, data_dir: str | os.PathLike = "data", limit: int | None = None,
                 seed: int = 0) -> Data:
    """Load `name` (see NAMES), from the on-disk cache when it has been decoded before."""
    data_dir = check_folder(data_dir, "--data-dir", write=False)  # a read-only folder may hold the cache
    if name in TORCHVISION:
        key, loader = name, lambda: _torchvision(name, data_dir)
    elif name == "digits":
        key, loader = "digits", _digits
    elif name.startswith("folder:"):
        root = Path(name[len("folder:"):]).expanduser()
        key, loader = f"folder-{_folder_signature(root)}", lambda: _folder(root)
    else:
        raise DataError(f"unknown dataset {name!r}; choose one of: {', '.join(NAMES)}")
    train, test, _, test_labels = _cached(data_dir / "cache" / f"{key}.v{CACHE_VERSION}.pt", loader)
    if limit is not None:
        train = train[_subset(len(train), limit, seed)]
        keep = _subset(len(test), limit, 1)  # one test subset per limit, whatever the run's seed
        test, test_labels = test[keep], test_labels[keep]
    if len(train) == 0 or len(test) == 0:
        raise DataError(f"dataset {name!r} has an empty train or test split")
    return Data(name, train, test, test_labels)


def validation_size(n_train: int, val_size: int | None) -> int:
    """`val_size` images, or by default 10 % of the training split and at most 5,000 (CIFAR-10's
    50,000 training images give 45,000 / 5,000)."""
    n = max(1, min(5000, round(0.1 * n_train))) if val_size is None else val_size
    if not 1 <= n < n_train:
        raise DataError(f"val_size {n} does not fit a training split of {n_train} images "
                        f"(it needs 1 <= val_size < {n_train})")
    return n


def validation_indices(n_train: int, val_size: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(train, validation) indices into a training split of n_train images, seeded, disjoint, sorted."""
    n_val = validation_size(n_train, val_size)
    idx = torch.randperm(n_train, generator=torch.Generator().manual_seed(VAL_SEED))
    return idx[n_val:].sort().values, idx[:n_val].sort().values


def validation_split(train: torch.Tensor, val_size: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(train, validation): a seeded validation split carved from the training split, disjoint from it."""
    keep, val = validation_indices(len(train), val_size)
    return train[keep], train[val]


def evaluation_order(labels: torch.Tensor | None, n: int | None = None, seed: int = EVAL_SEED) -> torch.Tensor:
    """A seeded permutation of the test split whose prefixes are stratified by class: one image of
    every class first, then each class in proportion to its size (systematic sampling over a
    shuffle of each class). Estimators that need fewer images take a shorter prefix of the same
    order, so their subsets are nested. Without labels (or with one class) the strata are
    UNLABELLED_STRATA contiguous blocks of the stored order, i.e. evenly spaced over it."""
    n = len(labels) if labels is not None else n
    if labels is None or labels.unique().numel() < 2:
        labels = torch.arange(n) * min(n, UNLABELLED_STRATA) // n
    g = torch.Generator().manual_seed(seed)
    shuffled = torch.randperm(n, generator=g)
    jitter = torch.rand(n, generator=g, dtype=torch.float64)
    key = torch.empty(n, dtype=torch.float64)
    for c in labels.unique():
        members = shuffled[labels[shuffled] == c]
        rank = torch.arange(len(members), dtype=torch.float64)
        key[members] = (rank + jitter[members]) / len(members)  # the j-th of m falls in [j/m, (j+1)/m)
        key[members[0]] = -1 + jitter[members[0]]  # every class in the first (number of classes) images
    return key.argsort()


def evaluation_subset(data: Data, n: int) -> torch.Tensor:
    """The first n images of the test split in evaluation order: every end-of-training estimator's input."""
    return data.test[evaluation_order(data.test_labels, len(data.test))[:n]]


SPLITS = ("train", "test", "train_labels", "test_labels")


def _cached(path: Path, loader) -> tuple[torch.Tensor, ...]:
    """(train, test, train_labels, test_labels), decoded by `loader` once."""
    if path.exists():
        try:
            with phase(f"loading the decoded images from {path}"):
                blob = torch.load(path, weights_only=True)
            return tuple(blob[k] for k in SPLITS)
        except Exception:  # a truncated or stale cache is rebuilt, never trusted
            path.unlink(missing_ok=True)
    parts = tuple(t.contiguous() for t in loader())
    if len(parts[0]) < 2 or len(parts[1]) < 1:  # refused before a cache exists: nothing left behind
        raise DataError(f"{path.name.split('.')[0]}: {len(parts[0])} training and {len(parts[1])} test image(s); "
                        "a run needs at least 2 to train on (one of them for validation) and 1 to test on")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    torch.save(dict(zip(SPLITS, parts)), tmp)
    os.replace(tmp, path)  # atomic: concurrent workers never read half a file
    return parts


def _subset(n: int, limit: int, seed: int) -> torch.Tensor:
    """Indices of a seeded subset of at most `limit` of n items, in their stored order."""
    if limit >= n:
        return torch.arange(n)
    g = torch.Generator().manual_seed(seed)
    return torch.randperm(n, generator=g)[:limit].sort().values


def _split(x: torch.Tensor, labels: torch.Tensor, seed: int = 0, test_fraction: float = 0.1):
    """Seeded 90/10 split for sources that ship no test set: (train, test, train_labels, test_labels)."""
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(x), generator=g)
    n_test = max(1, int(round(len(x) * test_fraction)))
    train, test = idx[n_test:].sort().values, idx[:n_test].sort().values
    return x[train], x[test], labels[train], labels[test]


def _torchvision(name: str, data_dir: Path):
    import torchvision

    cls = getattr(torchvision.datasets, TORCHVISION[name])
    # torchvision creates these before downloading; a failed download must not leave them empty
    made = [p for p in (data_dir, data_dir / cls.__name__, data_dir / cls.__name__ / "raw") if not p.exists()]
    try:
        splits = [cls(root=str(data_dir), train=t, download=True) for t in (True, False)]
    except Exception as e:  # URLError, socket errors, HTTP errors: all mean "no download"
        for p in reversed(made):
            with suppress(OSError):
                p.rmdir()  # only if still empty
        raise DataError(
            f"could not download {name} into {data_dir}/ ({type(e).__name__}: {first_line(e)}); offline, "
            "use --dataset digits, or --dataset folder:PATH with an ImageFolder copy "
            "(e.g. `make data/cifar10` unpacks ../shared/data/cifar10-jpg.tar.gz)"
        ) from None
    images, labels = [], []
    for ds in splits:
        x = torch.as_tensor(ds.data)
        images.append(x.permute(0, 3, 1, 2) if x.ndim == 4 else x.unsqueeze(1))  # CIFAR is NHWC, MNIST NHW
        labels.append(torch.as_tensor(ds.targets, dtype=torch.int64))
    return (*images, *labels)


def _digits():
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = torch.as_tensor(digits.images)  # 1797 x 8 x 8, values 0..16
    x = (images * (255 / 16)).round().to(torch.uint8).unsqueeze(1)
    return _split(x, torch.as_tensor(digits.target, dtype=torch.int64))


def _image_files(root: Path) -> list[Path]:
    """Every image below `root`; a folder that cannot be read is an error (rglob skipped it in silence,
    and an unreadable folder was said to contain no images)."""
    def unreadable(e: OSError):
        raise DataError(f"cannot read image folder {e.filename}: {e.strerror}")

    found = []
    for top, _, names in os.walk(root, onerror=unreadable):
        found += [Path(top) / n for n in names if Path(n).suffix.lower() in IMAGE_SUFFIXES]
    return sorted(p for p in found if p.is_file())


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
        train, test = _image_files(root / "train"), _image_files(root / "test")
        classes = _classes([*train, *test], [root / "train"] * len(train) + [root / "test"] * len(test))
        x_train, x_test = _decode(train), _decode(test)
        if x_train.shape[1:] != x_test.shape[1:]:  # the model is built for one shape: both splits need it
            raise DataError(f"image folder {str(root)!r}: train/ holds {_format(x_train)} images, test/ "
                            f"{_format(x_test)}; both splits need one format (size and colour)")
        return x_train, x_test, classes[:len(train)], classes[len(train):]
    files = _image_files(root)
    return _split(_decode(files), _classes(files, [root] * len(files)))


def folder_shape(name: str) -> tuple[int, int, int] | None:
    """(channels, height, width) of a folder dataset, read from its first image alone (nothing
    decoded, nothing cached); None for the other datasets or an unreadable folder."""
    from PIL import Image

    if not name.startswith("folder:"):
        return None
    root = Path(name[len("folder:"):]).expanduser()
    files = _image_files(root / "train") if (root / "train").is_dir() else _image_files(root) if root.is_dir() else []
    try:
        with Image.open(files[0]) as im:
            return (1 if im.mode in ("1", "L", "I", "I;16", "F") else 3, im.size[1], im.size[0])
    except Exception:  # no image, or unreadable: load_dataset says which
        return None


def _format(x: torch.Tensor) -> str:
    return f"{x.shape[3]}×{x.shape[2]} {'grey' if x.shape[1] == 1 else 'RGB'}"


def _classes(files: list[Path], roots: list[Path]) -> torch.Tensor:
    """Class index of each file: its first folder below the split root, in sorted order ("" if none)."""
    names = [p.relative_to(r).parts[0] if len(p.relative_to(r).parts) > 1 else "" for p, r in zip(files, roots)]
    index = {name: i for i, name in enumerate(sorted(set(names)))}
    return torch.tensor([index[name] for name in names], dtype=torch.int64)


def _decode(files: list[Path]) -> torch.Tensor:
    from PIL import Image

    if not files:
        raise DataError("an image folder split contains no images")

    @contextmanager
    def opened(path: Path):
        try:
            with Image.open(path) as im:
                yield im
        except Exception as e:  # unreadable, truncated, not an image: bad data, not a bug
            raise DataError(f"cannot decode image {path}: {e}") from None

    with opened(files[0]) as first:
        mode = "L" if first.mode in ("1", "L", "I", "I;16", "F") else "RGB"
        size = first.size

    def read(path: Path) -> torch.Tensor:
        with opened(path) as im:
            im = im.convert(mode)
            if im.size != size:  # mixed sizes: resize to the first image's size
                im = im.resize(size, Image.BILINEAR)
            t = torch.frombuffer(bytearray(im.tobytes()), dtype=torch.uint8)
        return t.view(size[1], size[0], -1).permute(2, 0, 1)

    images = []
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool, \
            phase(f"decoding {len(files):,} images of {files[0].parent.parent} (once, all of them, whatever the "
                  "limit: the cache then serves every subset and seed)",
                  total=len(files), unit="image") as bar:
        for image in pool.map(read, files, chunksize=256):
            images.append(image)
            bar.update(1)
    return torch.stack(images)
