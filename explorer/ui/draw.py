"""Draw or upload your own digit: MNIST-style preprocessing shown step by step, then what the model
makes of it (reconstruction, place on the latent map, nearest test images, log-likelihood)."""

from __future__ import annotations

import io
import os

import numpy as np
import plotly.graph_objects as go
import streamlit as st
from PIL import Image

from explorer import embed
from explorer.density import input_row, single_log_px
from explorer.images import png_bytes, to_uint8
from explorer.latent import decode_numpy, encode_images
from explorer.preprocess import MAX_UPLOAD_BYTES, PreprocessError, Steps, preprocess, preprocess_upload

from . import canvas
from .common import fragment
from .context import Ctx, load_model, test_codes

SOURCES = ("Draw", "Upload a picture", "A test image")
K_LOG_PX = 200
MAP_POINTS = 3000
PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
           "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]

# cached computations (plain-value keys)


@st.cache_resource(max_entries=8, show_spinner="Fitting the PCA map of the test codes ...")
def pca_map(path: str, fingerprint: str, dataset: str, data_env: str | None) -> embed.Projection:
    """PCA of the test set's encoder means; shared read-only by every session."""
    return embed.fit_projection(test_codes(path, fingerprint, dataset, data_env)["mu"], "pca")


@st.cache_data(max_entries=64, show_spinner=False)
def analyse(path: str, fingerprint: str, digit: bytes, label: int | None) -> dict:
    """What the model makes of one (28, 28) uint8 digit (given as bytes): code, reconstruction, log p(x)."""
    model = load_model(path, fingerprint)[0]
    img = np.frombuffer(digit, np.uint8).reshape(28, 28).copy()
    labels = None if label is None else np.array([label])
    mu, logvar = encode_images(model, img[None], labels)
    return {"mu": mu[0], "logvar": logvar[0], "recon": decode_numpy(model, mu, label)[0],
            "log_px": single_log_px(model, input_row(model, img[None]), label, k=K_LOG_PX, seed=0)}


# helpers


def _data_env() -> str | None:
    return os.environ.get("VAE_EXPLORER_DATA")


def _thing(ctx: Ctx) -> str:
    return "digit" if ctx.dataset == "mnist" else "item"


def _name(ctx: Ctx, c: int) -> str:
    n = ctx.class_names[c]
    return n if n == str(c) else f"{c}: {n}"


