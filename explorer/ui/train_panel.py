"""Sidebar panel: train a new model in the background (one job per server), watch it, switch to it.

The form validates with ModelConfig/TrainConfig and shows each ConfigError under its field; the job
itself runs in explorer.jobs (a child process). While it runs, one fragment polls its snapshot once
a second (progress, ETA, who started it, Cancel) and another every few seconds (curves and samples:
the charts are what costs a browser most to redraw). In classroom mode (``$VAE_EXPLORER_ADMIN_TOKEN``
or ``admin_token`` in the Streamlit secrets) starting and cancelling need that token.
"""

from __future__ import annotations

import hmac
import os
import secrets
import time
from pathlib import Path

import numpy as np
import streamlit as st

from explorer import jobs
from explorer.config import ConfigError, ModelConfig, TrainConfig
from explorer.data import DataError, load_dataset
from explorer.images import png_bytes
from explorer.latent import tile

from .common import fragment
from .context import list_checkpoints
from .sidebar import rerun_app_if_requested

ADMIN_ENV = "VAE_EXPLORER_ADMIN_TOKEN"
DATASETS = {"mnist": "MNIST", "fashion": "Fashion-MNIST"}
LIKELIHOODS = {"bernoulli": "Bernoulli (binary pixels)", "gaussian": "Gaussian (grey levels, σ below)"}
FIELDS = ("dataset", "latent_dim", "hidden", "likelihood", "sigma", "beta", "conditional", "epochs", "lr",
          "batch_size", "augment", "limit", "name", "owner", "token")
FIELD_LABELS = {"dataset": "Dataset", "latent_dim": "Latent dimensions", "hidden": "Hidden layer widths",
                "sigma": "σ", "beta": "β", "epochs": "Epochs", "batch_size": "Batch size", "lr": "Learning rate",
                "limit": "Limit training images", "name": "Name of the new model", "token": "Admin token"}
# While a job runs every open page polls it; a poll is a server rerun of a fragment, and the server's reruns
# share one interpreter (GIL), so with a class of 20 the polls alone could keep a core busy. The page that
# started the job polls often; every other page (who only need to see that a job runs, and how far) seldom.
POLL_S = 1.0  # seconds between updates of the progress bar, on the page that started the job
CURVES_S = 4.0  # ... and of the curves and samples (re-drawing plotly charts costs the browser)
POLL_OTHERS_S = 5.0  # the same, on every other page
CURVES_OTHERS_S = 20.0
_CHECKED_SOURCES: set[str] = set()  # datasets whose source someone looked up (the lookup is cached)


# helpers


@st.cache_data(max_entries=4, show_spinner="Looking for the training images ...")
def training_data_source(dataset: str, data_env: str | None) -> dict:
    """Where a training run would get its images: {source, n, notices, error}; data_env keys the cache."""
    try:
        ds = load_dataset(dataset, "train")
    except DataError as e:
        return {"source": None, "n": 0, "notices": [], "error": str(e)}
    return {"source": ds.source, "n": len(ds), "notices": list(ds.notices), "error": None}


def admin_token() -> str | None:
    """The classroom admin token ($VAE_EXPLORER_ADMIN_TOKEN, else st.secrets['admin_token']), or None."""
    token = os.environ.get(ADMIN_ENV)
    if token:
        return token
    try:
        token = st.secrets.get("admin_token")
    except Exception:  # no secrets file at all: st.secrets raises  # noqa: BLE001
        return None
    return str(token) if token else None


def token_ok(typed: str | None, token: str | None) -> bool:
    """True if no token is required, or ``typed`` is it (constant-time comparison)."""
    if not token:
        return True
    return hmac.compare_digest((typed or "").encode(), token.encode())


def parse_hidden(text: str) -> tuple[int, ...]:
    """'512, 256' -> (512, 256); ConfigError('hidden') if it is not a list of integers."""
    try:
        widths = tuple(int(w) for w in str(text).replace(" ", "").split(",") if w)
    except ValueError as e:
        raise ConfigError("hidden", f"must be comma-separated integers such as 512,256, got {text!r}") from e
    if not widths:
        raise ConfigError("hidden", "give at least one layer width, e.g. 256")
    return widths


