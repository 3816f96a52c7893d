"""A standalone page for the latent-map component: ``streamlit run bench/mapview_demo_app.py``.

Query parameters: ``?ckpt=mnist-z2`` picks a checkpoint in checkpoints/ (default mnist-z16; a 2-D
model shows its latent space itself and decodes empty space on hover), ``?n=2000`` the number of
test images. The browser tests in tests/browser/test_mapview.py drive this page.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("VAE_EXPLORER_DATA", str(ROOT.parent / "shared" / "data" / "mnist"))

import numpy as np  # noqa: E402
import streamlit as st  # noqa: E402

from explorer import checkpoints  # noqa: E402
from explorer.atlas import atlas_id, image_atlas  # noqa: E402
from explorer.data import CLASS_NAMES, load_dataset  # noqa: E402
from explorer.embed import fit_projection  # noqa: E402
from explorer.latent import encode_images  # noqa: E402
from explorer.ui.mapview import last_click, latent_map  # noqa: E402


@st.cache_resource
def model_of(name: str):
    model, meta = checkpoints.load(ROOT / "checkpoints" / f"{name}.safetensors")
    return model.requires_grad_(False), meta


@st.cache_data
def test_set() -> tuple[np.ndarray, np.ndarray]:
    ds = load_dataset("mnist", "test")
    return ds.images, ds.labels


@st.cache_data
def atlas_of(n: int) -> tuple[bytes, str]:
    images = test_set()[0][:n]
    return image_atlas(images), atlas_id(images)


@st.cache_data
def coords_of(name: str, n: int) -> np.ndarray:
    images, labels = test_set()
    mu, _ = encode_images(model_of(name)[0], images[:n], labels[:n])
    return fit_projection(mu, "pca").coords


@st.cache_data
def payload_of(name: str) -> dict | None:
    from explorer.decoder_export import decoder_payload, supported

    model = model_of(name)[0]
    return decoder_payload(model) if model.config.latent_dim == 2 and supported(model)[0] else None


def on_click() -> None:
    """Runs before the script reruns after a click, so the new pick is marked in this very run."""
    click = last_click("demo-map")
    if click and click["nonce"] != st.session_state.get("seen"):
        st.session_state["seen"] = click["nonce"]
        st.session_state["new_clicks"] = st.session_state.get("new_clicks", 0) + 1
        if "index" in click:
            st.session_state["picks"] = [*st.session_state.get("picks", []), click["index"]][-2:]


st.set_page_config(page_title="Latent map demo", layout="wide")
name = st.query_params.get("ckpt", "mnist-z16")
n = int(st.query_params.get("n", 10000))
images, labels = test_set()
n = min(n, len(images))
t0 = time.perf_counter()
coords = coords_of(name, n)
png, akey = atlas_of(n)
decode = payload_of(name)
st.caption(f"{name}: {n} test images, atlas {len(png) / 1e6:.2f} MB (key {akey}), "
           f"prepared in {time.perf_counter() - t0:.2f} s; reruns: {st.session_state.setdefault('runs', 0)}")
st.session_state["runs"] += 1

picks = st.session_state.get("picks", [])
highlight = [{"x": float(coords[i, 0]), "y": float(coords[i, 1]), "label": "AB"[k]} for k, i in enumerate(picks)]
if st.session_state.get("star"):
    highlight.append({"x": 0.0, "y": 0.0, "label": "origin", "marker": "star"})
click = latent_map(coords, labels[:n], class_names=CLASS_NAMES["mnist"], atlas_png=png, atlas_key=akey,
                   highlight=highlight, decode=decode, key="demo-map", height=560, on_click=on_click)
st.text(f"click={json.dumps(click, sort_keys=True)}")
st.text(f"new_clicks={st.session_state.get('new_clicks', 0)} picks={picks}")
st.checkbox("Mark the origin with a star", key="star")
st.button("Rerun")
