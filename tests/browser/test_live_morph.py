"""Live morphing: the decoder runs in the page, so the digit follows a slider while it is dragged.

The oracle is ``model.decode``: for the same code (and label) the page's pixels must match it to
1/255. The page is bench/live_demo_app.py, started on copies of the checkpoints (training may
rewrite the originals while the tests run). Tests wait on conditions, never on wall-clock times.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from torch import nn

from explorer import checkpoints
from explorer.config import ModelConfig
from explorer.decoder_export import (FP16_TOLERANCE, decode_with_payload, decoder_payload, float16_error,
                                     payload_arrays, supported)
from explorer.latent import interpolate
from explorer.model import VAE

from tests.browser.conftest import ROOT, start_app, stop_app

CKPTS = ("mnist-z16", "mnist-z2", "mnist-cvae-z8")
WAIT = 90_000  # ms; the CPU is shared with training


# helpers


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The demo page on copies of the checkpoints -> (server, {name: model})."""
    tmp = tmp_path_factory.mktemp("live")
    folder = tmp / "checkpoints"
    folder.mkdir()
    for name in CKPTS:
        shutil.copy2(ROOT / "checkpoints" / f"{name}.safetensors", folder / f"{name}.safetensors")
    models = {name: checkpoints.load(folder / f"{name}.safetensors")[0] for name in CKPTS}
    server = start_app(tmp, env={"VAE_EXPLORER_CHECKPOINTS": str(folder)}, script="bench/live_demo_app.py")
    yield server, models
    stop_app(server)


def open_demo(page, server, query: str = "", key: str = "live") -> None:
    """Open the demo and wait until the widget has painted its first frame."""
    page.goto(f"{server.url}/?{query}")
    page.wait_for_function(f"() => window.__vaeLive?.[{key!r}]?.frames > 0", timeout=WAIT)


def live(page, expr: str, key: str = "live"):
    """Evaluate ``expr`` with ``i`` bound to the widget instance in the page."""
    return page.evaluate(f"() => {{ const i = window.__vaeLive[{key!r}]; return {expr}; }}")


def reference(model: VAE, z, label: int | None) -> np.ndarray:
    """model.decode(z, y) -> (784,) float in [0, 1]."""
    with torch.no_grad():
        y = torch.tensor([label]) if model.config.conditional else None
        return model.decode(torch.tensor([z], dtype=torch.float32), y)[0, 0].numpy().reshape(-1)


def page_pixels(page) -> tuple[np.ndarray, np.ndarray]:
    """The last painted frame: (784 decoder outputs in [0, 1], 784 canvas grey levels 0..255)."""
    outputs = np.asarray(live(page, "Array.from(i.pixels)"), dtype=np.float64)
    rgba = page.locator("canvas.digit").evaluate(
        "c => Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data)")
    return outputs, np.asarray(rgba, dtype=np.float64).reshape(-1, 4)[:, 0]


def assert_matches(page, model: VAE, z, label: int | None) -> None:
    outputs, grey = page_pixels(page)
    ref = reference(model, z, label)
    assert outputs.shape == grey.shape == (784,)
    assert np.abs(outputs - ref).max() <= 1 / 255
    assert np.abs(grey - ref * 255).max() <= 1.0  # the canvas holds 8-bit greys: one level at most
    assert ref.max() - ref.min() > 0.1  # a real image, not a blank that would match anything


def push_z(page, z) -> None:
    """Send a code from Python (the demo's text box) and wait until the page has painted exactly it."""
    box = page.get_by_label("Set z (JSON list)")
    box.fill(json.dumps(z))
    box.press("Enter")
    page.wait_for_function(
        "z => { const i = window.__vaeLive.live; return i.paintedZ && i.paintedZ.length === z.length"
        " && i.paintedZ.every((v, k) => Math.abs(v - z[k]) < 1e-9); }", arg=z, timeout=WAIT)


def reported(page) -> list[float]:
    text = page.locator("[data-testid='stText']").filter(has_text="reported:").inner_text()
    return json.loads(text.split("reported:", 1)[1])


