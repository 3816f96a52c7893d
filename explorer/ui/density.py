"""How likely is this image: log p(x) by importance sampling, its place among the test set's scores,
what out-of-distribution images score, and why sampling from q(z|x) beats sampling from the prior.

The expensive parts (scoring thousands of images, tens of thousands of samples) start only when the
user switches them on, and are cached per checkpoint, so the app's first load stays fast.
"""

from __future__ import annotations

import os

import numpy as np
import plotly.graph_objects as go
import streamlit as st
import torch

from explorer import density
from explorer.data import CLASS_NAMES
from explorer.evaluate import iwae_log_px, model_inputs
from explorer.images import png_bytes

from .common import fragment
from .context import Ctx, load_model, load_test_data

REF_K = 50  # importance samples per image for the test set's reference scores
REF_N = 2000  # test images scored for the reference
CHUNK = 250
MC_K_LINE = 1000  # the IWAE reference line in the sampling comparison
COLOURS = {"prior": "#d62728", "encoder": "#1f77b4"}
SET_COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#7f7f7f", "#9467bd"]

# helpers


def _data_env() -> str | None:
    return os.environ.get("VAE_EXPLORER_DATA")


def _name(ctx: Ctx, c: int) -> str:
    n = ctx.class_names[c]
    return n if n == str(c) else f"{c}: {n}"


def _inputs(model, dataset: str, data_env: str | None, seed: int) -> torch.Tensor:
    """The whole test set prepared like ``evaluate`` does (same binarization for every caller) -> (N, 784)."""
    return model_inputs(model, load_test_data(dataset, data_env)["images"], seed)


# cached computations (plain-value keys)


@st.cache_data(max_entries=256, show_spinner=False)
def reference_chunk(path: str, fingerprint: str, dataset: str, data_env: str | None, start: int, stop: int,
                    k: int, seed: int = 0) -> np.ndarray:
    """log p(x) (or log p(x|y) for a conditional model) of test images start..stop-1 -> (stop-start,) nats."""
    model = load_model(path, fingerprint)[0]
    data = load_test_data(dataset, data_env)
    x = _inputs(model, dataset, data_env, seed)[start:stop]
    y = torch.as_tensor(data["labels"][start:stop]).long() if model.config.conditional else None
    return iwae_log_px(model, x, y, k=k, seed=seed + start)


@st.cache_data(max_entries=256, show_spinner=False)
def image_score(path: str, fingerprint: str, dataset: str, data_env: str | None, index: int, k: int,
                seed: int = 0) -> float:
    """log p(x) of test image ``index`` with k importance samples -> nats."""
    model = load_model(path, fingerprint)[0]
    label = int(load_test_data(dataset, data_env)["labels"][index])
    return density.single_log_px(model, _inputs(model, dataset, data_env, seed)[index], label, k=k, seed=seed)


@st.cache_data(max_entries=16, show_spinner=False)
def anomaly(path: str, fingerprint: str, dataset: str, data_env: str | None, k: int, limit: int,
            seed: int = 0) -> dict:
    """Scores of the four sets -> {scores, ink: name -> (n,); names; other_labels, other_classes; why_missing}."""
    model = load_model(path, fingerprint)[0]
    own = load_test_data(dataset, data_env)
    other_name = "fashion" if dataset == "mnist" else "mnist"
    other = load_test_data(other_name, data_env)
    names = ("test digits", "Fashion-MNIST") if dataset == "mnist" else ("test items", "MNIST digits")
    sets = density.anomaly_sets(own["images"], other["images"] if not other["error"] else None,
                                limit=limit, names=names, seed=seed)
    scores = density.anomaly_scores(model, sets, k=k, limit=limit, seed=seed)
    return {"scores": scores, "ink": {n: density.ink_fraction(v) for n, v in sets.items()},
            "names": names, "other_labels": other["labels"][:limit], "other_classes": CLASS_NAMES[other_name],
            "why_missing": other["error"]}


@st.cache_data(max_entries=16, show_spinner=False)
def sampling_race(path: str, fingerprint: str, dataset: str, data_env: str | None, index: int, n: int,
                  repeats: int, seed: int = 0) -> dict:
    """Running estimates (prior vs encoder), log-spaced, plus the IWAE k=1000 value and KL(q||p)."""
    model = load_model(path, fingerprint)[0]
    label = int(load_test_data(dataset, data_env)["labels"][index])
    x = _inputs(model, dataset, data_env, seed)[index]
    runs = density.running_estimates(model, x, label, n=n, repeats=repeats, seed=seed)
    steps = density.log_spaced(n)
    return {"n": steps, "runs": {p: r[:, steps - 1] for p, r in runs.items()},
            "final": {p: r[:, -1] for p, r in runs.items()},
            "iwae": density.single_log_px(model, x, label, k=MC_K_LINE, seed=seed + 10_000),
            "kl": density.posterior_kl(model, x, label)}


