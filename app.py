"""VAE Explorer: ``streamlit run app.py``. Page config, sidebar, tabs; each tab is an explorer.ui panel."""

import streamlit as st

st.set_page_config(page_title="VAE Explorer", page_icon="🔢", layout="wide")

from explorer.ui import conditional, density, dims, draw, interpolation, latent_map, live, runtime_fix, sidebar, sliders, theory  # noqa: E402,E501
from explorer.ui.common import keep_widget_state  # noqa: E402
from explorer.ui.context import checkpoint_dir, freeze_long_lived_objects  # noqa: E402
from explorer.ui.train_panel import render_training_sidebar  # noqa: E402


def main() -> None:
    runtime_fix.install()  # once per process: a Streamlit race that drops a finished run's output under load
    ctx = sidebar.render()
    st.session_state.pop("_rerun_app", None)  # this full run shows every panel's new state anyway
    render_training_sidebar(checkpoint_dir())
    if ctx is not None and sliders.live_mode():
        with st.sidebar:  # the live widgets' decoder weights, sent once per session whichever tab is open
            live.mount_weights(live.cached_payload(ctx.path, ctx.fingerprint))
    else:
        st.session_state.pop(live.APP_WEIGHTS, None)
    if ctx is None:
        st.title("VAE Explorer")
        st.error("There is no usable model. See the sidebar for what went wrong.")
        return
    panels = {"Latent sliders": sliders, "Interpolation": interpolation, "Latent map": latent_map,
              "Reconstruction & ELBO": theory, "Draw your own": draw, "Choose the digit": conditional,
              "How likely?": density, "Dimensions": dims}
    keep_widget_state()
    # Only the open tab runs: a start, and every rerun after a click, computes one panel, not eight.
    tabs = st.tabs(list(panels), key="tab", on_change="rerun", default=sidebar.tab_from_link(list(panels)))
    for tab, panel in zip(tabs, panels.values()):
        if tab.open:
            with tab:
                panel.render(ctx)
    sidebar.tab_to_link(list(panels))
    freeze_long_lived_objects()


main()