def wait_reported(page, check, what: str) -> list[float]:
    """Wait until the z that Python holds (shown by the demo) satisfies ``check``."""
    page.wait_for_function(
        "() => [...document.querySelectorAll(\"[data-testid='stText']\")].some(e => e.innerText.startsWith('reported:'))",
        timeout=WAIT)
    for _ in range(int(WAIT / 250)):
        try:
            value = reported(page)
            if check(value):
                return value
        except (ValueError, json.JSONDecodeError):
            pass
        page.wait_for_timeout(250)
    raise AssertionError(f"Python never received {what}; last shown: {reported(page)}")


def slider_box(page, name: str) -> dict:
    slider = page.get_by_label(name, exact=True)
    slider.scroll_into_view_if_needed()
    return slider.bounding_box()


# (a) the page decodes exactly what the server decodes


@pytest.mark.parametrize("name, label", [("mnist-z16", None), ("mnist-cvae-z8", 3), ("mnist-cvae-z8", 7)])
def test_page_pixels_match_model_decode(demo, page, name, label):
    server, models = demo
    model = models[name]
    open_demo(page, server, f"ckpt={name}" + (f"&label={label}" if label is not None else ""))
    g = np.random.default_rng(0)
    for _ in range(3):
        z = [round(float(v), 6) for v in 1.5 * g.standard_normal(model.config.latent_dim)]
        push_z(page, z)
        assert live(page, "i.paintedLabel") == (label or 0)
        assert_matches(page, model, z, label)
        # the thumbs moved to the pushed code (snapped to the 0.01 step)
        first = page.get_by_label("z0 · latent 0", exact=True).input_value()
        assert float(first) == pytest.approx(np.clip(z[0], -3, 3), abs=0.0051)
    if label is not None:  # another digit for the same code: the page repaints with the new label
        page.get_by_label("Digit label").click()
        page.get_by_role("option", name="5", exact=True).click()
        page.wait_for_function("() => window.__vaeLive.live.paintedLabel === 5", timeout=WAIT)
        assert_matches(page, model, z, 5)


# (b) dragging paints many frames during the drag, and Python receives the final value


def test_drag_paints_every_frame_and_reports_the_release(demo, page):
    server, models = demo
    open_demo(page, server)
    push_z(page, [0.0] * 16)
    box = slider_box(page, "z3 · latent 3")
    y = box["y"] + box["height"] / 2
    left, width = box["x"] + 8, box["width"] - 16  # the thumb's centre travels between its half-widths
    page.mouse.move(left + width / 2, y)
    page.mouse.down()
    before = live(page, "i.frames")
    mid = None
    for k in range(21):
        page.mouse.move(left + width * (0.5 - k / 40), y)  # centre -> left end ...
        page.wait_for_timeout(30)
        if k == 10:
            mid = live(page, "i.frames")
    for k in range(21):
        page.mouse.move(left + width * k / 20, y)  # ... -> right end, 20 steps
        page.wait_for_timeout(30)
    during = live(page, "({frames: i.frames, reports: i.reports, z: i.z.slice()})")
    page.mouse.up()

    assert mid - before >= 5, "frames were not painted while the thumb was still moving"
    assert during["frames"] - before >= 20, f"only {during['frames'] - before} frames for 42 pointer moves"
    assert during["reports"] >= 1, "no throttled report reached Python while dragging"
    assert during["z"][3] == pytest.approx(3.0)
    final = wait_reported(page, lambda z: z[3] == pytest.approx(3.0), "the released value z3 = 3")
    assert final[:3] == [0.0, 0.0, 0.0] and final[4:] == [0.0] * 12
    # the reruns caused by the reports never pushed an older value back onto the thumb
    page.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=WAIT)
    assert live(page, "i.z[3]") == pytest.approx(3.0)
    assert float(page.get_by_label("z3 · latent 3", exact=True).input_value()) == pytest.approx(3.0)
    assert_matches(page, models["mnist-z16"], live(page, "i.paintedZ"), None)


# (c) the keyboard moves a slider, the image follows and Python hears it