# sections


def _reference_scores(ctx: Ctx, n_ref: int, k: int) -> np.ndarray:
    """Score the first n_ref test images chunk by chunk, with a progress bar while anything is computed."""
    bar = st.progress(0.0, text=f"Scoring {n_ref} test images with k = {k} ...")
    parts = []
    for start in range(0, n_ref, CHUNK):
        stop = min(start + CHUNK, n_ref)
        parts.append(reference_chunk(ctx.path, ctx.fingerprint, ctx.dataset, _data_env(), start, stop, k))
        bar.progress(stop / n_ref, text=f"Scoring test images with k = {k}: {stop} / {n_ref}")
    bar.empty()
    return np.concatenate(parts)


def _how_likely(ctx: Ctx) -> int:
    data = ctx.data
    n = len(data["labels"])
    st.session_state.setdefault("density_index", 0)
    st.session_state.setdefault("density_k", 200)
    c1, c2, c3 = st.columns([1, 2, 2])
    with c2:
        idx = int(st.number_input("Test image #", 0, n - 1, key="density_index"))
        k = st.slider("Importance samples k", 1, 2000, key="density_k",
                      help="log p(x) ≈ log (1/k) Σ p(x, z_i) / q(z_i|x) with z_i ~ q(z|x) (Burda et al., 2016). "
                           "It is a lower bound in expectation that tightens as k grows; k = 1 is one-sample ELBO.")
    label = int(data["labels"][idx])
    c1.image(png_bytes(data["images"][idx], 5), caption=f"#{idx}: {_name(ctx, label)}", width=140)
    score = image_score(ctx.path, ctx.fingerprint, ctx.dataset, _data_env(), idx, int(k))
    given = f" | y = {_name(ctx, label)}" if ctx.conditional else ""
    with c3:
        st.metric(f"log p(x{given})", f"{score:.1f} nats", help=f"k = {k}, binarized like the test set")
        bits = -score / np.log(2)
        st.caption(f"−log p(x) = {bits:.0f} bits to encode this image, {bits / 784:.3f} bits per pixel")
    st.session_state.setdefault("density_ref_on", False)
    st.session_state.setdefault("density_ref_n", REF_N)
    st.session_state.setdefault("density_ref_k", REF_K)
    n_ref = min(int(st.session_state["density_ref_n"]), n)
    k_ref = int(st.session_state["density_ref_k"])
    on = st.toggle(f"Compare with the test set (scores {n_ref} test images with k = {k_ref}; "
                   "takes a while the first time)", key="density_ref_on")
    if on:
        with st.expander("Reference set"):
            r1, r2 = st.columns(2)
            r1.select_slider("Test images scored", [250, 500, 1000, 2000, 5000, 10_000], key="density_ref_n")
            r2.select_slider("k per test image", [5, 10, 20, 50, 100], key="density_ref_k")
        ref = _reference_scores(ctx, n_ref, k_ref)
        pct = density.percentile_of(ref, score)
        st.markdown(f"This image scores higher than **{pct:.0f}%** of the first {n_ref} test images "
                    f"(median {np.median(ref):.1f} nats). The reference uses k = {k_ref}; a larger k raises "
                    "every estimate a little, so compare at similar k.")
        fig = go.Figure(go.Histogram(x=ref, nbinsx=60, marker_color="#9ecae1", name="test images"))
        fig.add_vline(x=score, line_color="#d62728", line_width=3,
                      annotation_text=f"#{idx}: {pct:.0f}th percentile", annotation_position="top")
        fig.update_layout(height=280, margin=dict(l=10, r=10, t=30, b=10), xaxis_title="log p(x), nats",
                          yaxis_title="test images", showlegend=False)
        st.plotly_chart(fig, key="density_ref_hist")
    return idx


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])


