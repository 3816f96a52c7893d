"""The real app in headless chromium: first digit, a slider moves the digit, the map loads a code, the GIF downloads."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from conftest import wait_for_app

pytestmark = pytest.mark.slow

DIGIT = "[data-testid='stImage'] img"


def digit_src(page) -> str:
    return page.locator(DIGIT).first.get_attribute("src")


def test_first_digit_and_stock_slider(app_server, page):
    page.goto(app_server.url + "/?ckpt=mnist-z16")
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