def test_arrow_keys_move_the_digit_and_report(demo, page):
    server, models = demo
    open_demo(page, server)
    push_z(page, [0.0] * 16)
    before_pixels, _ = page_pixels(page)
    frames = live(page, "i.frames")
    slider = page.get_by_label("z5 · latent 5", exact=True)
    slider.focus()
    for _ in range(30):
        page.keyboard.press("ArrowRight")
    page.wait_for_function("f => window.__vaeLive.live.frames > f", arg=frames, timeout=WAIT)
    page.wait_for_function("() => Math.abs(window.__vaeLive.live.paintedZ[5] - 0.3) < 1e-9", timeout=WAIT)
    after_pixels, _ = page_pixels(page)
    assert np.abs(after_pixels - before_pixels).max() > 0.01, "the image did not change"
    assert_matches(page, models["mnist-z16"], live(page, "i.paintedZ"), None)
    wait_reported(page, lambda z: z[5] == pytest.approx(0.3), "z5 = 0.3 from the keyboard")


# (d) every slider has an accessible name


def test_sliders_have_accessible_labels(demo, page):
    server, _ = demo
    open_demo(page, server)
    for d in range(16):
        by_label = page.get_by_label(f"z{d} · latent {d}", exact=True)
        assert by_label.count() == 1
        assert by_label.get_attribute("type") == "range"
        assert page.get_by_role("slider", name=f"z{d} · latent {d}", exact=True).count() == 1
    assert page.get_by_role("img", name="Decoded digit").count() == 1
    canvas = page.locator("canvas.digit")
    assert canvas.evaluate("c => getComputedStyle(c).imageRendering") == "pixelated"
    assert canvas.evaluate("c => [c.width, c.height, c.clientWidth]") == [28, 28, 280]


# the scrubber and the 2-D map


def test_scrubber_follows_slerp_path(demo, page):
    server, models = demo
    model = models["mnist-z16"]
    open_demo(page, server, "mode=scrub", key="scrub")
    ends = np.random.default_rng(1).standard_normal((2, 16))  # the demo's endpoints
    path = interpolate(ends[0], ends[1], 201, mode="slerp")
    slider = page.get_by_label("Position along the path", exact=True)
    slider.focus()
    page.keyboard.press("End")
    page.wait_for_function("() => window.__vaeLive.scrub.t === 1", timeout=WAIT)
    page.keyboard.press("Home")
    for _ in range(50):
        page.keyboard.press("ArrowRight")
    page.wait_for_function("() => window.__vaeLive.scrub.paintedZ && window.__vaeLive.scrub.t === 0.25", timeout=WAIT)
    page.wait_for_function("() => { const i = window.__vaeLive.scrub;"
                           " return i.paintedZ.every((v, k) => v === i.currentZ()[k]); }", timeout=WAIT)
    z = live(page, "i.paintedZ", key="scrub")
    np.testing.assert_allclose(z, path[50], atol=1e-5)
    outputs = np.asarray(live(page, "Array.from(i.pixels)", key="scrub"))
    assert np.abs(outputs - reference(model, z, None)).max() <= 1 / 255
    page.wait_for_function(
        "() => [...document.querySelectorAll(\"[data-testid='stText']\")]"
        ".some(e => e.innerText.includes('\"t\": 0.25'))", timeout=WAIT)


def test_map_decodes_on_hover_and_reports_click(demo, page):
    server, models = demo
    open_demo(page, server, "mode=map&ckpt=mnist-z2", key="map")
    canvas = page.get_by_role("application")
    box = canvas.bounding_box()
    frames = live(page, "i.frames", key="map")
    for k in range(10):
        page.mouse.move(box["x"] + box["width"] * (0.2 + 0.06 * k), box["y"] + box["height"] * 0.3)
        page.wait_for_timeout(30)
    page.wait_for_function("f => window.__vaeLive.map.frames >= f + 5", arg=frames, timeout=WAIT)
    z = live(page, "i.paintedZ", key="map")
    assert z[0] == pytest.approx(-3 + 6 * 0.74, abs=0.05) and z[1] == pytest.approx(3 - 6 * 0.3, abs=0.05)
    outputs = np.asarray(live(page, "Array.from(i.pixels)", key="map"))
    assert np.abs(outputs - reference(models["mnist-z2"], z, None)).max() <= 1 / 255
    assert "z0 = " in page.locator(".readout").inner_text()
    page.mouse.click(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.5)
    wait_reported(page, lambda v: v is not None and np.allclose(v, [0.0, 0.0], atol=0.05), "the clicked point")


