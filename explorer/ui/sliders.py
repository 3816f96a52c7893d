"""Latent sliders: one per dimension, most-used first; the decoded image shown large."""

from __future__ import annotations

import numpy as np
import streamlit as st

from .common import decode, fragment, label_picker, show_digit, stats
from .context import Ctx
from .live import cached_payload, live_latent
from .sidebar import Z_LIMIT, format_z, rerun_app_if_requested, set_z


def live_mode() -> bool:
    """Whether the sliders decode in the browser: the toggle's value, at first from the link (``?live=0``: off)."""
    return bool(st.session_state.setdefault("live_mode", st.query_params.get("live") != "0"))


def _random(ctx: Ctx) -> None:
    rng = np.random.default_rng()
    set_z(rng.standard_normal(ctx.latent_dim).clip(-Z_LIMIT, Z_LIMIT).tolist())


def _from_test(ctx: Ctx) -> None:
    idx = int(st.session_state.get("start_index", 0))
    data = ctx.data
    if not len(data["labels"]):
        return
    idx = max(0, min(idx, len(data["labels"]) - 1))
    set_z(ctx.codes["mu"][idx].tolist(), int(data["labels"][idx]))


def _slider_moved(d: int) -> None:
    z = list(st.session_state["z"])
    z[d] = float(st.session_state[f"zslider_{d}"])
    st.session_state["z"] = z
    st.query_params["z"] = format_z(z)


def controls(ctx: Ctx) -> None:
    """Reset / random / from-a-test-image buttons (shared by the stock and live slider views)."""
    b1, b2, b3, b4 = st.columns([1, 1, 1.2, 1])
    b1.button("Reset to 0", on_click=set_z, args=([0.0] * ctx.latent_dim,), width="stretch")
    b2.button("🎲 Random from prior", on_click=_random, args=(ctx,), width="stretch",
              help="z ~ N(0, I): what the decoder draws from the prior")
    n = max(1, len(ctx.data["labels"]))
    b3.number_input("Test image #", 0, n - 1, key="start_index", label_visibility="collapsed",
                    help="Index of a test image to start from")
    b4.button("Start from test image", on_click=_from_test, args=(ctx,), width="stretch",
              help="Load the encoder mean of that test image into the sliders")


def _store(z: list[float]) -> None:
    """A code reported by the live component: keep it without pushing it back to the browser."""
    st.session_state["z"] = [float(v) for v in z]
    for d, v in enumerate(z):
        st.session_state[f"zslider_{d}"] = round(float(max(-Z_LIMIT, min(Z_LIMIT, v))), 2)
    st.query_params["z"] = format_z(z)


def _stock(ctx: Ctx, s: dict, label: int | None) -> None:
    """One st.slider per dimension (updates on release) and the digit decoded on the server."""
    left, right = st.columns([1, 2])
    with left:
        img = decode(ctx, st.session_state["z"], label)[0]
        show_digit(img, caption="decoder mean  p(x | z)", scale=12, width="stretch")
    with right:
        cols = st.columns(2)
        for i, d in enumerate(s["order"]):
            key = f"zslider_{d}"
            st.session_state.setdefault(key, round(st.session_state["z"][d], 2))
            cols[i % 2].slider(_dim_label(s, d), -Z_LIMIT, Z_LIMIT, step=0.05, key=key,
                               on_change=_slider_moved, args=(d,))


def _dim_label(s: dict, d: int) -> str:
    return f"z{d} · KL {s['kl'][d]:.2f} nats" + (" · collapsed" if s["collapsed"][d] else "")


@fragment
def render(ctx: Ctx) -> None:
    rerun_app_if_requested()  # a callback changed shared state: redraw all before drawing anything
    st.subheader("Move through the latent space")
    st.caption("Each slider is one coordinate of z. The decoder turns z into an image. Sliders are "
               "ordered by how much the model uses each dimension (its average KL on the test set); "
               "dimensions the model ignores are marked *collapsed* and barely change the image.")
    controls(ctx)
    c1, c2 = st.columns([2, 1])
    with c1:
        live_mode()
        live_on = st.toggle("Decode in the browser while dragging", key="live_mode",
                            help="The decoder's weights are sent to your browser once, so the digit follows the "
                                 "slider on every frame. Off: the server decodes when you release the slider.")
    with c2:
        label = label_picker(ctx)
    s = stats(ctx)
    if live_on:
        z = st.session_state["z"]
        new = live_latent(cached_payload(ctx.path, ctx.fingerprint), z, label=label,
                          ranges=[(-Z_LIMIT, Z_LIMIT)] * ctx.latent_dim, dim_order=s["order"],
                          dim_labels=[_dim_label(s, d) for d in range(ctx.latent_dim)], key="live-z",
                          extra={"caption": "decoder mean p(x | z), decoded in your browser", "step": 0.01},
                          fallback_decode=lambda v: decode(ctx, v, label)[0])
        if new is not None and new != z:
            _store(new)
    else:
        _stock(ctx, s, label)
    st.caption(f"‖z‖ = {np.linalg.norm(st.session_state['z']):.2f}  (typical for N(0, I): "
               f"≈ √{ctx.latent_dim} = {np.sqrt(ctx.latent_dim):.1f})")
    rerun_app_if_requested()
