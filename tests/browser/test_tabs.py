"""Lazy tabs in the real app: only the open tab runs, the tab is in the URL, and neither another live
tab (the interpolation scrubber) nor coming back to the sliders sends the decoder's weights (3.6 MB) again."""

from __future__ import annotations

import re

import pytest

from tests.browser.conftest import wait_for_app

pytestmark = pytest.mark.slow

# the live sliders show the code the server has (the URL's z, 3 significant digits)
LIVE_SHOWS_URL_Z = """() => {
  for (const h of document.querySelectorAll("[data-testid='stBidiComponentIsolated']")) {
    const r = h.shadowRoot && h.shadowRoot.querySelector(".live-latent");
    if (!r || !(r.dataset.frames > 0)) continue;
    const want = new URLSearchParams(location.search).get("z").split(",").map(Number);
    const got = JSON.parse(r.dataset.z || "[]");
    return got.length === want.length && got.every((v, d) => Number(v.toPrecision(3)) === want[d]);
  }
  return false;
}"""
LIVE_FRAMES = "() => Object.values(globalThis.__vaeLive || {}).reduce((n, i) => Math.max(n, i.frames || 0), 0)"


def open_tab(page, name: str, heading: str) -> None:
    page.get_by_role("tab", name=name).click()
    page.get_by_role("heading", name=heading).wait_for(timeout=90_000)
    wait_for_app(page)
    page.wait_for_timeout(1000)  # websocket frame events reach Python while it waits


def test_tabs_are_in_the_url_and_the_weights_are_sent_once(app_server, browser):
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = ctx.new_page()
    received: list[int] = []
    page.on("websocket", lambda ws: ws.on(
        "framereceived", lambda payload: received.append(len(payload) if payload else 0)))
    try:
        page.goto(app_server.url + "/?ckpt=mnist-z16")
        page.wait_for_function(LIVE_FRAMES + " >= 1", timeout=120_000)
        wait_for_app(page)
        page.wait_for_timeout(1000)
        first_load = sum(received)
        assert first_load > 3_000_000  # the decoder's weights came with the first page
        # move a live slider: the server gets the new code (the URL's z changes)
        search = page.evaluate("() => location.search")
        page.locator("[data-testid='stMain']").get_by_role("slider").first.focus()
        for _ in range(30):
            page.keyboard.press("ArrowRight")
        page.wait_for_function("s => location.search !== s", arg=search, timeout=30_000)
        page.wait_for_function(LIVE_SHOWS_URL_Z, timeout=30_000)
        moved_z = page.evaluate("() => new URLSearchParams(location.search).get('z')")
        assert moved_z != ",".join(["0"] * 16)
        wait_for_app(page)
        page.wait_for_timeout(1000)
        first_load = sum(received)

        # other tabs: each is drawn when opened, and named in the URL; the scrubber reuses the weights
        open_tab(page, "Interpolation", "Interpolate between two codes")
        scrubber = sum(received) - first_load
        assert scrubber < 500_000, f"{scrubber} bytes sent to open the interpolation tab"
        page.wait_for_function("() => (globalThis.__vaeLive['interp-scrub'] || {}).frames >= 1", timeout=60_000)
        assert re.search(r"[?&]tab=Interpolation\b", page.url)
        assert page.get_by_role("heading", name="Move through the latent space").count() == 0  # not drawn
        open_tab(page, "Reconstruction & ELBO", "Reconstructions")
        open_tab(page, "Dimensions", "Which dimensions matter")
        open_tab(page, "Interpolation", "Interpolate between two codes")

        # back to the sliders: drawn again, the URL drops the default tab, the weights are not sent again
        before = sum(received)
        page.get_by_role("tab", name="Latent sliders").click()
        page.get_by_role("heading", name="Move through the latent space").wait_for(timeout=90_000)
        wait_for_app(page)
        page.wait_for_function("() => (globalThis.__vaeLive['live-z'] || {}).frames >= 1", timeout=60_000)
        page.wait_for_timeout(1000)
        back = sum(received) - before
        assert back < 500_000, f"{back} bytes sent when coming back to the sliders tab"
        assert "tab=" not in page.url
        # the re-mounted sliders show the moved code, not the one they were first mounted with
        assert page.evaluate("() => new URLSearchParams(location.search).get('z')") == moved_z
        page.wait_for_function(LIVE_SHOWS_URL_Z, timeout=30_000)

        # the live sliders still decode in the page after the round trip
        frames = page.evaluate(LIVE_FRAMES)
        slider = page.locator("[data-testid='stMain']").get_by_role("slider").first
        slider.focus()
        page.keyboard.press("ArrowRight")
        page.wait_for_function(LIVE_FRAMES + f" > {frames}", timeout=30_000)

        # a link with ?tab= opens that tab directly
        page.goto(app_server.url + "/?ckpt=mnist-z16&tab=Dimensions")
        page.get_by_role("heading", name="Which dimensions matter").wait_for(timeout=90_000)
        assert page.locator("[role='tab'][aria-selected='true']").inner_text().strip() == "Dimensions"
    finally:
        ctx.close()
