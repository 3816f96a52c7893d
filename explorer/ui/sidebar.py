"""The sidebar: checkpoint picker (shareable through the URL), data source, a one-line VAE primer."""

from __future__ import annotations

import math
import os

import streamlit as st

from explorer.checkpoints import CheckpointError

from .context import Ctx, checkpoint_dir, list_checkpoints, load_model, load_test_data

Z_LIMIT = 4.0  # slider range is [-Z_LIMIT, Z_LIMIT]


# helpers


def _label(c: dict) -> str:
    m = c["meta"]
    cfg, metrics = m["config"], m.get("metrics", {})
    nll = metrics.get("test_nll")
    parts = [f"z={cfg['latent_dim']}", cfg["likelihood"]]
    if cfg.get("conditional"):
        parts.append("conditional")
    if nll is not None:
        parts.append(f"NLL {nll:.1f}")
    return f"{_rel_name(c)}  ({', '.join(parts)})"


def _rel_name(c: dict) -> str:
    """Checkpoint name relative to the checkpoints folder, e.g. 'mnist-z16' or 'user/my-run'."""
    try:
        rel = os.path.relpath(c["path"], checkpoint_dir())
    except ValueError:
        return c["name"]
    return rel[: -len(".safetensors")] if rel.endswith(".safetensors") else rel


def parse_z(text: str | None, dim: int) -> tuple[list[float] | None, str | None]:
    """A 'z' query value '0.1,-2,...' -> (values clipped to the slider range, None) or (None, why not)."""
    if not text:
        return None, None
    try:
        vals = [float(v) for v in str(text).split(",")]
    except ValueError:
        return None, f"ignored z={str(text)[:40]!r} from the link: not a list of numbers"
    if len(vals) != dim:
        return None, f"ignored z from the link: {len(vals)} values for a {dim}-dimensional model"
    if not all(math.isfinite(v) for v in vals):
        return None, "ignored z from the link: it contains NaN or infinity"
    return [max(-Z_LIMIT, min(Z_LIMIT, v)) for v in vals], None


def format_z(z: list[float]) -> str:
    return ",".join(f"{v:.3g}" for v in z)


def set_z(z: list[float], label: int | None = None) -> None:
    """Make ``z`` the current code everywhere (session state, slider widgets, URL)."""
    z = [float(max(-Z_LIMIT, min(Z_LIMIT, v))) for v in z]
    st.session_state["z"] = z
    st.session_state["z_version"] = st.session_state.get("z_version", 0) + 1
    for d, v in enumerate(z):
        st.session_state[f"zslider_{d}"] = round(v, 2)
    if label is not None:
        st.session_state["z_label"] = int(label)
    st.query_params["z"] = format_z(z)
    request_app_rerun()


def tab_from_link(labels: list[str]) -> str | None:
    """The tab a link asks for (``?tab=<label>``), read on a session's first run only; None: the first tab.

    The URL is not bound to the tabs (``st.tabs(bind="query-params")`` re-reads it on every run): a rerun
    request sent before the URL caught up with a click (a training-status poll, queued behind a tab switch
    on a busy server) carried the old ``tab`` and switched the server back, leaving the page on an empty tab.
    """
    if "_tab_from_link" not in st.session_state:  # the same default on every run: it is part of the widget's id
        wanted = st.query_params.get("tab")
        st.session_state["_tab_from_link"] = wanted if wanted in labels else None
    return st.session_state["_tab_from_link"]


def tab_to_link(labels: list[str]) -> None:
    """Write the open tab into the URL (none for the first tab), so a shared link opens it."""
    current = st.session_state.get("tab")
    if current in labels[1:]:
        if st.query_params.get("tab") != current:
            st.query_params["tab"] = current
    elif "tab" in st.query_params:
        del st.query_params["tab"]


def request_app_rerun() -> None:
    """Ask for a full-app rerun: state that several panels show changed inside one panel's fragment."""
    st.session_state["_rerun_app"] = True


def rerun_app_if_requested() -> None:
    """Rerun the whole app once if a callback changed shared state. Call it at the start of a fragment (images
    the fragment sent before a full rerun can be dropped by the server before the page fetches them: broken
    images under load) and at its end (for requests made while it ran)."""
    if st.session_state.pop("_rerun_app", False):
        st.rerun(scope="app")


# the sidebar