def _input_image(ctx: Ctx, source: str) -> tuple[np.ndarray | bytes | None, str]:
    """The raw picture from the chosen source -> (array, bytes of an upload, or None; a note)."""
    if source == "Draw":
        st.caption(f"Draw one {_thing(ctx)}, large, filling most of the square. It is sent to the model when "
                   "you lift the pen.")
        st.space(32)  # room for the canvas's floating toolbar
        return canvas.draw_canvas("draw_canvas"), ""
    if source == "Upload a picture":
        up = st.file_uploader(f"A PNG or JPEG of one {_thing(ctx)} (dark on light or light on dark)",
                              type=["png", "jpg", "jpeg"], key="draw_upload",
                              max_upload_size=MAX_UPLOAD_BYTES // 2**20)
        if up is None:  # the uploader forgets its file while its tab is closed: the last upload is kept
            kept = st.session_state.get("draw_upload_kept")
            if not kept:
                return None, ""
            st.button("Forget it", key="draw_upload_forget", icon=":material/delete:",
                      on_click=lambda: st.session_state.pop("draw_upload_kept", None))
            return kept["bytes"], f"{kept['name']} (your last upload)"
        if up.size > MAX_UPLOAD_BYTES:  # checked before reading or decoding
            st.error(f"{up.name} is {up.size / 2**20:.1f} MB; the limit is {MAX_UPLOAD_BYTES // 2**20} MB.")
            return None, ""
        st.session_state["draw_upload_kept"] = {"bytes": up.getvalue(), "name": up.name}
        return up.getvalue(), up.name
    data = ctx.data
    n = len(data["labels"])
    if not n:
        st.warning(f"No test images to pick from: {data.get('error') or 'the data set is empty'}")
        return None, ""
    st.session_state.setdefault("draw_test_index", 0)
    idx = st.number_input("Test image #", 0, n - 1, key="draw_test_index",
                          help="A real test image goes through the same preprocessing as a drawing.")
    return data["images"][int(idx)], f"test image #{int(idx)} ({_name(ctx, int(data['labels'][int(idx)]))})"


def _steps(raw) -> Steps | None:
    try:
        return preprocess_upload(raw) if isinstance(raw, bytes) else preprocess(raw)
    except PreprocessError as e:
        st.warning(f"Cannot use this picture: {e}.")
        return None


def thumbnail(img: np.ndarray, size: int = 112, frame: float = 0.35) -> bytes:
    """Any (H, W) image in [0, 1] or uint8 -> PNG of a size x size square with a thin border: padded to a
    square with a grey ``frame``, scaled crisply (nearest) when enlarging, smoothly (box) when shrinking."""
    a = to_uint8(np.asarray(img))
    h, w = a.shape
    side = max(h, w)
    square = np.full((side, side), to_uint8(np.float32(frame)), np.uint8)
    square[(side - h) // 2:(side - h) // 2 + h, (side - w) // 2:(side - w) // 2 + w] = a
    pil = Image.fromarray(square)
    pil = pil.resize((size, size), Image.NEAREST if side <= size else Image.BOX)
    framed = np.asarray(pil).copy()
    framed[[0, -1], :] = framed[:, [0, -1]] = 128  # a thin grey border, so white paper shows its edge
    pil = Image.fromarray(framed)
    buf = io.BytesIO()
    pil.save(buf, format="PNG")
    return buf.getvalue()


def _show_steps(steps: Steps) -> None:
    st.markdown("**Preprocessing, like MNIST**")
    gallery = steps.gallery()
    st.image([thumbnail(img) for _, img in gallery], caption=[c for c, _ in gallery], width=112)


def _latent_map(ctx: Ctx, point: np.ndarray) -> go.Figure:
    proj = pca_map(ctx.path, ctx.fingerprint, ctx.dataset, _data_env())
    labels = ctx.data["labels"]
    rng = np.random.default_rng(0)
    show = np.sort(rng.choice(len(proj.coords), min(MAP_POINTS, len(proj.coords)), replace=False))
    fig = go.Figure()
    for c in range(len(ctx.class_names)):
        sel = show[labels[show] == c]
        fig.add_trace(go.Scattergl(x=proj.coords[sel, 0], y=proj.coords[sel, 1], mode="markers",
                                   name=ctx.class_names[c], marker=dict(size=4, color=PALETTE[c % 10], opacity=0.5),
                                   hoverinfo="name"))
    xy = proj.transform(point[None])[0]
    fig.add_trace(go.Scatter(x=[xy[0]], y=[xy[1]], mode="markers", name="yours",
                             marker=dict(symbol="star", size=22, color="gold", line=dict(color="black", width=1.5))))
    axis = "z" if proj.method == "identity" else "PC"
    fig.update_layout(height=380, margin=dict(l=10, r=10, t=30, b=10), legend=dict(itemsizing="constant"),
                      title=f"{'The latent plane' if proj.method == 'identity' else 'PCA of the test codes'}: "
                            f"your {_thing(ctx)} is the star",
                      xaxis_title=f"{axis}1", yaxis_title=f"{axis}2")
    return fig


def _results(ctx: Ctx, steps: Steps, label: int | None) -> None:
    res = analyse(ctx.path, ctx.fingerprint, steps.digit.tobytes(), label)
    data = ctx.data
    st.markdown("**What the model makes of it**")
    c1, c2, c3 = st.columns([1, 1, 2.6])
    c1.image(png_bytes(steps.digit, 5), caption="what the model sees", width=140)
    c2.image(png_bytes(res["recon"], 5), caption="its reconstruction", width=140)
    with c3:
        nll = ctx.meta.get("metrics", {}).get("test_nll")
        typical = f"; test images average {-nll:.1f} nats" if nll is not None else ""
        st.metric(f"log p(x), importance sampling, k = {K_LOG_PX}", f"{res['log_px']:.1f} nats",
                  help="Higher is more likely. The image is binarized like the test set for a Bernoulli decoder.")
        st.caption(f"log p(x{'' if label is None else ' | ' + _name(ctx, label)}) = {res['log_px']:.1f} nats{typical}. "
                   "The density tab explains what this number can and cannot tell.")
    if not len(data["labels"]):
        st.info("No test images are available, so there is no latent map or nearest neighbours to show.")
        return
    codes = ctx.codes
    left, right = st.columns([1.4, 1])
    with left:
        st.plotly_chart(_latent_map(ctx, res["mu"]), key="draw_map")
    with right:
        d = np.linalg.norm(codes["mu"] - res["mu"][None], axis=1)
        near = np.argsort(d)[:5]
        st.markdown("**Its 5 nearest test images** (euclidean distance between encoder means)")
        cols = st.columns(5)
        for col, i in zip(cols, near):
            col.image(png_bytes(data["images"][i], 3), caption=f"{_name(ctx, int(data['labels'][i]))} · {d[i]:.2f}")
        st.caption(f"Nearest labels: {', '.join(ctx.class_names[int(data['labels'][i])] for i in near)}")


# the panel


@fragment
def render(ctx: Ctx) -> None:
    st.subheader(f"Draw or upload your own {_thing(ctx)}")
    st.caption("Your picture is turned into a 28x28 image the way MNIST was made: white ink on black, "
               "cropped, scaled to fit a 20x20 box, and centred by its centre of mass. Then the encoder "
               "places it in the latent space and the decoder draws it back.")
    st.session_state.setdefault("draw_source", SOURCES[0])
    source = st.radio("Source", SOURCES, horizontal=True, key="draw_source", label_visibility="collapsed")
    label = None
    if ctx.conditional:
        st.session_state.setdefault("draw_label", int(st.session_state.get("z_label", 0)))
        label = st.selectbox("Which class is it? (this conditional model encodes and scores it given the label)",
                             range(len(ctx.class_names)), format_func=lambda c: _name(ctx, c), key="draw_label")
    left, right = st.columns([1, 2.2])
    with left:
        raw, note = _input_image(ctx, source)
    if raw is None:
        with right:
            st.info(f"Draw a {_thing(ctx)} on the canvas, upload a picture, or pick a test image to begin.")
        return
    with right:
        if note:
            st.caption(note)
        steps = _steps(raw)
        if steps is None:
            return
        _show_steps(steps)
    _results(ctx, steps, label)