def _anomaly_view(ctx: Ctx) -> None:
    st.markdown("#### Does a high likelihood mean *looks like the training data*?")
    st.caption("Score four kinds of images with the same model: its own test set, the same images rotated a "
               "quarter turn, images from another data set, and uniform noise.")
    default_limit = 100 if ctx.conditional else 500
    st.session_state.setdefault("density_anomaly_on", False)
    st.session_state.setdefault("density_anomaly_limit", default_limit)
    st.session_state.setdefault("density_anomaly_k", REF_K)
    on = st.toggle("Score the four sets", key="density_anomaly_on",
                   help="A conditional model is scored once per class (log p(x) = log mean_y p(x|y)): 10x slower.")
    c1, c2 = st.columns(2)
    limit = c1.select_slider("Images per set", [20, 50, 100, 200, 500, 1000, 2000], key="density_anomaly_limit")
    k = c2.select_slider("k per image", [5, 10, 20, 50, 100, 200], key="density_anomaly_k")
    if not on:
        return
    with st.spinner(f"Scoring up to {4 * limit} images with k = {k} ..."):
        res = anomaly(ctx.path, ctx.fingerprint, ctx.dataset, _data_env(), int(k), int(limit))
    scores, ink = res["scores"], res["ink"]
    own, other = res["names"]
    fig = go.Figure()
    for i, (name, s) in enumerate(scores.items()):
        fig.add_trace(go.Histogram(x=s, name=f"{name} (median {np.median(s):.0f})", opacity=0.6, nbinsx=60,
                                   marker_color=SET_COLOURS[i % len(SET_COLOURS)]))
    fig.update_layout(barmode="overlay", height=340, margin=dict(l=10, r=10, t=10, b=10),
                      xaxis_title="log p(x), nats (higher = the model finds it more likely)", yaxis_title="images",
                      legend=dict(orientation="h", y=-0.25))
    st.plotly_chart(fig, key="density_anomaly_hist")
    summary = density.summarise(scores)
    st.dataframe({"set": list(summary), "median log p(x)": [round(v["median"], 1) for v in summary.values()],
                  "10th pct": [round(v["p10"], 1) for v in summary.values()],
                  "90th pct": [round(v["p90"], 1) for v in summary.values()],
                  "images": [v["n"] for v in summary.values()]}, hide_index=True)
    if res["why_missing"]:
        st.info(f"{other} is not shown: {res['why_missing']}")
    thing = "a digit" if ctx.dataset == "mnist" else "a fashion item"
    lesson = [f"- **Noise** is far below everything else (median {summary['uniform noise']['median']:.0f} nats): "
              f"the model is sure it is not {thing}."]
    own_med, own_p10 = summary[own]["median"], summary[own]["p10"]
    own_word = own.removeprefix("test ")[:-1]  # "digit" / "item"
    rotated = next((n for n in scores if n.startswith("rotated")), None)
    if rotated:
        share = 100.0 * np.mean(scores[rotated] > own_p10)
        lesson.append(f"- **{share:.0f}%** of the rotated images score above the 10th percentile of real test "
                      f"{own_word}s ({own_p10:.0f} nats), though most of them are not {own_word}s any more.")
    if other in scores:
        s_other = scores[other]
        above = 100.0 * np.mean(s_other > own_med)
        above_p10 = 100.0 * np.mean(s_other > own_p10)
        top = density.class_medians(s_other, res["other_labels"], res["other_classes"])[:3]
        liked = ", ".join(f"{n} ({m:.0f})" for n, m in top)
        if above >= 50:
            lesson.append(f"- **{above:.0f}%** of the {other} images score *above* the median test {own_word} "
                          f"({own_med:.0f} nats): the model finds images it never saw more likely than its own data. "
                          f"Its favourite {other} classes: {liked}.")
        else:
            lesson.append(f"- {above:.0f}% of the {other} images score above the median test {own_word} and "
                          f"{above_p10:.0f}% above its 10th percentile. The {other} classes it rates highest are "
                          f"{liked}: the sparse ones, with the fewest ink pixels.")
    real = [n for n in scores if n != "uniform noise"]
    if real:
        rho = _spearman(np.concatenate([ink[n] for n in real]), np.concatenate([scores[n] for n in real]))
        lesson.append(f"- Across the non-noise images, rank correlation between the share of ink pixels and the "
                      f"score is **ρ = {rho:+.2f}**: " + ("the less ink, the higher the likelihood." if rho < 0 else
                                                          "here more ink goes with a higher score."))
    st.markdown("\n".join(lesson))
    st.markdown(
        "**The lesson.** log p(x) counts how cheaply the decoder can describe an image pixel by pixel. "
        "An image with little ink is cheap to describe whether or not it is "
        f"{'a digit' if ctx.dataset == 'mnist' else 'a fashion item'}, so simple unusual images can score as well as, "
        "or better than, real ones, while busy ones score low even when they are perfectly normal. "
        "Likelihood alone is a poor out-of-distribution detector (Nalisnick et al., 2019, *Do deep generative "
        "models know what they don't know?*): it reliably catches noise, not a sideways digit or a sandal.")


