"""Choose the digit: a conditional VAE separates *what* (the label y) from *how* (the style z)."""

from __future__ import annotations

import numpy as np
import streamlit as st

from explorer.images import png_bytes
from explorer.latent import decode_numpy, encode_images

from .common import fragment
from .context import Ctx, checkpoint_dir, list_checkpoints

Z_LIMIT = 4.0

# helpers


def _name(ctx: Ctx, c: int) -> str:
    n = ctx.class_names[c]
    return n if n == str(c) else f"{c}: {n}"


def _style_key(d: int) -> str:
    return f"cond_style_{d}"


def _set_style(z: list[float]) -> None:
    for d, v in enumerate(z):
        st.session_state[_style_key(d)] = float(round(max(-Z_LIMIT, min(Z_LIMIT, v)), 2))


def _random_style(dim: int) -> None:
    _set_style(np.random.default_rng().standard_normal(dim).tolist())


def _style(ctx: Ctx) -> list[float]:
    return [float(st.session_state[_style_key(d)]) for d in range(ctx.latent_dim)]


def _row(ctx: Ctx, images: np.ndarray, scale: int = 3) -> None:
    """(C, 28, 28), one per class -> a row of crisp images captioned with the class names."""
    st.image([png_bytes(im, scale) for im in images], caption=list(ctx.class_names), width=28 * scale)


def _every_class(ctx: Ctx, z) -> np.ndarray:
    """One code decoded as each class -> (C, 28, 28)."""
    c = len(ctx.class_names)
    return decode_numpy(ctx.model, np.repeat(np.asarray(z, np.float32)[None], c, axis=0), np.arange(c))


def _not_conditional(ctx: Ctx) -> None:
    st.info("This checkpoint is an ordinary VAE: its decoder sees only z, so the digit it draws is "
            "decided by z alone and you cannot ask it for a particular class. A **conditional** VAE "
            "(Sohn et al., 2015; Kingma et al., 2014) also feeds the label y to the encoder and the "
            "decoder. Then z no longer needs to store *which* digit it is, only *how* it is written — "
            "slant, thickness, width — and the same z can be drawn as every class.")
    conditional = [c["name"] for c in list_checkpoints(str(checkpoint_dir()))
                   if c["error"] is None and c["meta"]["config"].get("conditional")]
    if conditional:
        st.markdown("Pick a conditional checkpoint in the sidebar to try it: "
                    + ", ".join(f"**{n}**" for n in conditional) + ".")
    else:
        st.markdown("No conditional checkpoint is in the checkpoints folder; train one with "
                    "`python -m explorer.train --conditional`.")


# the panel


@fragment
def render(ctx: Ctx) -> None:
    st.subheader("Choose the digit" if ctx.dataset == "mnist" else "Choose the class")
    if not ctx.conditional:
        _not_conditional(ctx)
        return
    st.caption("This model is conditional: the decoder gets the class y *and* a style code z. "
               "Keep z and change y to redraw the same handwriting as another class.")
    dim, classes = ctx.latent_dim, len(ctx.class_names)
    shared = st.session_state.get("z")
    start = shared if isinstance(shared, list) and len(shared) == dim else [0.0] * dim
    if any(_style_key(d) not in st.session_state for d in range(dim)):
        _set_style(start)
    st.session_state.setdefault("cond_label", int(st.session_state.get("z_label", 0)) % classes)

    # 1. one class, one style
    left, right = st.columns([1, 2])
    with right:
        label = st.selectbox("Class y", range(classes), format_func=lambda c: _name(ctx, c), key="cond_label")
        b1, b2, b3 = st.columns(3)
        b1.button("Reset style", on_click=_set_style, args=([0.0] * dim,), key="cond_reset", width="stretch")
        b2.button("🎲 Random style", on_click=_random_style, args=(dim,), key="cond_random", width="stretch")
        b3.button("Style from the Sliders tab", key="cond_from_sliders", width="stretch",
                  on_click=_set_style, args=(start,), disabled=start is not shared,
                  help="Copy the code z of the Sliders tab")
        cols = st.columns(2)
        for d in range(dim):
            cols[d % 2].slider(f"style z{d}", -Z_LIMIT, Z_LIMIT, step=0.05, key=_style_key(d))
    z = _style(ctx)
    with left:
        img = decode_numpy(ctx.model, z, label)[0]
        st.image(png_bytes(img, 9), caption=f"y = {_name(ctx, label)}, style z", width=252)

    # 2. same style, every class
    st.markdown("**Same style, every class** — one z, decoded with each y")
    _row(ctx, _every_class(ctx, z))

    # 3. a test image's style
    st.markdown("**Take a test image's style** — encode it with its true label, then decode that z as every class")
    data = ctx.data
    n = len(data["labels"])
    if not n:
        st.warning(f"No test images: {data.get('error') or 'the data set is empty'}")
        return
    st.session_state.setdefault("cond_test_index", 0)
    c1, c2, c3 = st.columns([1, 1, 3], vertical_alignment="center")
    idx = int(c1.number_input("Test image #", 0, n - 1, key="cond_test_index"))
    true = int(data["labels"][idx])
    c2.image(png_bytes(data["images"][idx], 3), caption=f"test #{idx}: {_name(ctx, true)}", width=84)
    mu, _ = encode_images(ctx.model, data["images"][idx:idx + 1], np.array([true]))
    c3.button("Use this style above", key="cond_use_test", on_click=_set_style, args=(mu[0].tolist(),))
    _row(ctx, _every_class(ctx, mu[0]))
    st.caption(f"The {_name(ctx, true)} slot is the reconstruction; every other slot is the same style "
               "drawn as another class.")
