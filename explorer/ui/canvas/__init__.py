"""A 280x280 drawing canvas with a Clear button, returning the drawing as an RGBA array.

Backed by ``streamlit-drawable-canvas`` (>= 0.13, built on st.components.v2; its Fabric.js bundle
ships inside the wheel, so it works offline). This module is the only place that knows about it:
swap the backend here and the draw panel does not change.
"""

from __future__ import annotations

import numpy as np
import streamlit as st

PACKAGE = "streamlit-drawable-canvas"


def available() -> bool:
    """Whether the canvas backend can be imported."""
    try:
        import streamlit_drawable_canvas  # noqa: F401  (lazy: it registers a component on import)
    except ImportError:
        return False
    return True


def _clear(key: str) -> None:
    st.session_state[f"{key}_gen"] = st.session_state.get(f"{key}_gen", 0) + 1
    st.session_state.pop(f"{key}_kept", None)


def draw_canvas(key: str, *, size: int = 280, stroke_width: int = 24, ink: str = "#000000",
                paper: str = "#FFFFFF") -> np.ndarray | None:
    """Show the canvas and a Clear button -> the drawing as uint8 RGBA (size, size, 4), or None
    while nothing is drawn (or when the backend is not installed, after saying so).

    The drawing is sent back when a stroke ends. Clear remounts an empty canvas. The last drawing is kept
    in session state (its strokes and pixels): a canvas that was not drawn for a while (its tab was closed)
    comes back with it.
    """
    if not available():
        st.warning(f"The drawing canvas needs the `{PACKAGE}` package (`pip install {PACKAGE}`); "
                   "you can still upload a picture.")
        return None
    from streamlit_drawable_canvas import st_canvas

    gen = st.session_state.get(f"{key}_gen", 0)
    kept = st.session_state.get(f"{key}_kept")  # {"json": strokes, "image": pixels} of the last drawing
    result = st_canvas(stroke_width=stroke_width, stroke_color=ink, background_color=paper,
                       height=size, width=size, drawing_mode="freedraw", update_streamlit=True,
                       return_image_data=True, initial_drawing=kept["json"] if kept else None, key=f"{key}_v{gen}")
    st.button("Clear", key=f"{key}_clear", on_click=_clear, args=(key,), icon=":material/delete:")
    img = result.image_data if result is not None else None
    objects = (result.json_data or {}).get("objects") if result is not None else None
    if img is None or not objects:
        return kept["image"] if kept else None  # nothing (new) drawn: the kept drawing, if any
    img = np.asarray(img, dtype=np.uint8)
    if img[..., 3].any() or not kept:
        st.session_state[f"{key}_kept"] = {"json": result.json_data, "image": img}
        return img
    return kept["image"]  # a remounted canvas reported its strokes before painting them