# the payload itself (no browser needed)


def test_payload_round_trips_and_decodes_like_the_model():
    model = VAE(ModelConfig(latent_dim=4, hidden=(32, 16), conditional=True))
    for dtype in ("float32", "float16"):
        p = decoder_payload(model, dtype=dtype)
        assert p["dtype"] == dtype and p["latent_dim"] == 4 and p["conditional"] and p["image_size"] == 28
        assert [layer["shape"] for layer in p["layers"]] == [[16, 14], [32, 16], [784, 32]]
        weights = payload_arrays(p)
        for (w, b), lin in zip(weights, [m for m in model.decoder if isinstance(m, nn.Linear)]):
            tol = 0 if dtype == "float32" else 1e-3
            np.testing.assert_allclose(w, lin.weight.detach().numpy(), atol=tol, rtol=tol)
            np.testing.assert_allclose(b, lin.bias.detach().numpy(), atol=tol, rtol=tol)
        z = np.random.default_rng(0).standard_normal(4)
        np.testing.assert_allclose(decode_with_payload(p, z, 5).reshape(-1), reference(model, z.tolist(), 5),
                                   atol=1e-5 if dtype == "float32" else 1 / 255)


def test_payload_id_follows_the_weights_and_auto_dtype_respects_tolerance():
    model = VAE(ModelConfig(latent_dim=2, hidden=(16,)))
    p = decoder_payload(model)
    assert p["payload_id"] == decoder_payload(model)["payload_id"]
    assert p["dtype"] == ("float16" if float16_error(model) <= FP16_TOLERANCE else "float32")
    with torch.no_grad():
        model.decoder[0].bias += 0.01
    assert decoder_payload(model)["payload_id"] != p["payload_id"]


def test_unsupported_decoders_are_refused_with_a_reason():
    model = VAE(ModelConfig(latent_dim=2, hidden=(16,)))
    assert supported(model) == (True, "")
    model.decoder = nn.Sequential(nn.Linear(2, 16), nn.Tanh(), nn.Linear(16, 784))
    ok, reason = supported(model)
    assert not ok and "Tanh" in reason
    with pytest.raises(ValueError, match="Tanh"):
        decoder_payload(model)
    model.decoder = nn.Sequential(nn.Unflatten(1, (2, 1, 1)), nn.ConvTranspose2d(2, 1, 28))
    assert not supported(model)[0]


def test_unsupported_payload_falls_back_to_server_sliders():
    from streamlit.testing.v1 import AppTest

    def script():
        import numpy as np

        from explorer.ui.live import live_latent

        out = live_latent({"supported": False, "reason": "decoder is a ConvTranspose2d"}, [0.5, -1.0], key="w",
                          fallback_decode=lambda z: np.full((28, 28), 0.5))
        import streamlit as st

        st.text(f"out={out}")

    at = AppTest.from_function(script).run()
    assert not at.exception
    assert "ConvTranspose2d" in at.caption[0].value and "server" in at.caption[0].value
    assert [s.value for s in at.slider] == [0.5, -1.0]
    assert at.text[0].value == "out=[0.5, -1.0]"


def test_supported_payload_mounts_without_a_browser():
    from streamlit.testing.v1 import AppTest

    def script():
        import streamlit as st
        import torch

        from explorer.config import ModelConfig
        from explorer.decoder_export import decoder_payload
        from explorer.model import VAE
        from explorer.ui.live import live_latent, live_map_2d, live_scrubber

        torch.manual_seed(0)
        p = decoder_payload(VAE(ModelConfig(latent_dim=2, hidden=(16,))))
        st.text(f"latent={live_latent(p, [0.0, 1.0], key='a')}")
        st.text(f"scrub={live_scrubber(p, [[0.0, 1.0], [1.0, 0.0]], key='b')}")
        st.text(f"map={live_map_2d(p, key='c')}")

    at = AppTest.from_function(script).run()
    assert not at.exception
    assert [t.value for t in at.text] == ["latent=None", "scrub=None", "map=None"]