def render() -> Ctx | None:
    """Draw the sidebar; return the chosen checkpoint as a Ctx (None if there is no usable one)."""
    sb = st.sidebar
    sb.title("VAE Explorer")
    sb.caption("A **variational autoencoder** squeezes each image into a few numbers *z* (the encoder), "
               "learns to draw the image back from them (the decoder), and keeps *z* close to a standard "
               "normal so that *any* z decodes to something plausible.")
    entries = list_checkpoints(str(checkpoint_dir()))
    valid = [c for c in entries if c["error"] is None]
    invalid = [c for c in entries if c["error"] is not None]
    if invalid:
        with sb.expander(f"⚠️ {len(invalid)} checkpoint file(s) could not be loaded"):
            for c in invalid:
                st.markdown(f"**{_rel_name(c)}**: {c['error']}")
    if not valid:
        sb.error(f"No usable checkpoint in {checkpoint_dir()}. Train one below or restore checkpoints/.")
        return None
    names = [_rel_name(c) for c in valid]
    wanted = st.query_params.get("ckpt")
    if wanted and wanted not in names:
        sb.warning(f"The link asks for checkpoint {wanted[:60]!r}, which is not here; showing the default.")
        wanted = None
    default = wanted or ("mnist-z16" if "mnist-z16" in names else names[0])
    if "checkpoint" not in st.session_state or st.session_state["checkpoint"] not in names:
        st.session_state["checkpoint"] = default
    elif wanted and wanted != st.session_state["checkpoint"] and not st.session_state.get("_url_applied"):
        st.session_state["checkpoint"] = wanted
    st.session_state["_url_applied"] = True
    by_name = dict(zip(names, valid))
    name = sb.selectbox("Model (checkpoint)", names, key="checkpoint",
                        format_func=lambda n: _label(by_name[n]),
                        help="Every valid file in checkpoints/. Trained models appear here too.")
    c = by_name[name]
    try:  # the listing is cached for 30 s: the file may have been overwritten since
        load_model(c["path"], c["fingerprint"])
    except CheckpointError as e:
        if not st.session_state.get("_relisted"):
            st.session_state["_relisted"] = True
            list_checkpoints.clear()  # list it again: now as broken, and the picker falls back
            st.rerun()
        sb.error(str(e))
        return None
    st.session_state.pop("_relisted", None)
    st.query_params["ckpt"] = name
    ctx = Ctx(path=c["path"], fingerprint=c["fingerprint"], meta=c["meta"])
    _sync_z(ctx)
    train = c["meta"].get("train", {})
    metrics = c["meta"].get("metrics", {})
    with sb.expander("About this model", expanded=False):
        cfg = ctx.config
        st.markdown(
            f"- latent dim **{cfg['latent_dim']}**, hidden {cfg['hidden']}\n"
            f"- decoder: **{cfg['likelihood']}**" + (f" (σ = {cfg['sigma']})" if cfg["likelihood"] == "gaussian" else "")
            + f"\n- β = {cfg['beta']}" + ("\n- conditional on the label" if cfg["conditional"] else "")
            + f"\n- trained on: {train.get('data_source', 'unknown')}, {train.get('epochs', '?')} epochs, "
              f"{train.get('seconds', '?')} s"
            + (f"\n- test −ELBO **{metrics['test_elbo']:.1f}** nats, −log p(x) **{metrics['test_nll']:.1f}** nats "
               f"(k = {metrics.get('k')}, {metrics.get('n')} images)" if "test_nll" in metrics else ""))
    data = load_test_data(ctx.dataset, os.environ.get("VAE_EXPLORER_DATA"))
    if data["error"]:
        sb.error(f"No test images: {data['error']}")
    else:
        sb.caption(f"📁 Data: {data['source']}")
        if data["notices"]:
            with sb.expander("Skipped data sources"):
                for n in data["notices"]:
                    st.caption(n)
    return ctx


def _sync_z(ctx: Ctx) -> None:
    """Keep st.session_state['z'] the right length for this model; take z from the URL once per checkpoint."""
    key = f"{ctx.path}|{ctx.fingerprint}"
    if st.session_state.get("z_for") == key:
        return
    st.session_state["z_for"] = key
    z, why = parse_z(st.query_params.get("z"), ctx.latent_dim)
    if why:
        st.sidebar.warning(why)
    label = st.query_params.get("label")
    try:
        label = int(label) if label is not None else 0
        if not 0 <= label < 10:
            raise ValueError
    except ValueError:
        st.sidebar.warning(f"ignored label={str(label)[:20]!r} from the link: not a class 0-9")
        label = 0
    set_z(z or [0.0] * ctx.latent_dim, label)
