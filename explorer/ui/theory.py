"""Reconstructions, prior samples, and the ELBO and the reparameterization trick with real numbers."""

from __future__ import annotations

import numpy as np
import streamlit as st
import torch

from explorer.evaluate import elbo_per_image, model_inputs

from .common import decode, fragment, label_picker, show_strip
from .context import Ctx, load_model


@st.cache_data(max_entries=16, show_spinner=False)
def _recon_terms(path: str, fingerprint: str, images: np.ndarray, labels: np.ndarray, seed: int) -> dict:
    """Per-image reconstruction term and KL (nats) and the reconstructions (decoder mean at z = μ)."""
    model, _ = load_model(path, fingerprint)
    x = model_inputs(model, images, seed)
    y = torch.as_tensor(labels).long() if model.config.conditional else None
    rec, kl = elbo_per_image(model, x, y, seed=seed)
    with torch.no_grad():
        mu, logvar = model.encode(x, y)
        recon = model.decode(mu, y)[:, 0].numpy()
    return {"rec": rec, "kl": kl, "recon": recon, "x": x.reshape(-1, 28, 28).numpy(),
            "mu": mu.numpy(), "logvar": logvar.numpy()}


def _pick(ctx: Ctx, n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).choice(len(ctx.data["labels"]), size=n, replace=False)


@fragment
def reconstructions(ctx: Ctx) -> None:
    st.subheader("Reconstructions")
    st.caption("Top: test images as the model sees them (binarized for a Bernoulli decoder). Bottom: the decoder's "
               "mean at the encoder's μ. Under each pair: its reconstruction term −log p(x|z) and its KL, in nats.")
    if not len(ctx.data["labels"]):
        st.error("No test images available.")
        return
    c1, c2 = st.columns([3, 1])
    n = c1.slider("Images", 4, 16, 8, key="recon_n")
    if c2.button("🔀 Other images", key="recon_shuffle"):
        st.session_state["recon_seed"] = int(st.session_state.get("recon_seed", 0)) + 1
    idx = _pick(ctx, n, int(st.session_state.get("recon_seed", 0)))
    r = _recon_terms(ctx.path, ctx.fingerprint, ctx.data["images"][idx], ctx.data["labels"][idx], 0)
    show_strip(np.concatenate([r["x"], r["recon"]]), cols=n, scale=4)
    cols = st.columns(n)
    for i, col in enumerate(cols):
        col.caption(f"#{idx[i]}\nrec {r['rec'][i]:.0f}\nKL {r['kl'][i]:.1f}")
    st.markdown(f"Average over these {n}: reconstruction **{r['rec'].mean():.1f}** + KL **{r['kl'].mean():.1f}** "
                f"= −ELBO **{(r['rec'] + r['kl']).mean():.1f}** nats.")


@fragment
def samples(ctx: Ctx) -> None:
    st.subheader("Samples from the prior")
    st.caption("Draw z ~ N(0, T²·I) and decode. T = 1 is the model's actual prior; lower temperatures stay near "
               "the centre (cleaner, less varied), higher ones wander where the decoder saw little data.")
    c1, c2, c3 = st.columns([2, 1, 1])
    temp = c1.slider("Temperature T", 0.1, 2.0, 1.0, 0.05, key="sample_temp")
    with c2:
        label = label_picker(ctx, key="sample_label", label="Class")
    if c3.button("🎲 New samples", key="sample_new"):
        st.session_state["sample_seed"] = int(st.session_state.get("sample_seed", 0)) + 1
    rng = np.random.default_rng(int(st.session_state.get("sample_seed", 0)))
    z = rng.standard_normal((32, ctx.latent_dim)).astype(np.float32) * temp
    show_strip(decode(ctx, z, label), cols=16, scale=3)


