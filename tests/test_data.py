import time

import pytest
import torch

from vae.data import load_dataset
from vae.errors import DataError


def test_digits(tmp_path):
    data = load_dataset("digits", tmp_path)
    assert data.train.dtype == torch.uint8 and data.shape == (1, 8, 8)
    assert len(data.train) + len(data.test) == 1797
    assert int(data.train.max()) == 255


def test_cache_returns_identical_tensors(tmp_path, image_folder):
    first = load_dataset(f"folder:{image_folder}", tmp_path)
    assert list((tmp_path / "cache").glob("folder-*.pt"))
    t0 = time.perf_counter()
    second = load_dataset(f"folder:{image_folder}", tmp_path)
    assert time.perf_counter() - t0 < 5
    assert torch.equal(first.train, second.train) and torch.equal(first.test, second.test)


def test_folder_reads_train_and_test(tmp_path, image_folder):
    data = load_dataset(f"folder:{image_folder}", tmp_path)
    assert data.train.shape == (12, 3, 10, 12) and data.test.shape == (12, 3, 10, 12)


def test_folder_without_splits_is_split_90_10(tmp_path):
    from conftest import make_image_folder

    root = make_image_folder(tmp_path / "flat", n_per_class=10, splits=("",))
    data = load_dataset(f"folder:{root}", tmp_path)
    assert (len(data.train), len(data.test)) == (18, 2)


def test_limit_is_a_seeded_subset(tmp_path):
    a = load_dataset("digits", tmp_path, limit=50, seed=3)
    b = load_dataset("digits", tmp_path, limit=50, seed=3)
    c = load_dataset("digits", tmp_path, limit=50, seed=4)
    assert len(a.train) == 50 and torch.equal(a.train, b.train) and not torch.equal(a.train, c.train)


def test_changed_folder_is_decoded_again(tmp_path, image_folder):
    from PIL import Image

    load_dataset(f"folder:{image_folder}", tmp_path)
    Image.new("RGB", (12, 10)).save(image_folder / "train" / "a" / "new.png")
    assert len(load_dataset(f"folder:{image_folder}", tmp_path).train) == 13


@pytest.mark.parametrize("name, message", [
    ("nope", "unknown dataset"),
    ("folder:/does/not/exist", "does not exist"),
])
def test_bad_names(tmp_path, name, message):
    with pytest.raises(DataError, match=message):
        load_dataset(name, tmp_path)


def test_empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no images"):
        load_dataset(f"folder:{tmp_path / 'empty'}", tmp_path)


def test_corrupt_image_names_the_file(tmp_path, image_folder):
    (image_folder / "train" / "a" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match="broken.png"):
        load_dataset(f"folder:{image_folder}", tmp_path)
    assert not list((tmp_path / "cache").glob("*.pt"))  # nothing half-written


def test_download_failure_is_one_clear_error(tmp_path, monkeypatch):
    import torchvision

    def offline(*args, **kwargs):
        raise OSError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", offline)
    with pytest.raises(DataError, match="could not download cifar10.*digits.*folder:PATH"):
        load_dataset("cifar10", tmp_path)


def test_evaluation_subset_covers_every_class(tmp_path):
    from vae.data import evaluation_order, evaluation_subset

    data = load_dataset("digits", tmp_path)
    order = evaluation_order(data.test_labels)
    assert sorted(order.tolist()) == list(range(len(data.test)))  # a permutation of the test split
    assert set(data.test_labels[order[:10]].tolist()) == set(range(10))  # every class in the first 10
    counts = torch.bincount(data.test_labels[order[:50]], minlength=10)
    expected = 50 * torch.bincount(data.test_labels, minlength=10) / len(data.test)
    assert (counts - expected).abs().max() <= 1.5  # stratified: each class in proportion
    assert torch.equal(evaluation_subset(data, 50), data.test[order[:50]])
    # one seeded order per dataset: the same for every run, whatever its seed or limit's seed
    again = load_dataset("digits", tmp_path, limit=100, seed=5)
    assert torch.equal(evaluation_subset(again, 30), evaluation_subset(load_dataset("digits", tmp_path, limit=100, seed=9), 30))
    assert set(again.test_labels[evaluation_order(again.test_labels)[:10]].tolist()) == set(range(10))


def test_evaluation_order_without_labels_is_spread_over_the_stored_order():
    from vae.data import evaluation_order

    order = evaluation_order(None, 1000)
    assert sorted(order.tolist()) == list(range(1000))
    # 100 images from 1000 class-sorted ones: one from each block of 10, none two blocks apart
    assert sorted((order[:100] // 10).tolist()) == list(range(100))


def test_folder_labels_are_the_class_folders(tmp_path):
    from conftest import make_image_folder

    root = make_image_folder(tmp_path / "imgs", n_per_class=5)
    data = load_dataset(f"folder:{root}", tmp_path)
    assert data.test_labels.tolist() == [0] * 5 + [1] * 5  # sorted files: class a, then class b


def test_validation_split_is_disjoint_from_train_and_test(tmp_path):
    from conftest import make_image_folder

    from vae.data import validation_size, validation_split

    root = make_image_folder(tmp_path / "imgs", n_per_class=30)  # random pixels: every image distinct
    data = load_dataset(f"folder:{root}", tmp_path)
    train, val = validation_split(data.train)
    assert (len(train), len(val)) == (54, 6)  # 10 % of 60

    def rows(x):
        return {bytes(r) for r in x.flatten(1).numpy()}

    assert rows(train) | rows(val) == rows(data.train)
    assert not rows(train) & rows(val) and not rows(val) & rows(data.test)
    assert torch.equal(validation_split(data.train)[1], val)  # seeded
    assert validation_size(50_000, None) == 5000 and validation_size(2000, None) == 200
    with pytest.raises(DataError, match="val_size 60 does not fit"):
        validation_split(data.train, 60)
