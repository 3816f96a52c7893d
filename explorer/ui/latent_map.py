"""The latent map: test-image codes projected to 2-D (PCA, UMAP, t-SNE), coloured by class.

PCA is instant. UMAP and t-SNE run in one worker *process* shared by all sessions (one job per map
key; a process, because UMAP's JIT compile would otherwise hold the server's GIL for a minute),
with their results cached on disk per checkpoint + data source, so the page never waits on them and
the next visit or app start is instant.
"""

from __future__ import annotations

import functools
import os
import time
import multiprocessing
from concurrent.futures import Future, ProcessPoolExecutor

import numpy as np
import streamlit as st

from explorer import embed
from explorer.images import png_bytes
from explorer.latent import grid_codes, tile

from . import interpolation
from .common import decode, fragment, show_digit
from .context import Ctx, load_test_data
from .live import cached_payload
from .mapview import last_click, latent_map
from .sidebar import rerun_app_if_requested, set_z

METHODS = {"pca": "PCA (instant)", "umap": "UMAP", "tsne": "t-SNE"}
MAP_KEY = "latent-map"


# background projections, shared by every session


@st.cache_resource
def _pool() -> tuple[ProcessPoolExecutor, dict]:
    ctx = multiprocessing.get_context("spawn")
    return ProcessPoolExecutor(max_workers=1, mp_context=ctx, initializer=embed.worker_init), {}


def projection(ctx: Ctx, method: str, n: int) -> tuple[np.ndarray | None, dict]:
    """(coords (n, 2) or None while computing, status) for the first n test codes."""
    codes = ctx.codes["mu"][:n]
    key = f"{ctx.path}|{ctx.fingerprint}|{ctx.data['source']}|n={n}"
    if method == "pca" or embed.cache_path(f"{key}|0|{len(codes)}", method).is_file():
        t0 = time.perf_counter()
        coords, hit = embed.cached_coords(codes, method, key) if method != "pca" else (
            embed.fit_projection(codes, "pca").coords, False)
        return coords, {"seconds": time.perf_counter() - t0, "from_disk": hit}
    pool, futures = _pool()
    fkey = f"{method}|{key}"
    fut: Future | None = futures.get(fkey)
    if fut is None or (fut.done() and fut.exception() is not None and st.session_state.get("map_retry")):
        try:
            fut = pool.submit(embed.project_to_cache, codes, method, key)
        except RuntimeError:  # a broken pool (its worker was killed): start a fresh one
            _pool.clear()
            pool, futures = _pool()
            fut = pool.submit(embed.project_to_cache, codes, method, key)
        fut.started = time.time()  # type: ignore[attr-defined]
        futures[fkey] = fut
    if fut.done():
        if fut.exception() is not None:
            return None, {"error": f"{METHODS[method]} failed: {fut.exception()}"}
        return fut.result(), {"seconds": time.time() - fut.started, "from_disk": False}
    return None, {"pending": time.time() - fut.started}


@fragment(run_every=1.0)
def _poll(method: str) -> None:
    """Re-check once a second while a projection is computing; rerun the app when it is ready."""
    waiting = st.session_state.get("map_waiting")
    if not waiting:
        return
    pool, futures = _pool()
    fut = futures.get(waiting)
    if fut is None or fut.done():
        st.session_state["map_waiting"] = None
        st.rerun()
    st.progress(min(0.95, (time.time() - fut.started) / 60.0),
                text=f"Computing the {METHODS[method]} map in the background … {time.time() - fut.started:.0f} s "
                     "(UMAP compiles itself on first use; the result is cached on disk). Keep exploring meanwhile.")


# the panel


@st.cache_data(max_entries=8, show_spinner=False)
def _atlas(dataset: str, data_env: str | None, n: int) -> tuple[bytes, str]:
    """PNG sprite sheet of the first n test images and its id (tile i is test image i)."""
    from explorer.atlas import atlas_id, image_atlas

    images = load_test_data(dataset, data_env)["images"][:n]
    return image_atlas(images), atlas_id(images)


def _on_click(ctx: Ctx) -> None:
    """Runs before the script after a click on the map: load the clicked code into the sliders."""
    click = last_click(MAP_KEY)
    if not click or click["nonce"] == st.session_state.get("map_seen"):
        return
    st.session_state["map_seen"] = click["nonce"]
    if "index" in click:
        idx = click["index"]
        st.session_state["map_idx"] = idx
        set_z(ctx.codes["mu"][idx].tolist(), int(ctx.data["labels"][idx]))
    elif "xy" in click and ctx.latent_dim == 2:
        st.session_state["map_idx"] = None
        set_z(click["xy"])