def _sampling_race(ctx: Ctx, idx: int) -> None:
    st.markdown("#### Why sample z from the encoder? Monte Carlo vs importance sampling")
    st.caption("Two ways to estimate p(x) = E_{z ~ p(z)}[p(x|z)] for the image above. "
               "**Prior:** average p(x|z) over z drawn from N(0, I). **Encoder:** draw z from q(z|x) and weight "
               "each p(x|z) by p(z)/q(z|x). Both are unbiased for p(x); their spread is not the same at all.")
    st.session_state.setdefault("density_mc_on", False)
    st.session_state.setdefault("density_mc_n", 10_000)
    st.session_state.setdefault("density_mc_repeats", 4)
    on = st.toggle("Run both estimators", key="density_mc_on")
    c1, c2 = st.columns(2)
    n = c1.select_slider("Samples n", [1000, 3000, 10_000, 30_000, 100_000], key="density_mc_n")
    repeats = c2.slider("Repeats (for the band)", 2, 8, key="density_mc_repeats")
    if not on:
        return
    with st.spinner(f"Drawing {2 * n * repeats:,} samples ..."):
        r = sampling_race(ctx.path, ctx.fingerprint, ctx.dataset, _data_env(), idx, int(n), int(repeats))
    steps, iwae = r["n"], r["iwae"]
    fig = go.Figure()
    names = {"prior": "z from the prior p(z)", "encoder": "z from the encoder q(z|x), weighted"}
    for p in ("prior", "encoder"):
        runs = r["runs"][p]
        lo, mid, hi = runs.min(0), np.median(runs, 0), runs.max(0)
        c = COLOURS[p]
        fig.add_trace(go.Scatter(x=np.concatenate([steps, steps[::-1]]), y=np.concatenate([hi, lo[::-1]]),
                                 fill="toself", fillcolor=c, opacity=0.2, line=dict(width=0), hoverinfo="skip",
                                 showlegend=False))
        fig.add_trace(go.Scatter(x=steps, y=mid, name=f"{names[p]} (median of {len(runs)})", line=dict(color=c)))
    fig.add_hline(y=iwae, line_dash="dash", line_color="black",
                  annotation_text=f"IWAE, k = {MC_K_LINE}: {iwae:.1f}", annotation_position="bottom right")
    everything = np.concatenate([r["runs"]["prior"].ravel(), r["runs"]["encoder"].ravel()])
    low = max(float(everything.min()), iwae - 300.0)
    fig.update_layout(height=380, margin=dict(l=10, r=10, t=10, b=10), xaxis_type="log",
                      xaxis_title="number of samples n (log scale)", yaxis_title="running estimate of log p(x), nats",
                      yaxis_range=[low - 5, max(float(everything.max()), iwae) + 5],
                      legend=dict(orientation="h", y=-0.25))
    st.plotly_chart(fig, key="density_mc_chart")
    gap_prior = round(iwae - float(np.median(r["final"]["prior"])), 1) + 0.0  # + 0.0: no "-0.0"
    gap_enc = round(iwae - float(np.median(r["final"]["encoder"])), 1) + 0.0
    kl = r["kl"]
    st.markdown(
        f"After n = {n:,} samples the prior estimate is still **{gap_prior:.1f} nats** below the IWAE value, the "
        f"encoder estimate **{gap_enc:.1f}**. Why: almost every z from the prior decodes to a different image, "
        f"so p(x|z) is astronomically small except in the tiny region q(z|x) covers. Here KL(q(z|x) ‖ p(z)) = "
        f"{kl:.1f} nats, and prior sampling needs on the order of e^KL ≈ 10^{kl / np.log(10):.0f} draws to land "
        "there even once; the encoder lands there with its first sample. This is why VAEs need an encoder at all.")


# the panel


@fragment
def render(ctx: Ctx) -> None:
    st.subheader("How likely is this image?")
    st.caption("A VAE defines a density p(x) = ∫ p(x|z) p(z) dz. It has no closed form, but importance "
               "sampling with the encoder as proposal estimates it well. Scores are in nats; higher means "
               "more likely, and a typical test image sits around −(test NLL).")
    if not len(ctx.data["labels"]):
        st.warning(f"No test images to score: {ctx.data.get('error') or 'the data set is empty'}")
        return
    idx = _how_likely(ctx)
    st.divider()
    _anomaly_view(ctx)
    st.divider()
    _sampling_race(ctx, idx)
