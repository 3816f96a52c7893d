"""A standalone page for the live decoding widgets (tests and bench/live_morph.py drive it).

    streamlit run bench/live_demo_app.py              # live sliders, checkpoints/mnist-z16
    ...?ckpt=mnist-cvae-z8&label=7                    # a conditional model (pick the digit)
    ...?mode=stock                                    # stock st.slider + server-decoded st.image
    ...?mode=scrub  /  ?mode=map&ckpt=mnist-z2        # the path scrubber / the 2-D map
    ...?report_ms=1000                                # report to Python less often while dragging
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import streamlit as st

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from explorer import checkpoints  # noqa: E402
from explorer.latent import decode_numpy  # noqa: E402
from explorer.ui.live import cached_payload, live_latent, live_map_2d, live_scrubber  # noqa: E402


@st.cache_resource(show_spinner=False)
def load(path: str, fingerprint: str):
    """(model, meta) for the demo; shared by sessions, never mutated."""
    model, meta = checkpoints.load(path)
    model.requires_grad_(False)
    return model, meta


def main() -> None:
    st.set_page_config(page_title="Live decoding demo", layout="wide")
    q = st.query_params
    name = q.get("ckpt", "mnist-z16")
    mode = q.get("mode", "live")
    folder = Path(os.environ.get("VAE_EXPLORER_CHECKPOINTS", ROOT / "checkpoints"))
    path = str(folder / f"{name}.safetensors")
    fp = checkpoints.fingerprint(path)
    model, meta = load(path, fp)
    n = model.config.latent_dim
    st.session_state["runs"] = st.session_state.get("runs", 0) + 1
    st.caption(f"{name} · mode {mode} · run {st.session_state['runs']}")

    label = None
    if model.config.conditional:
        label = st.selectbox("Digit label", list(range(model.config.num_classes)), key="label",
                             index=int(q.get("label", 3)))

    if mode == "stock":
        z = [st.slider(f"z{d}", -3.0, 3.0, 0.0, 0.01, key=f"stock-z{d}") for d in range(n)]
        st.image(decode_numpy(model, z, label)[0], width=280, clamp=True)
        st.text(f"reported: {json.dumps([round(v, 4) for v in z])}")
        return

    payload = cached_payload(path, fp)
    if mode == "scrub":
        g = np.random.default_rng(1)
        ends = g.standard_normal((2, n)).tolist()
        out = live_scrubber(payload, ends, label=label, key="scrub", extra={"caption": "slerp between two codes"})
        if out is not None:
            st.session_state["scrub_out"] = out
        st.write("reported:", st.session_state.get("scrub_out"))
        st.text(f"reported: {json.dumps(st.session_state.get('scrub_out'))}")
        return
    if mode == "map":
        pick = live_map_2d(payload, label=label, key="map")
        st.text(f"reported: {json.dumps(pick and [round(v, 4) for v in pick])}")
        return

    # a code pushed from Python: the sliders must jump to it and the page decode it exactly
    pushed = st.text_input("Set z (JSON list)", key="set_z")
    if pushed and st.session_state.get("pushed") != pushed:
        st.session_state["pushed"] = pushed
        st.session_state["z"] = [float(v) for v in json.loads(pushed)]
    z = st.session_state.setdefault("z", [0.0] * n)
    new = live_latent(payload, z, label=label, key="live",
                      dim_labels=[f"z{d} · latent {d}" for d in range(n)],
                      extra={"caption": "decoded in your browser", "report_ms": int(q.get("report_ms", 250))},
                      fallback_decode=lambda v: decode_numpy(model, v, label)[0])
    if new is not None:
        st.session_state["z"] = new
    st.write("z held by Python:", st.session_state["z"])
    st.text(f"reported: {json.dumps([round(v, 4) for v in st.session_state['z']])}")


main()
