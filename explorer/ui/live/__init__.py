"""Live decoding in the browser: latent sliders, a path scrubber and a 2-D map that redraw every frame.

Since Streamlit 1.49 ``st.slider`` reports only on release, and each report is a server round
trip. These widgets ship the decoder's weights to the page once (``explorer.decoder_export``) and
decode there, so the digit follows the thumb while it is dragged; Python hears the value on
release and, throttled, while dragging.

Wiring, once per checkpoint::

    payload = cached_payload(ctx.path, ctx.fingerprint)      # cached; a few MB, sent once per session
    z = st.session_state.setdefault("z", [0.0] * ctx.latent_dim)
    new = live_latent(payload, z, label=y, key="explore-live",
                      fallback_decode=lambda z: decode_numpy(ctx.model, z, y)[0])
    if new is not None:
        st.session_state["z"] = new

Passing back what a widget returned (or a constant) never moves the sliders under the user's
hand; passing a different code (a random draw, an encoded image) moves them to it. Every report is a
rerun: put the panel in an ``st.fragment`` so only it reruns. The weights travel in an invisible element
keyed by the checkpoint's payload id, shared by all live widgets, that Streamlit's message cache sends
once per session; an app with several live tabs mounts it once at its top level (``mount_weights``). Keys must not
contain "__" (Streamlit reserves it in component ids). In the page, ``window.__vaeLive[key]`` is the
widget (frames, stats(), pixels, paintedZ) and ``canvas.digit`` carries ``data-frames``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import streamlit as st
from streamlit.errors import StreamlitDuplicateElementKey

from explorer.decoder_export import decoder_payload, supported
from explorer.ui import component_js

HERE = Path(__file__).resolve().parent
COMPONENT_NAME = "vae_explorer.live_decoder"
RECENT = 64  # reports remembered per widget, to tell a push from Python from an echo

# helpers


@functools.cache
def _component():
    """Register the component once per process (its JS and CSS ship in this package; no CDN)."""
    return st.components.v2.component(
        COMPONENT_NAME, js=component_js(HERE / "live.js"), css=(HERE / "live.css").read_text())


@st.cache_data(max_entries=8, show_spinner=False)
def cached_payload(path: str, fingerprint: str) -> dict:
    """The browser payload of a checkpoint's decoder, or {"supported": False, "reason": ...}."""
    from explorer.ui.context import load_model

    model, _ = load_model(path, fingerprint)
    ok, reason = supported(model)
    if not ok:
        return {"supported": False, "reason": reason, "payload_id": None}
    return {"supported": True, **decoder_payload(model)}


def _check_key(key: str) -> str:
    if not isinstance(key, str) or not key or "__" in key:
        raise ValueError(f"key must be a non-empty string without '__', got {key!r}")
    return key


def _floats(v) -> list[float]:
    out = [float(x) for x in np.asarray(v, dtype=np.float64).reshape(-1)]
    if not all(math.isfinite(x) for x in out):
        raise ValueError("latent codes must be finite numbers")
    return out


def _same(a, b, tol: float = 1e-7) -> bool:
    return a is not None and b is not None and len(a) == len(b) and all(abs(x - y) <= tol for x, y in zip(a, b))


def _sync(key: str, payload_id: str, value: list[float], report) -> tuple[list[float], int, list[float] | None]:
    """Reconcile the caller's value with the browser's latest report -> (value to show, rev, new report or None).

    ``rev`` counts values pushed from Python; the browser echoes it with every report, so reports made
    before a push are ignored. The caller's value counts as a push only if it differs from the last push
    and from every recently returned report (a rerun can be interrupted before the caller stores what
    this returned, so the caller may hand back any of the last few), so the sliders never jump back.
    """
    mem_key = f"_vae_live:{key}"
    mem = st.session_state.get(mem_key)
    # A widget not drawn in the last run (its tab was closed) has lost its state and is mounted afresh: the
    # new instance knows nothing, so the caller's value is pushed as new, whatever the old instance echoed.
    fresh = key not in st.session_state
    if mem is None or mem.get("payload_id") != payload_id or fresh:
        mem = {"rev": (mem or {}).get("rev", -1) + 1, "sent": value, "returned": [], "payload_id": payload_id}
    reported = None
    if isinstance(report, dict) and report.get("rev") == mem["rev"]:
        got = report.get("value")
        if isinstance(got, list) and len(got) == len(value) and all(isinstance(x, (int, float)) for x in got):
            reported = [float(x) for x in got]
    if not any(_same(value, known) for known in [mem["sent"], reported, *mem["returned"]]):
        mem = {**mem, "rev": mem["rev"] + 1, "sent": value, "returned": []}
        reported = None
    if reported is not None and not (mem["returned"] and _same(mem["returned"][-1], reported)):
        mem = {**mem, "returned": [*mem["returned"], reported][-RECENT:]}
    st.session_state[mem_key] = mem
    return (reported if reported is not None else mem["sent"]), mem["rev"], reported