def _highlights(ctx: Ctx, coords: np.ndarray, n: int) -> list[dict]:
    marks = []
    if st.session_state.get("interp_kind") == "index":
        for side in ("a", "b"):
            i = st.session_state.get(f"interp_idx_{side}")
            if isinstance(i, int) and 0 <= i < n:
                marks.append({"x": float(coords[i, 0]), "y": float(coords[i, 1]), "label": side.upper()})
    if ctx.latent_dim == 2:
        z = st.session_state["z"]
        marks.append({"x": float(z[0]), "y": float(z[1]), "label": "sliders", "marker": "star"})
    return marks


def _selected_panel(ctx: Ctx, idx: int) -> None:
    labels = ctx.data["labels"]
    images = ctx.data["images"]
    st.markdown(f"**Test image #{idx}** · {ctx.class_names[int(labels[idx])]}")
    show_digit(images[idx].astype(np.float32) / 255.0, scale=5)
    st.caption("Its code μ is now in the latent sliders.")
    c1, c2 = st.columns(2)
    c1.button("Use as endpoint A", key="map_end_a", on_click=interpolation.set_endpoint_index, args=("a", idx))
    c2.button("Use as endpoint B", key="map_end_b", on_click=interpolation.set_endpoint_index, args=("b", idx))


def _manifold(ctx: Ctx) -> None:
    n = st.slider("Grid size", 5, 25, 15, key="manifold_n")
    span = st.slider("Range ±", 1.0, 4.0, 3.0, 0.5, key="manifold_span")
    codes, _ = grid_codes(np.zeros(2, np.float32), (0, 1), n, span)
    imgs = decode(ctx, codes, int(st.session_state.get("z_label", 0)))
    st.image(png_bytes(tile(imgs, n, pad=0), 1 if n > 20 else 2),
             caption=f"decoded grid over z0 (→) and z1 (↑), from −{span} to +{span}")


@fragment
def render(ctx: Ctx) -> None:
    rerun_app_if_requested()  # a callback changed shared state: redraw all before drawing anything
    st.subheader("The latent map of the test set")
    labels_all = ctx.data["labels"]
    if not len(labels_all):
        st.error("No test images are available to encode.")
        return
    two_d = ctx.latent_dim == 2
    c1, c2 = st.columns([2, 1])
    method = c1.radio("Projection", list(METHODS), format_func=lambda m: "the latent space itself (2-D)"
                      if two_d and m == "pca" else METHODS[m], key="map_method", horizontal=True)
    sizes = [s for s in (2000, 5000, 10000) if s <= len(labels_all)] or [len(labels_all)]
    n = c2.select_slider("Test images", sizes, value=sizes[min(1, len(sizes) - 1)], key="map_n")
    st.caption("Each dot is one test image's encoder mean μ. Points of one class cluster together even though "
               "the model never saw a label" + (" (this model *was* given the label, so its code holds the "
               "style only and the classes overlap)" if ctx.conditional else "") +
               ". Point at a dot to see its image; click it to load its code into the sliders and offer it as an "
               "interpolation endpoint. Scroll to zoom, drag to pan."
               + (" Pointing at empty space decodes that point of the latent plane." if two_d and method == "pca" else ""))
    coords, status = projection(ctx, method, n)
    if coords is None:
        if "error" in status:
            st.error(status["error"])
            st.session_state["map_retry"] = st.button("Retry")
            return
        st.session_state["map_waiting"] = f"{method}|{ctx.path}|{ctx.fingerprint}|{ctx.data['source']}|n={n}"
        _poll(method)
        return
    how = "from the disk cache" if status.get("from_disk") else f"computed in {status['seconds']:.1f} s"
    atlas_png, atlas_key = _atlas(ctx.dataset, os.environ.get("VAE_EXPLORER_DATA"), n)
    payload = cached_payload(ctx.path, ctx.fingerprint) if two_d and method == "pca" else None
    left, right = st.columns([3, 1]) if not two_d else st.columns([2, 1])
    with left:
        st.caption(f"{'Latent plane' if two_d and method == 'pca' else METHODS[method].split(' ')[0]} of "
                   f"{n} test codes ({how})")
        latent_map(coords, labels_all[:n], class_names=ctx.class_names, atlas_png=atlas_png, atlas_key=atlas_key,
                   highlight=_highlights(ctx, coords, n), decode=payload,
                   decode_label=int(st.session_state.get("z_label", 0)), key=MAP_KEY, height=560,
                   on_click=functools.partial(_on_click, ctx))
    idx = st.session_state.get("map_idx")
    with right:
        if idx is not None and 0 <= idx < len(labels_all):
            _selected_panel(ctx, idx)
        else:
            st.info("Click a dot to pick that test image.")
        if two_d:
            st.markdown("**Decoded manifold**")
            _manifold(ctx)
    rerun_app_if_requested()
