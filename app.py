"""VAE Explorer: ``streamlit run app.py``. Page config, sidebar, tabs; each tab is an explorer.ui panel."""

import streamlit as st

st.set_page_config(page_title="VAE Explorer", page_icon="🔢", layout="wide")

from explorer.ui import conditional, density, dims, draw, interpolation, latent_map, sidebar, sliders, theory  # noqa: E402,E501


def main() -> None:
    ctx = sidebar.render()
    st.session_state.pop("_rerun_app", None)  # this full run shows every panel's new state anyway
    if ctx is None:
        st.title("VAE Explorer")
        st.error("There is no usable model. See the sidebar for what went wrong.")
        return
    tabs = st.tabs(["Latent sliders", "Interpolation", "Latent map", "Reconstruction & ELBO", "Draw your own",
                    "Choose the digit", "How likely?", "Dimensions"])
    with tabs[0]:
        sliders.render(ctx)
    with tabs[1]:
        interpolation.render(ctx)
    with tabs[2]:
        latent_map.render(ctx)
    with tabs[3]:
        theory.render(ctx)
    with tabs[4]:
        draw.render(ctx)
    with tabs[5]:
        conditional.render(ctx)
    with tabs[6]:
        density.render(ctx)
    with tabs[7]:
        dims.render(ctx)


main()