def configs_from_form(v: dict) -> tuple[ModelConfig, TrainConfig]:
    """Form values -> validated configs; ConfigError names the offending field."""
    mc = ModelConfig(latent_dim=int(v["latent_dim"]), hidden=parse_hidden(v["hidden"]),
                     likelihood=v["likelihood"], sigma=float(v["sigma"]), beta=float(v["beta"]),
                     conditional=bool(v["conditional"])).validate()
    epochs = int(v["epochs"])
    limit = int(v["limit"] or 0)
    if limit < 0:
        raise ConfigError("limit", "must be 0 (all images) or a positive number")
    tc = TrainConfig(dataset=v["dataset"], epochs=epochs, batch_size=int(v["batch_size"]), lr=float(v["lr"]),
                     augment=bool(v["augment"]), warmup_epochs=max(0, min(5, epochs // 4)),
                     limit=limit or None, eval_k=100, eval_limit=2000).validate()
    return mc, tc


def rel_name(path: str | Path, checkpoint_dir: Path) -> str:
    """The picker's name of a checkpoint: its path relative to the folder, without the suffix ('user/run')."""
    rel = os.path.relpath(path, checkpoint_dir)
    return rel[: -len(jobs.SUFFIX)] if rel.endswith(jobs.SUFFIX) else rel


def _ago(t: float | None) -> str:
    if not t:
        return "?"
    s = int(max(0, time.time() - t))
    return f"{s} s" if s < 90 else f"{s // 60} min"


def _field_error(field: str) -> None:
    msg = st.session_state.get("train_errors", {}).get(field)
    if msg:  # named, since Epochs and Batch size share one row and show their errors under it
        st.error(f"{FIELD_LABELS[field]}: {msg}" if field in FIELD_LABELS else msg, icon="⚠️")


# the form


def _submit(manager: jobs.JobManager, token: str | None) -> None:
    """Form callback: validate, check the token, start the job; errors go to session state by field."""
    ss = st.session_state
    values = {f: ss.get(f"train_{f}") for f in FIELDS}
    errors: dict[str, str] = {}
    ss["train_notice"] = None
    if not token_ok(values["token"], token):
        errors["token"] = "Type the admin token to start training (classroom mode)." if not values["token"] \
            else "That is not the admin token."
    try:
        mc, tc = configs_from_form(values)
        if not errors:
            manager.start(mc, tc, values["name"] or "", owner=values["owner"] or "anonymous")
            ss["train_job_mine"] = manager.snapshot()["id"]
            ss["train_notice"] = f"Training '{manager.snapshot()['name']}' started."
            ss["train_name"] = ""
    except ConfigError as e:
        errors[e.field if e.field in FIELDS else "_form"] = f"{e.field}: {e.message}" if e.field not in FIELDS \
            else e.message
    except jobs.JobRefused as e:
        errors["_form"] = str(e)
    ss["train_errors"] = errors


def _form(manager: jobs.JobManager, token: str | None, busy: dict | None) -> None:
    ss = st.session_state
    ss.setdefault("train_owner", f"guest-{secrets.token_hex(2)}")
    ss.setdefault("train_errors", {})
    data_env = os.environ.get("VAE_EXPLORER_DATA")
    dataset = st.selectbox("Dataset", list(DATASETS), format_func=DATASETS.get, key="train_dataset")
    _field_error("dataset")
    key = f"{dataset}|{data_env}"
    if key in _CHECKED_SOURCES or st.button("🔎 Where do the training images come from?", key="train_check_source",
                                            type="tertiary"):
        src = training_data_source(dataset, data_env)
        _CHECKED_SOURCES.add(key)
        if src["error"]:
            st.error(f"No training images: {src['error']}")
        else:
            st.caption(f"📁 {src['n']:,} images: {src['source']}")
    with st.form("train_form", border=False, enter_to_submit=False):
        st.number_input("Latent dimensions (2–64)", value=16, step=1, key="train_latent_dim")
        _field_error("latent_dim")
        st.text_input("Hidden layer widths", value="512,256", key="train_hidden",
                      help="Encoder layers, comma-separated; the decoder mirrors them")
        _field_error("hidden")
        st.selectbox("Decoder likelihood", list(LIKELIHOODS), format_func=LIKELIHOODS.get, key="train_likelihood")
        st.number_input("σ of the Gaussian decoder", value=0.1, step=0.01, format="%.2f", key="train_sigma",
                        help="Used only with the Gaussian likelihood")
        _field_error("sigma")
        st.number_input("β (weight on the KL term)", value=1.0, step=0.5, key="train_beta",
                        help="1 is the true ELBO; larger β trades reconstruction for a smoother latent space")
        _field_error("beta")
        st.checkbox("Conditional on the label (CVAE)", value=False, key="train_conditional")
        c1, c2 = st.columns(2)
        c1.number_input("Epochs", value=20, step=1, key="train_epochs")
        c2.number_input("Batch size", value=128, step=32, key="train_batch_size")
        _field_error("epochs")
        _field_error("batch_size")
        st.number_input("Learning rate", value=1e-3, step=1e-4, format="%.4f", key="train_lr")
        _field_error("lr")
        st.checkbox("Augment (small random shifts, rotations)", value=True, key="train_augment")
        st.number_input("Limit training images (advanced; 0 = all)", value=0, step=500, key="train_limit",
                        help="Train on the first N images only: a quick run for a demo")
        _field_error("limit")
        st.text_input("Name of the new model", key="train_name", placeholder="e.g. my-first-vae",
                      help="Saved as checkpoints/user/<name>.safetensors; existing names are refused")
        _field_error("name")
        st.text_input("Your name", key="train_owner", max_chars=40, help="Shown to others while it trains")
        if token:
            st.text_input("Admin token", type="password", key="train_token",
                          help="Classroom mode: the teacher's token is needed to start training")
            _field_error("token")
        st.form_submit_button("🚀 Start training", type="primary", on_click=_submit, args=(manager, token),
                              disabled=busy is not None, width="stretch")
    if busy is not None:
        st.info(f"Busy: {jobs.describe(busy)}. One model trains at a time on this server.")
    _field_error("_form")
    if ss.get("train_notice") and busy is not None:
        st.success(ss["train_notice"])


# the status area


def _curves_figure(history: list[dict]):
    """-ELBO, reconstruction and KL per epoch, train and test: one plotly figure with three panels."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    epochs = [h["epoch"] for h in history]
    titles = ("−ELBO (nats)", "reconstruction", "KL")
    fig = make_subplots(rows=3, cols=1, shared_xaxes=True, vertical_spacing=0.09, subplot_titles=titles)
    for row, col in enumerate(("loss", "rec", "kl"), start=1):
        for split, color in (("train", "#1f77b4"), ("test", "#ff7f0e")):
            ys = [h.get(f"{split}_{col}") for h in history]
            if any(y is not None for y in ys):
                fig.add_scatter(x=epochs, y=ys, name=split, mode="lines+markers", line_color=color,
                                legendgroup=split, showlegend=row == 1, row=row, col=1)
    fig.update_layout(height=380, margin=dict(l=0, r=0, t=40, b=0), font_size=11,
                      legend=dict(orientation="h", y=1.12, x=1, xanchor="right"))
    fig.update_annotations(font_size=12)
    fig.update_xaxes(tickformat="d")
    fig.update_xaxes(title_text="epoch", row=3, col=1)
    return fig


def _samples_png(samples: np.ndarray) -> bytes:
    grid = tile(np.asarray(samples, np.float32) / 255.0, cols=4, pad=1, pad_value=0.3)
    return png_bytes(grid, scale=2)


# Every open page polls the job once a second: build its figure and picture once per epoch, for all.
_RENDERED: dict[str, tuple[tuple, object]] = {}


def _rendered(kind: str, key: tuple, make):
    hit = _RENDERED.get(kind)
    if hit is None or hit[0] != key:
        hit = (key, make())
        _RENDERED[kind] = hit
    return hit[1]


def _curves(snap: dict) -> None:
    fig = _rendered("curves", (snap["id"], len(snap["history"])), lambda: _curves_figure(snap["history"]))
    st.plotly_chart(fig, config={"displayModeBar": False, "staticPlot": True}, key="train_curves")


def _samples(snap: dict) -> None:
    if snap["samples"] is not None:
        png = _rendered("samples", (snap["id"], snap["samples_epoch"]), lambda: _samples_png(snap["samples"]))
        st.image(png, caption=f"Samples from the prior after epoch {snap['samples_epoch']}")


def _switch_to(rel: str) -> None:
    list_checkpoints.clear()
    st.session_state["checkpoint"] = rel
    st.query_params["ckpt"] = rel


def _cancel(manager: jobs.JobManager, token: str | None) -> None:
    if not token_ok(st.session_state.get("train_cancel_token"), token):
        st.session_state["train_cancel_error"] = "That is not the admin token."
        return
    st.session_state["train_cancel_error"] = None
    manager.cancel()


def _running(manager: jobs.JobManager, snap: dict, token: str | None) -> None:
    eta = f", about {jobs._fmt_duration(snap['eta_s'])} left" if snap["eta_s"] is not None else ""
    phase = snap["phase"] if snap["phase"] != "training" else f"epoch {snap['epoch']}/{snap['epochs']}{eta}"
    st.progress(float(snap["progress"]), text=f"Training **{snap['name']}**: {phase}")
    st.caption(f"Started by **{snap['owner']}** {_ago(snap['started_at'])} ago. {snap['message']}")
    if snap.get("paused_s", 0) > 1 and snap["elapsed_s"] > 0:
        st.caption(f"It pauses while the server is busy, so the app stays quick for everyone: paused "
                   f"{snap['paused_s'] / snap['elapsed_s']:.0%} of the time so far.")
    if token:
        st.text_input("Admin token to cancel", type="password", key="train_cancel_token")
    st.button("⏹ Cancel training", key="train_cancel", on_click=_cancel, args=(manager, token), width="stretch")
    if st.session_state.get("train_cancel_error"):
        st.error(st.session_state["train_cancel_error"])


def _finished(snap: dict, checkpoint_dir: Path) -> None:
    if st.session_state.get("train_dismissed") == snap["id"]:
        return
    if snap["state"] == "done":
        m = snap["metrics"] or {}
        numbers = (f" Test −ELBO **{m['test_elbo']:.1f}** nats (reconstruction {m['test_rec']:.1f}, "
                   f"KL {m['test_kl']:.1f}); −log p(x) ≈ **{m['test_nll']:.1f}** nats (k = {m['k']}, "
                   f"{m['n']} images)." if "test_nll" in m else "")
        st.success(f"Trained **{snap['name']}** (by {snap['owner']}, {snap['elapsed_s']:.0f} s).{numbers}")
        if Path(snap["checkpoint"]).is_file():
            rel = rel_name(snap["checkpoint"], checkpoint_dir)
            if st.button("Switch to it", key="train_switch", type="primary", on_click=_switch_to, args=(rel,)):
                st.rerun(scope="app")
    elif snap["state"] == "failed":
        st.error(f"Training **{snap['name']}** (by {snap['owner']}) failed: {snap['error']}")
    elif snap["state"] == "cancelled":
        st.info(f"Training **{snap['name']}** (by {snap['owner']}) was cancelled; nothing was saved.")
    if snap["history"]:
        with st.expander("Training curves"):
            _curves(snap)
            _samples(snap)
    if st.button("Dismiss", key="train_dismiss", type="tertiary"):
        st.session_state["train_dismissed"] = snap["id"]
        st.rerun(scope="fragment")


def _status(manager: jobs.JobManager, checkpoint_dir: Path, token: str | None) -> None:
    was_running = manager.is_running()
    mine = was_running and st.session_state.get("train_job_mine") == manager.snapshot()["id"]
    poll, curves = (POLL_S, CURVES_S) if mine else (POLL_OTHERS_S, CURVES_OTHERS_S)

    @fragment(run_every=poll if was_running else None)
    def training_status() -> None:
        # A click elsewhere (a map dot) may have reached the server with this poll's rerun request instead of
        # its own: its callback then asked for a full rerun that no panel's fragment is running to honour.
        rerun_app_if_requested()
        snap = manager.snapshot()
        if was_running and snap["state"] not in jobs.ACTIVE_STATES:
            # it just ended: show the new checkpoint in the picker, stop polling, enable the form
            list_checkpoints.clear()
            st.rerun(scope="app")
        if snap["state"] in jobs.ACTIVE_STATES:
            _running(manager, snap, token)
        elif snap["state"] != "idle":
            _finished(snap, checkpoint_dir)

    @fragment(run_every=curves if was_running else None)
    def training_curves() -> None:
        snap = manager.snapshot()
        if snap["state"] in jobs.ACTIVE_STATES:
            if snap["history"]:
                _curves(snap)
            _samples(snap)

    training_status()
    training_curves()


# the panel


def render_training_sidebar(checkpoint_dir: Path) -> None:
    """The 'Train a new model' form and the live status of the server's training job, in the sidebar."""
    checkpoint_dir = Path(checkpoint_dir)
    manager = jobs.get_manager(checkpoint_dir)
    token = admin_token()
    snap = manager.snapshot()
    busy = snap if snap["state"] in jobs.ACTIVE_STATES else None
    with st.sidebar:
        with st.expander("🏋️ Train a new model", expanded=False):
            if token:
                st.caption("🔒 Classroom mode: starting and cancelling training need the admin token.")
            _form(manager, token, busy)
        _status(manager, checkpoint_dir, token)
