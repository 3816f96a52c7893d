"""The latent map as a canvas scatter: hover a dot to see that test image, click it to pick it.

Plotly cannot show an image on hover, so this st.components.v2 component draws the points itself
(10,000 dots, a uniform-grid index for the nearest-dot lookup) and shows the hovered test image from
a PNG sprite sheet (``explorer.atlas``) that travels to the page once per ``atlas_key``: the page
keeps it across reruns and remounts, and asks for it again only if it lost it. Its JS and CSS ship
in this package (no CDN, no build step).

Wiring::

    atlas_png = cached_atlas(...)                          # st.cache_data around explorer.atlas.image_atlas
    click = latent_map(coords, labels, class_names=ctx.class_names, atlas_png=atlas_png,
                       atlas_key=atlas_id_of_those_images, key="latent-map")
    if click and click["nonce"] != st.session_state.get("map_seen"):
        st.session_state["map_seen"] = click["nonce"]          # act on each click once
        ...                                                     # click["index"] is a test-image index

To change other widgets' values (the latent sliders) on a click, pass ``on_click=`` and read
``last_click(key)`` inside it: callbacks run before the script, so they may set widget state.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import streamlit as st

from explorer.atlas import png_size
from explorer.ui import component_js

HERE = Path(__file__).resolve().parent
COMPONENT_NAME = "vae_explorer.latent_map"
TILE = 28  # atlas tile size in pixels (MNIST / Fashion-MNIST)

# helpers


@functools.cache
def _component():
    """Register the component once per process; JS and CSS are read from this package."""
    return st.components.v2.component(
        COMPONENT_NAME, js=component_js(HERE / "mapview.js"), css=(HERE / "mapview.css").read_text())


def _b64(a: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(a).tobytes()).decode("ascii")


def _check_key(key: str) -> str:
    if not isinstance(key, str) or not key or "__" in key:
        raise ValueError(f"key must be a non-empty string without '__', got {key!r}")
    return key


def _highlights(highlight: list[dict] | None) -> list[dict]:
    out = []
    for h in highlight or []:
        x, y = float(h["x"]), float(h["y"])
        if not (math.isfinite(x) and math.isfinite(y)):
            continue
        m = {"x": x, "y": y, "label": str(h.get("label", "")), "marker": str(h.get("marker", "ring"))}
        if h.get("color"):
            m["color"] = str(h["color"])
        out.append(m)
    return out


def points_payload(coords: np.ndarray, labels: np.ndarray, class_names: list[str]) -> dict:
    """coords (N, 2) + labels (N,) -> the JSON-ready point fields: n, xy (b64 float32 LE), labels (b64 uint8)."""
    xy = np.asarray(coords, dtype="<f4")
    lab = np.asarray(labels)
    if xy.ndim != 2 or xy.shape[1] != 2:
        raise ValueError(f"coords must be (N, 2), got {xy.shape}")
    if lab.shape != (len(xy),):
        raise ValueError(f"labels must be (N,) = ({len(xy)},), got {lab.shape}")
    if not np.isfinite(xy).all():
        raise ValueError("coords must be finite")
    if len(lab) and (lab.min() < 0 or lab.max() >= len(class_names) or len(class_names) > 256):
        raise ValueError(f"labels must index class_names (0..{len(class_names) - 1})")
    lab8 = lab.astype(np.uint8)
    h = hashlib.sha1(xy.tobytes())
    h.update(lab8.tobytes())
    h.update("\x00".join(class_names).encode())
    return {"n": len(xy), "xy": _b64(xy), "labels": _b64(lab8), "class_names": [str(c) for c in class_names],
            "points_id": h.hexdigest()[:16]}


def _want(book: dict, state: dict, kind: str, asset_key: str) -> bool:
    """Whether to send an asset now: not yet sent to this session's page, or the page asked for it again."""
    missing = state.get("missing")
    asked = (isinstance(missing, dict) and missing.get("kind") == kind and missing.get("key") == asset_key
             and isinstance(missing.get("nonce"), (int, float)) and missing["nonce"] > book["served"])
    if asked:
        book["served"] = missing["nonce"]
    return asked or asset_key not in book["sent"]


