"""Interpolation between two endpoints (classes, test images, prior draws): strip, animation, GIF."""

from __future__ import annotations

import numpy as np
import streamlit as st

from explorer.images import gif_bytes
from explorer.latent import interpolate

from .common import decode, fragment, label_picker, show_strip
from .context import Ctx
from .live import cached_payload, live_scrubber
from .sidebar import request_app_rerun

MODES = {"slerp": "spherical (slerp)", "linear": "linear"}
KINDS = {"class": "two classes", "index": "two test images", "prior": "two prior draws"}


# helpers


def representative(ctx: Ctx, cls: int, draw: int) -> int:
    """Index of a test image of class ``cls``: draw 0 is the one whose code is nearest the class mean."""
    labels = ctx.data["labels"]
    members = np.flatnonzero(labels == cls)
    if not len(members):
        return 0
    if draw == 0:
        mu = ctx.codes["mu"][members]
        return int(members[np.argmin(((mu - mu.mean(0)) ** 2).sum(1))])
    return int(np.random.default_rng(draw).choice(members))


def endpoint(ctx: Ctx, side: str) -> tuple[np.ndarray, int, str]:
    """(code (z,), label, description) for endpoint 'a' or 'b' from the current choices in session state."""
    kind = st.session_state.get("interp_kind", "class")
    if kind == "prior":
        seed = int(st.session_state.get(f"interp_seed_{side}", 1 if side == "a" else 2))
        z = np.random.default_rng(seed).standard_normal(ctx.latent_dim).astype(np.float32)
        return z, int(st.session_state.get("z_label", 0)), f"prior draw (seed {seed})"
    if kind == "class":
        cls = int(st.session_state.get(f"interp_class_{side}", 0 if side == "a" else 1))
        idx = representative(ctx, cls, int(st.session_state.get(f"interp_draw_{side}", 0)))
    else:
        idx = int(st.session_state.get(f"interp_idx_{side}", 0 if side == "a" else 1))
    idx = max(0, min(idx, len(ctx.data["labels"]) - 1))
    label = int(ctx.data["labels"][idx])
    return ctx.codes["mu"][idx], label, f"test image #{idx} ({ctx.class_names[label]})"


def set_endpoint_index(side: str, index: int) -> None:
    """Used by the map: make test image ``index`` endpoint ``side`` ('a'/'b')."""
    st.session_state["interp_kind"] = "index"
    st.session_state[f"interp_idx_{side}"] = int(index)
    request_app_rerun()


def _redraw(side: str) -> None:
    key = f"interp_draw_{side}" if st.session_state.get("interp_kind") == "class" else f"interp_seed_{side}"
    st.session_state[key] = int(st.session_state.get(key, 0)) + 7919


@st.cache_data(max_entries=32, show_spinner=False)
def _gif(frames: np.ndarray, ms: int) -> bytes:
    return gif_bytes(frames, scale=6, ms_per_frame=ms)


# the panel


@fragment
def render(ctx: Ctx) -> None:
    st.subheader("Interpolate between two codes")
    st.caption("Encode two images to their means μ (not samples, so the path does not jitter), walk from one "
               "to the other, and decode every step. **Linear** cuts straight through latent space; "
               "**spherical** (slerp) follows a great circle, keeping the step codes at the typical length of "
               "a Gaussian sample, where the decoder has seen data.")
    n = len(ctx.data["labels"])
    if not n:
        st.error("No test images are available, so there is nothing to interpolate between.")
        return
    st.session_state.setdefault("interp_kind", "class")
    st.radio("Endpoints", list(KINDS), format_func=KINDS.get, key="interp_kind", horizontal=True)
    kind = st.session_state["interp_kind"]
    ca, cb = st.columns(2)
    for side, col in (("a", ca), ("b", cb)):
        with col:
            st.markdown(f"**Endpoint {side.upper()}**")
            if kind == "class":
                st.session_state.setdefault(f"interp_class_{side}", 0 if side == "a" else 1)
                st.selectbox("Class", range(len(ctx.class_names)), format_func=lambda i: ctx.class_names[i],
                             key=f"interp_class_{side}")
            elif kind == "index":
                st.session_state.setdefault(f"interp_idx_{side}", 0 if side == "a" else 1)
                st.number_input("Test image #", 0, n - 1, key=f"interp_idx_{side}",
                                help="Or click a dot on the latent map and choose 'use as endpoint'")
            if kind != "index":
                st.button("↻ Re-draw", key=f"interp_redraw_{side}", on_click=_redraw, args=(side,))
    c1, c2, c3 = st.columns([2, 1.2, 1.2])
    steps = c1.slider("Steps", 2, 24, 10, key="interp_steps")
    mode = c2.radio("Path", list(MODES), format_func=MODES.get, key="interp_mode")
    ms = c3.slider("Animation ms/frame", 40, 400, 100, 10, key="interp_ms")
    za, la, da = endpoint(ctx, "a")
    zb, lb, db = endpoint(ctx, "b")
    label = None
    if ctx.conditional:
        st.session_state.setdefault("interp_label", la)
        label = label_picker(ctx, key="interp_label", label="Class to draw along the path (conditional model)")
    path = interpolate(za, zb, steps, mode)
    frames = decode(ctx, path, label)
    st.markdown(f"**A:** {da} → **B:** {db}")
    show_strip(frames, caption=f"{steps} steps, {MODES[mode]}", scale=3)
    norms = np.linalg.norm(path, axis=1)
    st.caption("‖z‖ along the path: " + " ".join(f"{v:.1f}" for v in norms)
               + f"  (a sample of N(0, I) has ‖z‖ ≈ {np.sqrt(ctx.latent_dim):.1f})")
    gif = _gif(frames, ms)
    g1, g2, g3 = st.columns([2, 1, 1])
    with g1:
        st.markdown("**Scrub along the path**")
        live_scrubber(cached_payload(ctx.path, ctx.fingerprint), [za.tolist(), zb.tolist()], mode=mode, label=label,
                      key="interp-scrub", slider_label="Position from A to B",
                      extra={"display_px": 168, "caption": "decoded in your browser as you drag", "report_ms": 1000})
    with g2:
        st.markdown("**Animation**")
        st.image(gif, caption="there and back", width=28 * 6)
    with g3:
        st.download_button("⬇️ Download GIF", gif, file_name=f"interpolation-{mode}-{steps}.gif", mime="image/gif",
                           key="interp_gif_download", on_click="ignore")
