"""Training from the sidebar, two people at once, in the real app: one trains, the other sees it and waits.

Page A starts a short training run; page B (another browser context, i.e. another person) sees who
started it and how far it is, and cannot start a second one; A's latent sliders keep decoding while
the job runs; at the end the new checkpoint is in both pickers. The app runs on a temp copy of
checkpoints/ (VAE_EXPLORER_CHECKPOINTS), so nothing is written into the repository.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path

import pytest

from tests.browser.conftest import ROOT, start_app, stop_app, wait_for_app

pytestmark = pytest.mark.slow

APP_SCRIPT = "app.py"
NAME = "classroom-run"
MAIN_DIGIT = "[data-testid='stMain'] [data-testid='stImage'] img"
SIDEBAR = "[data-testid='stSidebar']"
PICKER = "input[aria-label='Model (checkpoint)']"
STARTED_BY_ALICE = re.compile(r"^Started by alice")  # the status line under the progress bar


@pytest.fixture(scope="module")
def training_app(tmp_path_factory):
    if "render_training_sidebar" not in (ROOT / APP_SCRIPT).read_text():
        pytest.skip(f"{APP_SCRIPT} does not place the training panel (render_training_sidebar) yet")
    tmp = tmp_path_factory.mktemp("training-app")
    ckpts = tmp / "checkpoints"
    shutil.copytree(ROOT / "checkpoints", ckpts, ignore=shutil.ignore_patterns("user", ".*"))
    server = start_app(tmp, env={"VAE_EXPLORER_CHECKPOINTS": str(ckpts), "VAE_EXPLORER_ADMIN_TOKEN": ""},
                       script=APP_SCRIPT)
    yield server, ckpts
    stop_app(server)


def open_page(browser, url: str):
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = ctx.new_page()
    page.goto(url + "/?ckpt=mnist-z16&live=0")  # live=0: the stock sliders, decoded by the server
    page.locator(MAIN_DIGIT).first.wait_for(timeout=120_000)
    wait_for_app(page, timeout=120_000)
    return ctx, page


def open_training_form(page):
    sb = page.locator(SIDEBAR)
    sb.get_by_text("Train a new model").click()
    sb.get_by_role("button", name="Start training").wait_for(timeout=30_000)
    return sb


def digit_src(page) -> str:
    return page.locator(MAIN_DIGIT).first.get_attribute("src")


def test_one_trains_the_other_waits_and_both_get_the_model(training_app, browser):
    server, ckpts = training_app
    record = ckpts / "user" / "job.json"
    ctx_a, a = open_page(browser, server.url)
    ctx_b = None
    try:
        # A starts a short run (3 epochs on 2,000 digits, then a few seconds of log p(x) evaluation)
        sb = open_training_form(a)
        sb.get_by_role("textbox", name="Hidden layer widths").fill("256")
        sb.get_by_role("spinbutton", name="Epochs").fill("3")
        sb.get_by_role("spinbutton", name="Limit training images (advanced; 0 = all)").fill("2000")
        sb.get_by_role("textbox", name="Name of the new model").fill(NAME)
        sb.get_by_role("textbox", name="Your name").fill("alice")
        sb.get_by_role("button", name="Start training").click()
        sb.get_by_text(STARTED_BY_ALICE).wait_for(timeout=30_000)
        assert json.loads(record.read_text())["state"] == "running"

        # B, another person, sees who is training and how far it is, and cannot start a second job
        ctx_b, b = open_page(browser, server.url)
        sb_b = open_training_form(b)
        busy = sb_b.get_by_text(f"Busy: '{NAME}' started by alice")
        busy.wait_for(timeout=30_000)
        assert "epoch" in busy.inner_text() and "%" in busy.inner_text()
        assert sb_b.get_by_role("button", name="Start training").is_disabled()
        assert sb_b.get_by_text(STARTED_BY_ALICE).is_visible()
        assert sb_b.get_by_role("button", name="Cancel training").is_visible()

        # A's latent sliders keep working while the job runs
        before = digit_src(a)
        slider = a.locator("[data-testid='stMain']").get_by_role("slider").first
        slider.focus()
        for _ in range(6):
            a.keyboard.press("ArrowRight")
        a.wait_for_function(f"(b) => document.querySelector(\"{MAIN_DIGIT}\").src !== b", arg=before,
                            timeout=60_000)
        changed_at = time.time()
        assert digit_src(a) != before

        # the end: both pages show the result, and the new model is in both pickers
        for page in (a, b):
            page.locator(SIDEBAR).get_by_role("button", name="Switch to it").wait_for(timeout=300_000)
        rec = json.loads(record.read_text())
        assert rec["state"] == "done", rec.get("error")
        assert changed_at < rec["finished_at"], "the slider was moved after the job had already ended"
        assert (ckpts / "user" / f"{NAME}.safetensors").is_file()
        assert b.locator(SIDEBAR).get_by_text(f"Trained {NAME}").is_visible()
        b.locator(SIDEBAR).get_by_role("combobox", name="Model (checkpoint)").click()  # B's picker lists it
        b.get_by_role("option", name=f"user/{NAME}").wait_for(timeout=30_000)
        b.keyboard.press("Escape")
        a.locator(SIDEBAR).get_by_role("button", name="Switch to it").click()  # A switches to it
        a.wait_for_function(f"() => decodeURIComponent(location.search).includes('ckpt=user/{NAME}')",
                            timeout=60_000)
        a.wait_for_function(f"(name) => {{ const el = document.querySelector(\"{SIDEBAR} {PICKER}\"); "
                            "return el && el.value.startsWith(name); }", arg=f"user/{NAME}", timeout=60_000)
        a.locator(MAIN_DIGIT).first.wait_for(timeout=120_000)
    finally:
        ctx_a.close()
        if ctx_b is not None:
            ctx_b.close()
    assert not (ROOT / "checkpoints" / "user" / f"{NAME}.safetensors").exists()
    assert "Traceback" not in server.log()