@fragment
def elbo(ctx: Ctx) -> None:
    st.subheader("The ELBO, with this model's numbers")
    m = ctx.meta.get("metrics", {})
    cfg = ctx.config
    lik = cfg["likelihood"]
    st.markdown(
        "A VAE cannot compute log p(x) directly, so it maximizes a lower bound, the **ELBO**:\n\n"
        "  log p(x) ≥ E_q(z|x)[ log p(x|z) ] − KL( q(z|x) ‖ p(z) )\n\n"
        "- the first term rewards **reconstruction**: codes drawn from the encoder must decode back to x;\n"
        "- the **KL** term charges for information: it pulls each q(z|x) toward the prior N(0, I), so the latent "
        "space has no holes and prior samples decode to plausible images.\n\n"
        + ("The decoder here is **Bernoulli**: each pixel is on with the probability the decoder outputs, so "
           "−log p(x|z) is the binary cross-entropy summed over 784 pixels."
           if lik == "bernoulli" else
           f"The decoder here is **Gaussian** N(f(z), σ²I) with σ = {cfg['sigma']}: −log p(x|z) = "
           "‖x − f(z)‖² / (2σ²) + 784·log(σ√(2π)). A small σ makes reconstruction errors expensive relative to "
           "the KL (sharper images, less regular latent space); a large σ does the opposite — σ acts like 1/β.")
        + (f"\n\nThis model weights the KL by **β = {cfg['beta']}**" + (" (the true ELBO)." if cfg["beta"] == 1 else
           ": β > 1 trades reconstruction for a smoother, more disentangled latent space; β < 1 the reverse.")))
    if "test_nll" in m:
        gap = m["test_elbo"] - m["test_nll"]
        c = st.columns(4)
        c[0].metric("reconstruction", f"{m['test_rec']:.1f} nats")
        c[1].metric("KL", f"{m['test_kl']:.1f} nats")
        c[2].metric("−ELBO", f"{m['test_elbo']:.1f} nats")
        c[3].metric(f"−log p(x), k={m['k']}", f"{m['test_nll']:.1f} nats", delta=f"gap {gap:.1f}", delta_color="off",
                    help="Importance-weighted estimate. The gap −ELBO − (−log p(x)) is KL(q(z|x) ‖ p(z|x)): how far "
                         "the encoder is from the true posterior.")
        st.caption(f"Averages over {m.get('n')} test images ({m.get('data_source', '')}).")


@fragment
def reparameterization(ctx: Ctx) -> None:
    st.subheader("The reparameterization trick")
    st.markdown("Sampling z ~ N(μ, σ²) is not differentiable in μ and σ. Rewrite the sample as "
                "**z = μ + σ ⊙ ε** with ε ~ N(0, I): the randomness moves into ε, and gradients flow through μ and σ "
                "to the encoder. Below: one test image, its μ and σ per dimension, and decodes of several z = μ + σ·ε.")
    if not len(ctx.data["labels"]):
        return
    n = len(ctx.data["labels"])
    c1, c2 = st.columns([1, 1])
    idx = int(c1.number_input("Test image #", 0, n - 1, 0, key="rep_idx"))
    if c2.button("🎲 New ε", key="rep_eps"):
        st.session_state["rep_seed"] = int(st.session_state.get("rep_seed", 0)) + 1
    r = _recon_terms(ctx.path, ctx.fingerprint, ctx.data["images"][idx:idx + 1], ctx.data["labels"][idx:idx + 1], 0)
    mu, sigma = r["mu"][0], np.exp(0.5 * r["logvar"][0])
    eps = np.random.default_rng(int(st.session_state.get("rep_seed", 0))).standard_normal((8, ctx.latent_dim))
    z = (mu + sigma * eps).astype(np.float32)
    import plotly.graph_objects as go

    dims = [f"z{d}" for d in range(ctx.latent_dim)]
    fig = go.Figure(go.Bar(x=dims, y=mu, error_y=dict(type="data", array=2 * sigma), name="μ ± 2σ"))
    fig.add_trace(go.Scatter(x=dims, y=z[0], mode="markers", marker=dict(size=9, color="crimson"), name="z = μ + σ·ε₁"))
    fig.update_layout(height=300, margin=dict(l=10, r=10, t=10, b=10), yaxis_title="value")
    left, right = st.columns([2, 1])
    with left:
        st.plotly_chart(fig, key="rep_chart")
    with right:
        show_strip(np.concatenate([r["x"], decode(ctx, z, int(ctx.data["labels"][idx]))]), cols=3, scale=3,
                   caption="the input, then decodes of 8 draws of ε")


def render(ctx: Ctx) -> None:
    reconstructions(ctx)
    samples(ctx)
    elbo(ctx)
    reparameterization(ctx)
