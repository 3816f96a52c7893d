"""Small cached computations and widgets shared by several panels."""

from __future__ import annotations

import functools

import numpy as np
import streamlit as st

from explorer.images import png_bytes
from explorer.latent import decode_numpy, kl_per_dimension, tile

from .context import Ctx, load_model, test_codes


def fragment(func=None, *, run_every: float | None = None):
    """``st.fragment`` whose every call sits alone in a container of its own (use it instead of st.fragment).

    Works around a race in Streamlit (seen in 1.67, under load): a fragment run that starts before the
    previous full run's messages left the server drops that run's unsent messages *for the fragment*,
    including its container, yet keeps the run's "finished successfully", on which the browser removes
    every element the run did not send. The fragment's old container goes, its later siblings shift up one
    place, and the fragment run then writes its container over a sibling, or past the end of the list:
    "Bad delta path index 7 (should be between [0, 6])", a white page. A fragment that is the only child
    of its parent has no siblings to shift, and its container always lands at index 0, which is valid even
    in an emptied parent. The outer container is drawn by full runs only (a fragment run redraws just the
    fragment), so it is never dropped that way.
    """
    def wrap(f):
        frag = st.fragment(f, run_every=run_every)

        @functools.wraps(f)
        def call(*args, **kwargs):
            with st.container():
                return frag(*args, **kwargs)
        return call
    return wrap(func) if func is not None else wrap


@st.cache_data(max_entries=16, show_spinner=False)
def dim_stats(path: str, fingerprint: str, dataset: str, data_env: str | None) -> dict:
    """Per-dimension average KL (nats) and the display order (most used first)."""
    codes = test_codes(path, fingerprint, dataset, data_env)
    kl = kl_per_dimension(codes["mu"], codes["logvar"])
    return {"kl": kl.tolist(), "order": np.argsort(-kl).tolist(), "collapsed": (kl < 0.05).tolist()}


def stats(ctx: Ctx) -> dict:
    import os

    return dim_stats(ctx.path, ctx.fingerprint, ctx.dataset, os.environ.get("VAE_EXPLORER_DATA"))


def decode(ctx: Ctx, z, label: int | None = None) -> np.ndarray:
    """Decode codes (B, z) or (z,) with the shared model -> (B, 28, 28)."""
    return decode_numpy(load_model(ctx.path, ctx.fingerprint)[0], z, label if ctx.conditional else None)


def show_digit(img: np.ndarray, caption: str | None = None, scale: int = 10, width: int | str | None = None) -> None:
    """One (H, W) image, upscaled crisply (PNG with nearest-neighbour pixels; the browser only shrinks it)."""
    st.image(png_bytes(img, scale), caption=caption, width=width or "content")


def show_strip(images: np.ndarray, cols: int | None = None, scale: int = 3, caption: str | None = None) -> None:
    """A row/grid of (N, H, W) images as one crisp mosaic."""
    mosaic = tile(images, cols or len(images), pad=2, pad_value=0.25)
    st.image(png_bytes(mosaic, scale), caption=caption)


def label_picker(ctx: Ctx, key: str = "z_label", label: str = "Class to draw") -> int | None:
    """For conditional models a class selector bound to session state; None otherwise."""
    if not ctx.conditional:
        return None
    names = ctx.class_names
    st.session_state.setdefault(key, 0)
    return st.selectbox(label, range(len(names)), format_func=lambda i: f"{i}: {names[i]}" if names[i] != str(i) else names[i],
                        key=key)


# Widgets in a tab that is not open are not drawn, and Streamlit forgets the state of a widget that was not
# drawn in a run. Writing these keys back at the start of each run keeps their values across tab switches.
# Only value widgets belong here: a button's or an uploader's state cannot be written.
KEPT_WIDGET_KEYS = (
    "zslider_", "start_index", "live_mode", "z_label",
    "interp_kind", "interp_class_", "interp_idx_", "interp_steps", "interp_mode", "interp_ms", "interp_label",
    "map_method", "map_n", "manifold_n", "manifold_span",
    "recon_n", "sample_temp", "sample_label", "rep_idx",
    "draw_source", "draw_test_index", "draw_label",
    "cond_label", "cond_style_", "cond_test_index",
    "density_index", "density_k", "density_ref_on", "density_ref_n", "density_ref_k", "density_anomaly_on",
    "density_anomaly_limit", "density_anomaly_k", "density_mc_on", "density_mc_n", "density_mc_repeats",
    "dims_n_traverse", "dims_span", "dims_grid_x", "dims_grid_y", "dims_grid_n", "dims_sort", "dims_base", "dims_label",
)


def keep_widget_state(prefixes: tuple[str, ...] = KEPT_WIDGET_KEYS) -> None:
    """Write every kept widget value back into session state (see KEPT_WIDGET_KEYS)."""
    state = st.session_state
    for k in list(state.keys()):
        if isinstance(k, str) and k.startswith(prefixes):
            state[k] = state[k]
