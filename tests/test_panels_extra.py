"""AppTest drives the conditional, draw, density and dims panels, each on its own, for the shipped checkpoints."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[1]
PANELS = ("conditional", "draw", "density", "dims")
# Small settings so the heavy sections finish in a second or two (the app's defaults are larger).
CHEAP = dict(density_ref_n=250, density_ref_k=5, density_anomaly_limit=20, density_anomaly_k=5,
             density_mc_n=1000, density_mc_repeats=2)


def driver(panel: str, checkpoint: str, preset: dict) -> None:
    """The script AppTest runs: one panel for one checkpoint, like app.py's tab would."""
    import importlib

    import streamlit as st

    from explorer import checkpoints
    from explorer.ui.context import Ctx, load_model

    for key, value in preset.items():
        st.session_state.setdefault(key, value)
    fp = checkpoints.fingerprint(checkpoint)
    ctx = Ctx(path=checkpoint, fingerprint=fp, meta=load_model(checkpoint, fp)[1])
    importlib.import_module(f"explorer.ui.{panel}").render(ctx)


def run_panel(panel: str, checkpoint: Path, **preset) -> AppTest:
    at = AppTest.from_function(driver, args=(panel, str(checkpoint), {**CHEAP, **preset}), default_timeout=120)
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def checkpoint(name: str) -> Path:
    path = ROOT / "checkpoints" / f"{name}.safetensors"
    if not path.is_file():
        pytest.skip(f"no shipped checkpoint {path.name}")
    return path


@pytest.fixture(autouse=True)
def _data(mnist_dir, monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT))  # the script imports explorer from the repo
    monkeypatch.setenv("VAE_EXPLORER_DATA", str(mnist_dir))


def metric(at: AppTest, starts: str) -> str:
    return next(m.value for m in at.metric if m.label.startswith(starts))


# one interaction per panel (fast)


def test_conditional_panel_redraws_the_chosen_class():
    at = run_panel("conditional", checkpoint("mnist-cvae-z8"))
    assert at.image[0].captions[0].startswith("y = 0")
    assert at.image[1].captions == [str(c) for c in range(10)]  # same style, every digit
    at.selectbox(key="cond_label").set_value(3).run()
    assert not at.exception
    assert at.image[0].captions[0].startswith("y = 3")
    at.button(key="cond_random").click().run()
    style = [at.session_state[f"cond_style_{d}"] for d in range(8)]
    assert any(v != 0.0 for v in style) and all(-4 <= v <= 4 for v in style)


def test_conditional_panel_explains_an_unconditional_model():
    at = run_panel("conditional", checkpoint("mnist-z2"))
    assert "ordinary VAE" in at.info[0].value
    assert "mnist-cvae-z8" in at.markdown[0].value


def test_draw_panel_starts_with_an_empty_canvas():
    at = run_panel("draw", checkpoint("mnist-z16"))
    assert at.radio(key="draw_source").value == "Draw"
    assert "Draw a digit" in at.info[0].value and not at.metric
    at.button(key="draw_canvas_clear").click().run()
    assert not at.exception and at.session_state["draw_canvas_gen"] == 1


def test_draw_panel_scores_a_test_image_and_an_upload():
    at = run_panel("draw", checkpoint("mnist-z16"), draw_source="A test image")
    first = float(metric(at, "log p(x)").split()[0])
    assert -400 < first < 0
    at.number_input(key="draw_test_index").set_value(1).run()
    second = float(metric(at, "log p(x)").split()[0])
    assert second != first and -400 < second < 0
    assert len(at.get("plotly_chart")) == 1  # the latent map
    # an upload: a dark stroke on white paper
    at.radio(key="draw_source").set_value("Upload a picture").run()
    paper = np.full((90, 90), 255, np.uint8)
    paper[15:75, 40:50] = 0
    buf = io.BytesIO()
    Image.fromarray(paper).save(buf, format="PNG")
    at.file_uploader(key="draw_upload").set_value(("one.png", buf.getvalue(), "image/png")).run()
    assert not at.exception
    assert any("inverted" in c for img in at.image for c in img.captions)
    assert float(metric(at, "log p(x)").split()[0]) < 0
    at.file_uploader(key="draw_upload").set_value(("bad.png", b"not an image at all", "image/png")).run()
    assert any("not an image" in w.value for w in at.warning)


def test_density_panel_k_slider_and_test_set_percentile():
    at = run_panel("density", checkpoint("mnist-z2"), density_k=1)
    one = float(metric(at, "log p(x)").split()[0])
    at.slider(key="density_k").set_value(500).run()
    many = float(metric(at, "log p(x)").split()[0])
    assert many > one - 1.0  # more samples: the bound tightens (up to noise)
    at.toggle(key="density_ref_on").set_value(True).run()
    assert not at.exception
    assert any("scores higher than" in m.value for m in at.markdown)


def test_dims_panel_kl_bars_and_grid():
    at = run_panel("dims", checkpoint("mnist-z16"))
    active, total = metric(at, "Active units").split(" / ")
    assert total == "16" and 0 < int(active) <= 16
    assert float(metric(at, "Total KL").split()[0]) > 0
    at.selectbox(key="dims_grid_y").set_value(at.session_state["dims_grid_x"]).run()
    assert any("two different" in w.value for w in at.warning)
    at.selectbox(key="dims_grid_y").set_value(0 if at.session_state["dims_grid_x"] else 1).run()
    assert not at.warning and "from" in at.image[-1].captions[0]


# every panel, every shipped checkpoint, the heavy sections switched on (slow)


@pytest.mark.slow
@pytest.mark.parametrize("panel", PANELS)
def test_every_panel_renders_for_every_shipped_checkpoint(panel, shipped_checkpoints):
    for path in shipped_checkpoints:
        at = run_panel(panel, path, draw_source="A test image", density_ref_on=True, density_anomaly_on=True,
                       density_mc_on=True)
        assert not at.error, (path.name, [e.value for e in at.error])
        if panel == "density":
            assert any("The lesson" in m.value for m in at.markdown)
            assert any("IWAE" in m.value or "below the IWAE value" in m.value for m in at.markdown)


# Fashion-MNIST: the panels take their class names and data sets from the checkpoint


@pytest.fixture
def fashion_checkpoint(tmp_path) -> Path:
    from explorer import checkpoints
    from explorer.data import DataError, load_dataset

    try:
        load_dataset("fashion", "test", allow_download=False)
    except DataError as e:
        pytest.skip(f"no Fashion-MNIST: {e}")
    from tests.conftest import make_model

    return checkpoints.save(make_model(latent_dim=3, conditional=True), tmp_path / "fashion-tiny.safetensors",
                            meta={"train": {"dataset": "fashion"}})


def test_panels_speak_fashion(fashion_checkpoint):
    from explorer.data import CLASS_NAMES

    at = run_panel("conditional", fashion_checkpoint)
    assert at.subheader[0].value == "Choose the class"
    assert at.image[1].captions == CLASS_NAMES["fashion"]
    assert "Sandal" in at.selectbox(key="cond_label").options[5]
    at = run_panel("density", fashion_checkpoint, density_anomaly_on=True)
    table = at.dataframe[0].value
    assert list(table["set"]) == ["test items", "rotated items (90°)", "MNIST digits", "uniform noise"]
    assert any("a fashion item" in m.value for m in at.markdown)
