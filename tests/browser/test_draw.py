"""Draw a digit with the mouse in the real app and see the model's answer: a reconstruction and log p(x)."""

from __future__ import annotations

import re

from tests.browser.conftest import wait_for_app

WAIT = 120_000  # ms; the CPU is shared with training


def open_draw_tab(page, url: str):
    """Open the app, switch to the drawing tab -> its visible tab panel.

    Only the open tab runs: the click reruns the script, and the panel fills in after that rerun. The
    locator below is evaluated at each use, so every wait on it waits for that content."""
    page.goto(url)
    wait_for_app(page, WAIT)
    page.get_by_role("tab", name=re.compile("Draw")).click()
    page.wait_for_function("() => /[?&]tab=Draw/.test(location.search)", timeout=WAIT)  # the tab is in the URL
    panel = page.locator("[role=tabpanel]:visible")
    panel.get_by_text("Draw a digit on the canvas").wait_for(timeout=WAIT)
    return panel


def draw_stroke(page, canvas, points: list[tuple[float, float]]) -> None:
    """Press, move through ``points`` (fractions of the canvas size), release."""
    canvas.wait_for(timeout=WAIT)
    box = canvas.bounding_box()
    xy = [(box["x"] + fx * box["width"], box["y"] + fy * box["height"]) for fx, fy in points]
    page.mouse.move(*xy[0])
    page.mouse.down()
    for x, y in xy[1:]:
        page.mouse.move(x, y, steps=4)
    page.mouse.up()


def draw_and_check(page, url: str) -> float:
    """Draw a '7' and wait for the reconstruction and the score -> log p(x) in nats."""
    panel = open_draw_tab(page, url)
    canvas = panel.locator("canvas").last  # Fabric's upper canvas takes the pointer events
    draw_stroke(page, canvas, [(0.25, 0.2), (0.5, 0.2), (0.75, 0.2), (0.62, 0.5), (0.5, 0.85)])
    recon = panel.locator("[data-testid=stImage]").filter(has_text="its reconstruction")
    recon.wait_for(timeout=WAIT)
    assert recon.locator("img").evaluate("img => img.complete && img.naturalWidth") >= 28
    metric = panel.locator("[data-testid=stMetric]").filter(has_text="log p(x)")
    metric.wait_for(timeout=WAIT)
    value = metric.locator("[data-testid=stMetricValue]").inner_text()
    score = float(value.split()[0])
    assert -2000 < score < 0, value
    assert panel.get_by_text("no ink found").count() == 0
    return score


def test_drawing_a_digit_shows_its_reconstruction_and_score(app_server, page):
    draw_and_check(page, app_server.url)
    # Clear empties the canvas and the results go away
    panel = page.locator("[role=tabpanel]:visible")
    panel.get_by_role("button", name=re.compile("Clear")).click()
    panel.get_by_text("Draw a digit on the canvas").wait_for(timeout=WAIT)
    assert panel.locator("[data-testid=stMetric]").filter(has_text="log p(x)").count() == 0


def test_the_drawing_survives_a_tab_switch(app_server, page):
    """Only the open tab runs, so the canvas is unmounted while another tab is open: it comes back drawn."""
    score = draw_and_check(page, app_server.url)
    page.get_by_role("tab", name="Dimensions").click()
    page.get_by_role("heading", name="Which dimensions matter").wait_for(timeout=WAIT)
    page.get_by_role("tab", name=re.compile("Draw")).click()
    panel = page.locator("[role=tabpanel]:visible")
    metric = panel.locator("[data-testid=stMetric]").filter(has_text="log p(x)")
    metric.wait_for(timeout=WAIT)
    assert float(metric.locator("[data-testid=stMetricValue]").inner_text().split()[0]) == score
    # the strokes are back on the canvas too (Fabric's lower canvas holds the pixels)
    inked = """c => { const g = c.getContext('2d'); if (!g || c.width < 100) return false;
        const d = g.getImageData(0, 0, c.width, c.height).data;
        for (let i = 0; i < d.length; i += 4) if (d[i] < 128 && d[i + 3] > 0) return true;
        return false; }"""
    canvases = panel.locator("canvas")
    for _ in range(100):
        if any(canvases.nth(i).evaluate(inked) for i in range(canvases.count())):
            break
        page.wait_for_timeout(200)
    else:
        raise AssertionError("the canvas came back empty")
    panel.get_by_role("button", name=re.compile("Clear")).click()
    panel.get_by_text("Draw a digit on the canvas").wait_for(timeout=WAIT)
