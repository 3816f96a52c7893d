"""Cached loaders shared by every panel, and the Ctx handed to each panel.

Cache keys are plain values (checkpoint path + file fingerprint, dataset name); the model from
``st.cache_resource`` is shared by every session, so panels must never mutate it.
"""

from __future__ import annotations

import gc
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import streamlit as st

from explorer import checkpoints
from explorer.data import CLASS_NAMES, DataError, load_dataset
from explorer.latent import encode_images

ROOT = Path(__file__).resolve().parents[2]


def checkpoint_dir() -> Path:
    """The checkpoints folder: $VAE_EXPLORER_CHECKPOINTS or checkpoints/ next to app.py (read on each call)."""
    return Path(os.environ.get("VAE_EXPLORER_CHECKPOINTS") or ROOT / "checkpoints")


@st.cache_resource(max_entries=8, show_spinner=False)
def load_model(path: str, fingerprint: str):
    """(model in eval mode, meta) for a checkpoint; shared by all sessions: do not mutate."""
    model, meta = checkpoints.load(path)
    model.requires_grad_(False)
    return model, meta


@st.cache_data(ttl=30, show_spinner=False)
def list_checkpoints(folder: str) -> list[dict]:
    """Every checkpoint in the folder as plain dicts (path, name, meta, error, fingerprint)."""
    return [dict(path=c.path, name=c.name, meta=c.meta, error=c.error, fingerprint=c.fingerprint)
            for c in checkpoints.list_checkpoints(folder)]


@st.cache_data(max_entries=4, show_spinner=False)
def load_test_data(dataset: str, data_env: str | None) -> dict:
    """Test split as {images uint8 (N,28,28), labels (N,), source, notices}; data_env keys the cache."""
    try:
        ds = load_dataset(dataset, "test")
    except DataError as e:
        return {"images": np.zeros((0, 28, 28), np.uint8), "labels": np.zeros(0, np.int64),
                "source": f"no data: {e}", "notices": [str(e)], "error": str(e)}
    return {"images": ds.images, "labels": ds.labels, "source": ds.source, "notices": ds.notices, "error": None}


@st.cache_data(max_entries=8, show_spinner="Encoding the test images ...")
def test_codes(path: str, fingerprint: str, dataset: str, data_env: str | None) -> dict:
    """Encoder means and log-variances of the test images: {mu (N, z), logvar (N, z)}."""
    model, _ = load_model(path, fingerprint)
    data = load_test_data(dataset, data_env)
    if not len(data["labels"]):
        z = model.config.latent_dim
        return {"mu": np.zeros((0, z), np.float32), "logvar": np.zeros((0, z), np.float32)}
    mu, logvar = encode_images(model, data["images"], data["labels"])
    return {"mu": mu, "logvar": logvar}


_FROZE = False


def freeze_long_lived_objects() -> None:
    """Once per process, after the first full run: move everything alive now (torch, the model, the test set,
    Streamlit itself: ~240k objects) out of the garbage collector's view with ``gc.freeze()``. A full
    collection then walks only what later runs create: tens of ms instead of ~0.3 s holding the GIL."""
    global _FROZE
    if not _FROZE:
        _FROZE = True
        gc.freeze()  # no gc.collect() first: it would hold the GIL while the first page is still being sent


@dataclass(frozen=True)
class Ctx:
    """What a panel needs to know: the chosen checkpoint and the data it is shown with."""

    path: str
    fingerprint: str
    meta: dict

    @property
    def config(self) -> dict:
        return self.meta["config"]

    @property
    def latent_dim(self) -> int:
        return int(self.config["latent_dim"])

    @property
    def conditional(self) -> bool:
        return bool(self.config["conditional"])

    @property
    def dataset(self) -> str:
        return self.meta.get("train", {}).get("dataset", "mnist")

    @property
    def class_names(self) -> list[str]:
        return CLASS_NAMES[self.dataset]

    @property
    def model(self):
        return load_model(self.path, self.fingerprint)[0]

    @property
    def data(self) -> dict:
        return load_test_data(self.dataset, os.environ.get("VAE_EXPLORER_DATA"))

    @property
    def codes(self) -> dict:
        return test_codes(self.path, self.fingerprint, self.dataset, os.environ.get("VAE_EXPLORER_DATA"))
