"""VAE Explorer: ``streamlit run app.py``. Page config, sidebar, tabs; each tab is an explorer.ui panel."""

import streamlit as st

st.set_page_config(page_title="VAE Explorer", page_icon="🔢", layout="wide")

from explorer.ui import interpolation, latent_map, sidebar, sliders, theory  # noqa: E402


def main() -> None:
    ctx = sidebar.render()
    if ctx is None:
        st.title("VAE Explorer")
        st.error("There is no usable model. See the sidebar for what went wrong.")
        return
    tabs = st.tabs(["🎚️ Latent sliders", "🔀 Interpolation", "🗺️ Latent map", "🧮 Reconstruction & ELBO"])
    with tabs[0]:
        sliders.render(ctx)
    with tabs[1]:
        interpolation.render(ctx)
    with tabs[2]:
        latent_map.render(ctx)
    with tabs[3]:
        theory.render(ctx)


main()
