"""The latent-map component in real chromium, on bench/mapview_demo_app.py with the real MNIST test set.

Every wait is a condition (wait_for_function / wait_for_selector), never a sleep.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from tests.browser.conftest import ROOT, start_app, stop_app, wait_for_app

# the component's root element, inside the open shadow root Streamlit mounts it in
ROOT_JS = """(() => {
  for (const host of document.querySelectorAll('[data-testid="stBidiComponentIsolated"]')) {
    const r = host.shadowRoot && host.shadowRoot.querySelector('.vm-root');
    if (r) return r;
  }
  return null;
})()"""
TIMEOUT = 120_000


@pytest.fixture(scope="module")
def demo(tmp_path_factory, mnist_dir):
    if not (ROOT / "checkpoints" / "mnist-z16.safetensors").is_file():
        pytest.skip("no shipped mnist-z16 checkpoint")
    server = start_app(tmp_path_factory.mktemp("mapview"), env={"VAE_EXPLORER_DATA": str(mnist_dir)},
                       script="bench/mapview_demo_app.py")
    yield server
    stop_app(server)


@pytest.fixture(scope="module")
def mnist_test(mnist_dir):
    from explorer.data import load_dataset

    ds = load_dataset("mnist", "test", data_dir=mnist_dir)
    return ds.images, ds.labels


def open_map(page, url: str):
    page.goto(url)
    wait_for_app(page, TIMEOUT)
    page.wait_for_function(f"() => {{ const r = {ROOT_JS}; return r && r.dataset.ready === '1' && "
                           "r.dataset.atlas === 'ready'; }", timeout=TIMEOUT)
    return page.locator(".vm-root")


def dataset(root) -> dict:
    return root.evaluate("r => ({...r.dataset})")


def isolated_point(root) -> dict:
    """The visible point farthest from the plot centre (so no other dot is within hover range)."""
    return root.evaluate("""r => {
      const v = r.mapView; let best = -1, bd = -1;
      for (let i = 0; i < v.n; i++) {
        const [sx, sy] = v.toScreen(v.X[i], v.Y[i]);
        if (sx < 30 || sy < 30 || sx > v.W - 30 || sy > v.H - 30) continue;
        const d = (sx - v.W / 2) ** 2 + (sy - v.H / 2) ** 2;
        if (d > bd) { bd = d; best = i; }
      }
      return {index: best, ...v.screenPosition(best)};
    }""")


def wait_data(page, name: str, value: str) -> None:
    page.wait_for_function(f"v => {ROOT_JS}?.dataset.{name} === v", arg=value, timeout=TIMEOUT)


def tooltip_pixels(root) -> np.ndarray:
    """The tooltip image (84, 84) as grey levels (red channel)."""
    data = root.evaluate("""r => Array.from(r.querySelector('.vm-tip canvas').getContext('2d')
                              .getImageData(0, 0, 84, 84).data)""")
    return np.asarray(data, np.uint8).reshape(84, 84, 4)[:, :, 0]


def shown_click(page) -> dict | None:
    text = page.locator("[data-testid='stText']").filter(has_text="click=").inner_text()
    return json.loads(text.split("click=", 1)[1])


def test_map_draws_every_point_with_a_legend(demo, page):
    root = open_map(page, demo.url)
    d = dataset(root)
    assert d["n"] == "10000" and d["points"] == "10000"
    assert root.locator(".vm-legend button").count() == 10
    assert "10,000 test images" in root.locator("canvas.vm-points").get_attribute("aria-label")


def test_hover_shows_that_test_image_exactly(demo, page, mnist_test):
    images, labels = mnist_test
    root = open_map(page, demo.url)
    p = isolated_point(root)
    page.mouse.move(p["x"], p["y"])
    wait_data(page, "hovered", str(p["index"]))
    tip = root.locator(".vm-tip")
    assert tip.is_visible()
    assert tip.get_attribute("data-image") == "atlas"
    assert tip.inner_text().strip() == f"{labels[p['index']]} · #{p['index']}"
    px = tooltip_pixels(root)
    for dy in range(3):  # every 3x3 block is one source pixel (no smoothing)
        for dx in range(3):
            np.testing.assert_array_equal(px[dy::3, dx::3], images[p["index"]])
    page.mouse.move(2, 2)  # off the canvas: the tooltip goes away
    wait_data(page, "hovered", "-1")
    assert not tip.is_visible()


def test_click_reports_the_index_with_a_new_nonce_each_time(demo, page):
    root = open_map(page, demo.url)
    p = isolated_point(root)
    page.mouse.click(p["x"], p["y"])
    page.wait_for_function("i => document.body.innerText.includes('click={\"index\": ' + i + ',')",
                           arg=p["index"], timeout=TIMEOUT)
    first = shown_click(page)
    assert first["index"] == p["index"]
    page.mouse.click(p["x"], p["y"])  # the same dot again is a new event
    page.wait_for_function("() => document.body.innerText.includes('new_clicks=2')", timeout=TIMEOUT)
    second = shown_click(page)
    assert second["index"] == p["index"] and second["nonce"] > first["nonce"]
    # the picks come back as highlight markers, and the atlas was sent once for all these reruns
    assert re.search(rf"picks=\[{p['index']}, {p['index']}\]", page.locator("body").inner_text())
    d = dataset(root)
    assert d["atlasReceived"] == "1" and d["atlasDecodes"] == "1"


def test_keyboard_users_can_show_and_select_by_index(demo, page, mnist_test):
    images, _ = mnist_test
    root = open_map(page, demo.url)
    box = root.get_by_label("Test image index")
    box.fill("1234")
    wait_data(page, "hovered", "1234")
    px = tooltip_pixels(root)
    np.testing.assert_array_equal(px[1::3, 1::3], images[1234])
    box.press("Enter")
    page.wait_for_function("() => document.body.innerText.includes('click={\"index\": 1234,')", timeout=TIMEOUT)
    assert root.get_attribute("data-selected") == "1234"


def test_wheel_zooms_about_the_cursor_and_reset_restores(demo, page):
    root = open_map(page, demo.url)
    start = dataset(root)["view"]
    p = isolated_point(root)
    page.mouse.move(p["x"], p["y"])
    wait_data(page, "hovered", str(p["index"]))
    page.mouse.wheel(0, -400)
    page.wait_for_function(f"v => {ROOT_JS}.dataset.view !== v", arg=start, timeout=TIMEOUT)
    k0, k1 = float(start.split(",")[0]), float(dataset(root)["view"].split(",")[0])
    assert k1 > 1.5 * k0
    after = root.evaluate("(r, i) => r.mapView.screenPosition(i)", p["index"])
    assert abs(after["x"] - p["x"]) < 1 and abs(after["y"] - p["y"]) < 1  # the point under the cursor stays
    assert int(dataset(root)["points"]) < 10000  # some points are now outside the view
    root.get_by_role("button", name="Reset view").click()
    wait_data(page, "view", start)


def test_a_page_that_lost_the_atlas_asks_for_it_again(demo, page):
    root = open_map(page, demo.url)
    root.evaluate("() => globalThis.__vaeExplorerMapview.atlases.clear()")
    page.get_by_text("Mark the origin with a star").click()  # new data -> the component looks for its atlas
    wait_data(page, "atlasReceived", "2")
    wait_data(page, "atlas", "ready")


def test_two_d_model_decodes_empty_space_in_the_browser(demo, page):
    import torch

    from explorer import checkpoints

    path = ROOT / "checkpoints" / "mnist-z2.safetensors"
    if not path.is_file():
        pytest.skip("no shipped mnist-z2 checkpoint")
    root = open_map(page, demo.url + "/?ckpt=mnist-z2")
    wait_data(page, "decoder", "ready")
    box = root.locator("canvas.vm-points").bounding_box()
    page.mouse.move(box["x"] + 25, box["y"] + 25)  # a corner: no test image there
    wait_data(page, "hoverKind", "decoded")
    z = [float(v) for v in root.locator(".vm-tip").get_attribute("data-z").split(",")]
    model, _ = checkpoints.load(path)
    with torch.no_grad():
        want = np.round(model.decode(torch.tensor([z])).numpy()[0, 0] * 255)
    got = tooltip_pixels(root)[1::3, 1::3].astype(float)
    assert np.abs(got - want).max() <= 1  # float16 weights: within one grey level
    page.mouse.click(box["x"] + 25, box["y"] + 25)
    page.wait_for_function("() => document.body.innerText.includes('\"xy\": [')", timeout=TIMEOUT)
    click = shown_click(page)
    assert click["xy"] == pytest.approx(z, abs=1e-6)