def _report(key: str, field: str) -> dict | None:
    """The browser's latest report for widget ``key`` (readable before the widget is mounted this run)."""
    state = st.session_state.get(key)
    value = state.get(field) if hasattr(state, "get") else None
    return value if isinstance(value, dict) else None


def _mount(payload: dict, key: str, data: dict, default_px: int):
    """Mount the weights element (constant, so cached by Streamlit) and the widget; -> the widget's state."""
    mount = _component()
    extra = dict(data.pop("extra", None) or {})
    data = {"key": key, "payload_id": payload["payload_id"], "display_px": int(extra.pop("display_px", default_px)),
            "report_ms": int(extra.pop("report_ms", 250)), "caption": str(extra.pop("caption", "")), **data, **extra}
    box = st.container(gap=None)
    with box:
        _mount_weights(mount, payload)
        return mount(key=key, data=data, height="content")


APP_WEIGHTS = "_vae_live_app_weights"  # session key: payload_id that mount_weights() sent in the last full run


def mount_weights(payload: dict) -> None:
    """Send a checkpoint's decoder weights to the page from the app's top level (outside every fragment).

    Streamlit's message cache skips an element the page already has only if it is byte-identical, and an
    element drawn inside a fragment carries that fragment's id: the same weights mounted by the sliders'
    fragment and again by the interpolation's would travel twice. Called once per full run (app.py does,
    in the sidebar), it makes every live widget of this checkpoint skip its own copy, also in fragment runs.
    """
    if not payload.get("supported", True):
        return
    _weights_element(_component(), payload)
    st.session_state[APP_WEIGHTS] = payload["payload_id"]


def _weights_element(mount, payload: dict) -> None:
    """The invisible element carrying the weights, keyed by the payload (not by a widget)."""
    mount(key=f"vae-weights-{payload['payload_id']}", data={"mode": "weights", "payload": payload}, height="content")


def _mount_weights(mount, payload: dict) -> None:
    """A widget's own weights element, unless the app mounted them (mount_weights) for this checkpoint."""
    if st.session_state.get(APP_WEIGHTS) == payload["payload_id"]:
        return
    try:  # two widgets of one checkpoint in one fragment share it
        _weights_element(mount, payload)
    except StreamlitDuplicateElementKey:
        pass


def _unsupported_note(payload: dict) -> None:
    st.caption(f"Live decoding is off for this model ({payload.get('reason', 'unsupported decoder')}); "
               "the image is decoded on the server and updates when you release a slider.")


# the widgets


def live_latent(ctx_payload: dict, z: Sequence[float], *, label: int | None = None,
                ranges: Sequence[tuple[float, float]] | None = None, dim_order: Sequence[int] | None = None,
                dim_labels: Sequence[str] | None = None, key: str, extra: dict | None = None,
                fallback_decode: Callable[[list[float]], np.ndarray] | None = None) -> list[float] | None:
    """Latent sliders + the decoded digit, decoded in the browser on every animation frame while dragging.

    ctx_payload: ``cached_payload(...)`` / ``decoder_payload(model)``. z: the code to show (latent_dim,).
    label: the digit for a conditional model. ranges[d]: slider (min, max) of dimension d (default -3..3;
    z outside is kept exactly, the thumb clamps). dim_order: dimensions to show, top to bottom (default
    all; hidden ones keep their value). dim_labels[d]: accessible label of dimension d (default "z{d}").
    extra: display options: display_px (digit size, default 280), step (slider step, default 0.01),
    caption (under the digit), report_ms (throttle while dragging, default 250).
    fallback_decode: z -> (28, 28) image in [0, 1], used with stock sliders when the payload is unsupported.

    Returns the latest code the browser reported (list of latent_dim floats: on release, and about every
    report_ms while dragging), or None when nothing new has been reported since ``z`` was last pushed.
    For an unsupported payload it shows a note and stock sliders and returns their values (never None).
    """
    key = _check_key(key)
    value = _floats(z)
    n = len(value)
    ranges = [(-3.0, 3.0)] * n if ranges is None else [(float(lo), float(hi)) for lo, hi in ranges]
    dim_order = list(range(n)) if dim_order is None else [int(d) for d in dim_order]
    dim_labels = [f"z{d}" for d in range(n)] if dim_labels is None else [str(s) for s in dim_labels]
    if len(ranges) != n or len(dim_labels) != n or any(not 0 <= d < n for d in dim_order):
        raise ValueError(f"ranges and dim_labels need one entry per dimension ({n}); dim_order indexes them")
    if any(not lo < hi for lo, hi in ranges):
        raise ValueError(f"every range needs min < max, got {ranges}")
    extra = dict(extra or {})
    step = float(extra.pop("step", 0.01))

    if not ctx_payload.get("supported", True):
        _unsupported_note(ctx_payload)
        out = list(value)
        for d in dim_order:
            lo, hi = ranges[d]
            out[d] = st.slider(dim_labels[d], lo, hi, min(max(value[d], lo), hi), step, key=f"{key}-s{d}")
        if fallback_decode is not None:
            st.image(np.clip(fallback_decode(out), 0, 1), width=int(extra.get("display_px", 280)))
        return out
    if ctx_payload["latent_dim"] != n:
        raise ValueError(f"z has {n} values but the decoder takes latent_dim={ctx_payload['latent_dim']}")

    report = _report(key, "z")
    shown, rev, reported = _sync(key, ctx_payload["payload_id"], value,
                                 report and {"rev": report.get("rev"), "value": report.get("z")})
    _mount(ctx_payload, key, {
        "mode": "latent", "z": shown, "rev": rev, "label": int(label or 0), "ranges": ranges,
        "dim_order": dim_order, "dim_labels": dim_labels, "step": step, "extra": extra}, 280)
    return reported


