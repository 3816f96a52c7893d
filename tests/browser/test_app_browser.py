"""The real app in headless chromium: first digit, a slider moves the digit, the map loads a code, the GIF downloads."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from tests.browser.conftest import wait_for_app

pytestmark = pytest.mark.slow

DIGIT = "[data-testid='stImage'] img"


def digit_src(page) -> str:
    return page.locator(DIGIT).first.get_attribute("src")


def test_first_digit_and_stock_slider(app_server, page):
    page.goto(app_server.url + "/?ckpt=mnist-z16&live=0")
    page.locator(DIGIT).first.wait_for(timeout=120_000)
    sliders = page.get_by_role("slider")
    sliders.nth(15).wait_for(timeout=120_000)
    wait_for_app(page)
    src = digit_src(page)
    assert sliders.count() >= 16
    handle = sliders.first
    handle.focus()
    for _ in range(10):
        page.keyboard.press("ArrowRight")
    page.wait_for_function("(b) => document.querySelector(\"[data-testid='stImage'] img\").src !== b", arg=src,
                           timeout=60_000)
    assert digit_src(page) != src
    page.wait_for_function("() => /z=[^&]*0\\.5/.test(decodeURIComponent(location.search))", timeout=30_000)


def test_gif_download(app_server, page, tmp_path):
    page.goto(app_server.url + "/?ckpt=mnist-z16")
    wait_for_app(page)
    page.get_by_role("tab", name="Interpolation").click()
    button = page.get_by_role("button", name="Download GIF")
    button.wait_for(timeout=60_000)
    with page.expect_download(timeout=60_000) as dl:
        button.click()
    path = tmp_path / "interp.gif"
    dl.value.save_as(path)
    im = Image.open(io.BytesIO(path.read_bytes()))
    assert im.format == "GIF" and im.n_frames >= 10  # 10 steps, there and back


def test_clicking_a_map_dot_loads_its_code_into_the_sliders(app_server, page, mnist_dir):
    from explorer import checkpoints
    from explorer.data import load_dataset
    from explorer.latent import encode_images
    from tests.browser.test_mapview import ROOT_JS, isolated_point

    page.goto(app_server.url + "/?ckpt=mnist-z16")
    wait_for_app(page)
    live = page.get_by_role("slider")
    live.nth(15).wait_for(timeout=120_000)
    assert live.first.input_value() in ("0", "0.00")
    page.get_by_role("tab", name="Latent map").click()
    page.wait_for_function(f"() => {{ const r = {ROOT_JS}; return r && r.dataset.ready === '1' && "
                           "r.dataset.atlas === 'ready'; }", timeout=120_000)
    root = page.locator(".vm-root")
    p = isolated_point(root)
    page.mouse.click(p["x"], p["y"])
    page.get_by_text(f"Test image #{p['index']}").wait_for(timeout=60_000)
    # the code of that test image is now in the URL, and in the live sliders on the first tab
    model, _ = checkpoints.load("checkpoints/mnist-z16.safetensors")
    mu = encode_images(model, load_dataset("mnist", "test", data_dir=mnist_dir).images[p["index"]:p["index"] + 1])[0][0]
    page.wait_for_function("() => /[?&]z=/.test(location.search) && !/z=0%2C0%2C0/.test(location.search)",
                           timeout=30_000)
    import urllib.parse

    z = [float(v) for v in urllib.parse.parse_qs(urllib.parse.urlparse(page.url).query)["z"][0].split(",")]
    assert z == pytest.approx(mu.clip(-4, 4).tolist(), abs=0.01)
    page.get_by_role("tab", name="Latent sliders").click()
    page.wait_for_function("() => [...document.querySelectorAll('[data-testid=stBidiComponentIsolated]')]"
                           ".some(h => h.shadowRoot && [...h.shadowRoot.querySelectorAll('input[type=range]')]"
                           ".some(i => Math.abs(parseFloat(i.value)) > 0.02))", timeout=30_000)
