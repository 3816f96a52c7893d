"""Which dimensions matter: per-dimension KL, active units, traversals and a 2-D manifold grid."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from explorer.images import png_bytes
from explorer.latent import active_units, decode_numpy, grid_codes, kl_per_dimension, tile, traversal

from .common import fragment
from .context import Ctx

STEPS = 9  # images per traversal strip

# helpers


def _name(ctx: Ctx, c: int) -> str:
    n = ctx.class_names[c]
    return n if n == str(c) else f"{c}: {n}"


def dimension_stats(ctx: Ctx) -> dict:
    """KL per dimension (nats), activity, and the dimensions ordered by KL (largest first)."""
    if not len(ctx.data["labels"]):
        z = ctx.latent_dim
        return {"kl": np.zeros(z), "var": np.zeros(z), "active": np.zeros(z, bool), "order": np.arange(z)}
    mu, logvar = ctx.codes["mu"], ctx.codes["logvar"]
    kl = kl_per_dimension(mu, logvar)
    return {"kl": kl, "var": mu.var(0), "active": active_units(mu), "order": np.argsort(-kl, kind="stable")}


def _kl_chart(s: dict, sort: bool) -> go.Figure:
    dims = s["order"] if sort else np.arange(len(s["kl"]))
    colours = ["#1f77b4" if s["active"][d] else "#bbbbbb" for d in dims]
    fig = go.Figure(go.Bar(x=[f"z{d}" for d in dims], y=s["kl"][dims], marker_color=colours,
                           customdata=np.stack([s["var"][dims], s["active"][dims]], 1),
                           hovertemplate="%{x}: KL %{y:.2f} nats<br>Var(mean) %{customdata[0]:.3f}<extra></extra>"))
    fig.update_layout(height=300, margin=dict(l=10, r=10, t=10, b=10), yaxis_title="average KL (nats)",
                      xaxis=dict(type="category"))
    return fig


def _base_code(ctx: Ctx) -> list[float]:
    shared = st.session_state.get("z")
    use_shared = st.session_state.get("dims_base", "current") == "current"
    if use_shared and isinstance(shared, list) and len(shared) == ctx.latent_dim:
        return [float(v) for v in shared]
    return [0.0] * ctx.latent_dim


# sections


def _traversals(ctx: Ctx, s: dict, base: list[float], label: int | None) -> None:
    st.markdown("**Traversals** — one dimension at a time from −span to +span, the others held fixed")
    dim = ctx.latent_dim
    st.session_state.setdefault("dims_n_traverse", min(dim, 8))
    st.session_state.setdefault("dims_span", 3.0)
    c1, c2 = st.columns(2)
    shown = c1.slider("Dimensions shown (most KL first)", 1, dim, key="dims_n_traverse") if dim > 1 else 1
    span = c2.slider("Span", 1.0, 4.0, step=0.5, key="dims_span")
    values = np.linspace(-span, span, STEPS)
    dims = [int(d) for d in s["order"][:shown]]
    codes = np.concatenate([traversal(base, d, values) for d in dims])
    images = decode_numpy(ctx.model, codes, label)
    for i, d in enumerate(dims):
        left, right = st.columns([1, 5], vertical_alignment="center")
        tag = "" if s["active"][d] else " · inactive"
        left.markdown(f"**z{d}**  \nKL {s['kl'][d]:.2f} nats{tag}")
        right.image(png_bytes(tile(images[i * STEPS:(i + 1) * STEPS], STEPS, pad=2, pad_value=0.25), 2),
                    caption=f"z{d} = {values[0]:+.1f} … {values[-1]:+.1f}" if i == len(dims) - 1 else None)


def _manifold(ctx: Ctx, s: dict, base: list[float], label: int | None) -> None:
    st.markdown("**Manifold grid** — decode a grid over two dimensions, the rest held fixed")
    dim = ctx.latent_dim
    if dim < 2:
        st.info("This model has a single latent dimension; its traversal above is the whole manifold.")
        return
    order = [int(d) for d in s["order"]]
    st.session_state.setdefault("dims_grid_x", order[0])
    st.session_state.setdefault("dims_grid_y", order[1])
    st.session_state.setdefault("dims_grid_n", 15)
    fmt = lambda d: f"z{d} (KL {s['kl'][d]:.2f})"  # noqa: E731
    c1, c2, c3 = st.columns(3)
    dx = c1.selectbox("Horizontal", range(dim), format_func=fmt, key="dims_grid_x")
    dy = c2.selectbox("Vertical", range(dim), format_func=fmt, key="dims_grid_y")
    n = c3.slider("Grid size", 5, 25, key="dims_grid_n")
    if dx == dy:
        st.warning("Pick two different dimensions.")
        return
    span = float(st.session_state.get("dims_span", 3.0))
    codes, vals = grid_codes(base, (dx, dy), n=n, span=span)
    mosaic = tile(decode_numpy(ctx.model, codes, label), n, pad=0)
    scale = max(1, 560 // (28 * n))
    st.image(png_bytes(mosaic, scale), width=28 * n * scale,
             caption=f"z{dx} from {vals[0]:+.1f} (left) to {vals[-1]:+.1f} (right); "
                     f"z{dy} from {vals[-1]:+.1f} (top) to {vals[0]:+.1f} (bottom)")


# the panel


@fragment
def render(ctx: Ctx) -> None:
    st.subheader("Which dimensions matter")
    st.caption("The KL term charges each latent dimension for carrying information about the image. "
               "Dimensions that are not worth their cost collapse to the prior: their KL is ~0, the "
               "encoder ignores the image there (its mean hardly varies), and the decoder ignores them.")
    s = dimension_stats(ctx)
    if not len(ctx.data["labels"]):
        st.warning("No test images, so the KL per dimension cannot be measured; the traversals still work.")
    m1, m2, m3 = st.columns(3)
    m1.metric("Latent dimensions", ctx.latent_dim)
    m2.metric("Active units", f"{int(s['active'].sum())} / {ctx.latent_dim}",
              help="Burda et al. (2016): a dimension is active when the variance over test images of its "
                   "encoder mean exceeds 0.01.")
    m3.metric("Total KL (average)", f"{float(s['kl'].sum()):.2f} nats",
              help="Sum of the bars: the KL term of the ELBO, averaged over the test set.")
    sort = st.toggle("Sort by KL", value=True, key="dims_sort")
    st.plotly_chart(_kl_chart(s, sort), key="dims_kl_chart")
    st.caption("Grey bars: inactive dimensions.")

    st.session_state.setdefault("dims_base", "current")
    c1, c2 = st.columns([2, 1])
    c1.radio("Hold the other dimensions at", ["current", "zero"], horizontal=True, key="dims_base",
             format_func={"current": "the current code (Sliders tab)", "zero": "zero (the prior's centre)"}.get)
    label = None
    if ctx.conditional:
        st.session_state.setdefault("dims_label", int(st.session_state.get("z_label", 0)) % len(ctx.class_names))
        label = c2.selectbox("Class y", range(len(ctx.class_names)), format_func=lambda c: _name(ctx, c),
                             key="dims_label")
    base = _base_code(ctx)
    _traversals(ctx, s, base, label)
    _manifold(ctx, s, base, label)