def last_click(key: str) -> dict | None:
    """The map's last click as plain values (see ``latent_map``), readable in callbacks and before mounting."""
    state = st.session_state.get(key)
    click = state.get("click") if hasattr(state, "get") else None
    if not isinstance(click, dict) or not isinstance(click.get("nonce"), (int, float)):
        return None
    if isinstance(click.get("index"), (int, float)):
        return {"index": int(click["index"]), "nonce": int(click["nonce"])}
    xy = click.get("xy")
    if isinstance(xy, list) and len(xy) == 2 and all(isinstance(v, (int, float)) for v in xy):
        return {"xy": [float(xy[0]), float(xy[1])], "nonce": int(click["nonce"])}
    return None


# the component


def latent_map(coords: np.ndarray, labels: np.ndarray, *, class_names: list[str], atlas_png: bytes,
               atlas_key: str, highlight: list[dict] | None = None, decode: dict | None = None,
               decode_label: int = 0, key: str, height: int = 520,
               on_click: Callable[[], None] | None = None) -> dict | None:
    """Show the map of N points (coords (N, 2), labels (N,) indexing class_names) -> the last click or None.

    atlas_png: ``explorer.atlas.image_atlas(images)`` of the same N images in the same order (tile i is
    point i); atlas_key: a name for those bytes (``explorer.atlas.atlas_id``). The PNG goes to the page
    once per key and session (about 2.3 MB of base64 for 10,000 MNIST digits); later reruns send only
    the points (about 120 kB for 10,000).
    highlight: extra markers drawn on top, e.g. interpolation endpoints {"x", "y", "label": "A"} or a
    drawing's code {"x", "y", "label": "yours", "marker": "star"}; optional "color" (CSS colour);
    markers "ring" (default) or "star".
    decode: for a 2-D latent model whose map is the latent space itself, its
    ``explorer.decoder_export.decoder_payload(model)``: hovering empty space then decodes that (x, y)
    in the browser (sent once per payload_id, like the atlas); decode_label is the class for a
    conditional decoder.
    key: the component's key (no "__"); its state holds the click. height: pixels, legend included.
    on_click: called (no arguments) before the script reruns after a click; read ``last_click(key)``.

    Returns the last click as plain values, kept across reruns until the next click:
    {"index": int, "nonce": int} for a dot, or, with ``decode``, {"xy": [x, y], "nonce": int} for empty
    space. The nonce (milliseconds, strictly increasing on a page) tells a second click on the same dot
    from a rerun: act only on a nonce you have not seen.
    """
    key = _check_key(key)
    if decode is not None and decode.get("supported") is False:
        decode = None  # e.g. the live panel's cached payload of an unsupported decoder
    if decode is not None and int(decode.get("latent_dim", 0)) != 2:
        raise ValueError("decode needs a decoder of a 2-D latent space (the map must be that space)")
    points = points_payload(coords, labels, class_names)
    width, height_px = png_size(atlas_png)
    columns = width // TILE
    if width % TILE or height_px % TILE or columns * (height_px // TILE) < points["n"]:
        raise ValueError(f"atlas_png ({width}x{height_px}) is not a {TILE}-pixel atlas of {points['n']} images")

    state = st.session_state.get(key)
    state = state if hasattr(state, "get") else {}
    book_key = f"_mapview:{key}"
    book = st.session_state.get(book_key) or {"sent": [], "served": 0}
    book = {"sent": list(book["sent"]), "served": book["served"]}
    atlas = {"key": str(atlas_key), "tile": TILE, "columns": columns, "png": None}
    if _want(book, state, "atlas", atlas["key"]):
        atlas["png"] = base64.b64encode(atlas_png).decode("ascii")
    decoder = None
    if decode is not None:
        dkey = str(decode.get("payload_id") or hashlib.sha1(repr(sorted(decode.items())).encode()).hexdigest()[:16])
        decoder = {"key": dkey, "label": int(decode_label), "payload": None}
        if _want(book, state, "decoder", dkey):
            decoder["payload"] = {k: v for k, v in decode.items() if k != "supported"}
    for sent in (atlas["key"] if atlas["png"] else None, decoder and decoder["payload"] and decoder["key"]):
        if sent and sent not in book["sent"]:
            book["sent"] = [*book["sent"], sent][-8:]
    st.session_state[book_key] = book

    data = {**points, "atlas": atlas, "decoder": decoder, "highlight": _highlights(highlight)}
    _component()(key=key, data=data, height=int(height),
                 on_click_change=on_click or (lambda: None), on_missing_change=lambda: None)
    return last_click(key)