def live_scrubber(ctx_payload: dict, path: Sequence[Sequence[float]], *, mode: str = "slerp",
                  label: int | None = None, t: float = 0.0, positions: int = 201, key: str,
                  slider_label: str = "Position along the path", extra: dict | None = None) -> dict | None:
    """A slider along a path of codes, decoding every frame while it is dragged.

    path: two endpoint codes (z0, z1) or more codes visited in turn (each leg an equal share of t).
    mode: "slerp" or "linear", exactly as ``explorer.latent.interpolate`` (which equals this path at
    t = k / (steps - 1)). t: where the thumb starts (pushing a different t moves it). positions: slider
    stops from t=0 to t=1. extra: as in ``live_latent`` (display_px, caption, report_ms).

    Returns {"t": float, "z": list[float]} last reported by the browser, or None if nothing new.
    """
    key = _check_key(key)
    if mode not in ("linear", "slerp"):
        raise ValueError(f"mode must be 'linear' or 'slerp', got {mode!r}")
    codes = [_floats(p) for p in path]
    if len(codes) < 2 or any(len(c) != ctx_payload.get("latent_dim", len(codes[0])) for c in codes):
        raise ValueError("path needs at least two codes of latent_dim values each")
    if not ctx_payload.get("supported", True):
        _unsupported_note(ctx_payload)
        return None
    report = _report(key, "t")
    shown, rev, reported = _sync(key, ctx_payload["payload_id"], [float(t)],
                                 report and {"rev": report.get("rev"), "value": [report.get("t")]})
    _mount(ctx_payload, key, {
        "mode": "scrub", "path": codes, "interp": mode, "t": shown[0], "rev": rev, "label": int(label or 0),
        "positions": int(positions), "slider_label": slider_label, "extra": extra}, 280)
    if reported is None:
        return None
    return {"t": reported[0], "z": [float(v) for v in report["z"]]}


def live_map_2d(ctx_payload: dict, *, label: int | None = None,
                extent: tuple[float, float, float, float] = (-3.0, 3.0, -3.0, 3.0), dims: tuple[int, int] = (0, 1),
                base: Sequence[float] | None = None, selected: Sequence[float] | None = None,
                points: np.ndarray | None = None, key: str, map_px: int = 320, extra: dict | None = None
                ) -> list[float] | None:
    """A latent plane: hovering decodes that point live (digit + coordinate readout); a click chooses it.

    extent: (x_min, x_max, y_min, y_max) of z[dims[0]] (across) and z[dims[1]] (up). base: the other
    coordinates for a model with latent_dim > 2 (default zeros). selected: a code to mark at start.
    points: optional (N, 3) array of (x, y, class) drawn as a class-coloured scatter (at most 5000 drawn).
    Keyboard: focus the map, arrow keys move the point, Enter chooses it.

    Returns the last chosen code (list of latent_dim floats), or None before the first click.
    """
    key = _check_key(key)
    n = int(ctx_payload.get("latent_dim", 2))
    if not ctx_payload.get("supported", True):
        _unsupported_note(ctx_payload)
        return None
    base_z = [0.0] * n if base is None else _floats(base)
    if len(base_z) != n or len(set(dims)) != 2 or any(not 0 <= d < n for d in dims):
        raise ValueError(f"base needs {n} values and dims two different dimensions below {n}")
    pts = []
    if points is not None and len(points):
        arr = np.asarray(points, dtype=np.float64)[:5000]
        pts = [[round(float(x), 4), round(float(y), 4), int(c)] for x, y, c in arr[:, :3]]
    _mount(ctx_payload, key, {
        "mode": "map", "label": int(label or 0), "extent": [float(v) for v in extent], "dims": [int(d) for d in dims],
        "base": base_z, "selected": None if selected is None else _floats(selected), "points": pts,
        "points_id": hash(tuple(map(tuple, pts))) if pts else 0, "map_px": int(map_px), "rev": 0,
        "extra": extra}, 224)
    pick = _report(key, "pick")
    return [float(v) for v in pick["z"]] if isinstance(pick, dict) and pick.get("z") else None


__all__ = ["cached_payload", "live_latent", "live_map_2d", "live_scrubber"]
