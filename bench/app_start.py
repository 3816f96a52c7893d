"""App start-up and map timings, measured for real.

1. Time from `streamlit run app.py` to the first decoded digit on screen, in headless chromium
   (the browser is launched before the server so its own start is not counted).
2. Server time of one latent-slider rerun (AppTest, in-process: script time only) and, in the
   browser, key press on a slider -> new decoded image on screen.
3. UMAP map of the test codes: cold (fresh process, empty numba + map caches: import + JIT + fit),
   warm (fresh process, numba cache filled, map cache empty), and from the disk cache.

    .venv/bin/python bench/app_start.py [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "browser"))

from conftest import CHROMIUM, CHROMIUM_ARGS, start_app, stop_app  # noqa: E402

UMAP_SNIPPET = """
import sys, time, json
from explorer import checkpoints, embed
from explorer.data import load_dataset
from explorer.latent import encode_images
model, meta = checkpoints.load(sys.argv[1])
ds = load_dataset("mnist", "test")
mu, _ = encode_images(model, ds.images[:5000])
out = []
for key in sys.argv[2:]:  # each key is one map request in this (server-like) process
    t0 = time.perf_counter()
    coords, hit = embed.cached_coords(mu, "umap", key)
    out.append({"seconds": time.perf_counter() - t0, "from_cache": hit})
print(json.dumps(out))
"""


def first_digit_seconds(browser, tmp: Path) -> float:
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    t0 = time.perf_counter()
    srv = start_app(tmp)
    try:
        page.goto(srv.url)
        # the live slider component paints the decoded digit on its canvas (frames counts paints)
        page.wait_for_function("() => Object.values(globalThis.__vaeLive || {}).some(i => i.frames >= 1)",
                               timeout=120_000)
        return time.perf_counter() - t0
    finally:
        page.close()
        stop_app(srv)


def browser_slider_latency(browser, tmp: Path, n: int = 10) -> list[float]:
    """Focus the first latent slider, press ArrowRight, wait for the decoded image's src to change."""
    srv = start_app(tmp)
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    try:
        page.goto(srv.url + "/?live=0")  # the stock path: a server rerun per slider step
        img = page.locator("[data-testid='stImage'] img").first
        img.wait_for(timeout=120_000)
        handle = page.get_by_role("slider").first
        out = []
        for _ in range(n):
            before = img.get_attribute("src")
            handle.focus()
            t0 = time.perf_counter()
            page.keyboard.press("ArrowRight")
            page.wait_for_function("(b) => { const i = document.querySelector(\"[data-testid='stImage'] img\");"
                                   " return i && i.src !== b; }", arg=before, timeout=30_000)
            out.append(time.perf_counter() - t0)
        return out
    finally:
        page.close()
        stop_app(srv)


def apptest_rerun_seconds(n: int = 10) -> list[float]:
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300)
    at.query_params["ckpt"] = "mnist-z16"
    at.query_params["live"] = "0"
    at.run()
    s = next(x for x in at.slider if x.key == "zslider_0")
    out = []
    for i in range(n):
        t0 = time.perf_counter()
        s.set_value(round(-1 + 0.2 * i, 2)).run()
        out.append(time.perf_counter() - t0)
        s = next(x for x in at.slider if x.key == "zslider_0")
    return out


def umap_times(ckpt: str) -> dict:
    """cold: first map in a fresh process (import + JIT + fit); warm: a second map in that process;
    disk cache: a fresh process asking for a map computed before."""
    import json

    with tempfile.TemporaryDirectory() as d:
        env = {**os.environ, "VAE_EXPLORER_CACHE": d, "NUMBA_CACHE_DIR": str(Path(d) / "numba")}

        def run(*keys):
            out = subprocess.run([sys.executable, "-c", UMAP_SNIPPET, ckpt, *keys], env=env, cwd=ROOT,
                                 capture_output=True, text=True, check=True)
            return json.loads(out.stdout.strip().splitlines()[-1])

        cold, warm = run("bench-a", "bench-b")
        disk, = run("bench-a")
    assert not cold["from_cache"] and not warm["from_cache"] and disk["from_cache"]
    return {"cold": cold["seconds"], "warm": warm["seconds"], "disk cache": disk["seconds"]}


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q / 100 * (len(xs) - 1))))]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3, help="start-up measurements")
    ap.add_argument("--start-only", action="store_true", help="measure only the start-up time")
    a = ap.parse_args()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p, tempfile.TemporaryDirectory() as tmp:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        starts = [first_digit_seconds(b, Path(tmp)) for _ in range(a.runs)]
        if a.start_only:
            print(f"start -> first decoded digit (browser): median {statistics.median(starts):.2f} s  "
                  f"(runs: {', '.join(f'{s:.2f}' for s in starts)}; target <= 5 s)")
            return
        lat = browser_slider_latency(b, Path(tmp))
        b.close()
    reruns = apptest_rerun_seconds()
    um = umap_times(str(ROOT / "checkpoints" / "mnist-z16.safetensors"))
    print(f"machine: {os.cpu_count()} cores")
    print(f"start -> first decoded digit (browser): median {statistics.median(starts):.2f} s  "
          f"(runs: {', '.join(f'{s:.2f}' for s in starts)}; target <= 5 s)")
    print(f"slider rerun, server script time (AppTest): p50 {pct(reruns, 50) * 1000:.0f} ms, p95 {pct(reruns, 95) * 1000:.0f} ms")
    print(f"slider key press -> new image (browser, stock slider): p50 {pct(lat, 50) * 1000:.0f} ms, "
          f"p95 {pct(lat, 95) * 1000:.0f} ms")
    for k, v in um.items():
        print(f"UMAP map of 5000 codes, {k:<10}: {v:.3f} s")
    print(f"UMAP warm vs cold: {um['cold'] / um['warm']:.1f}x faster; disk cache vs cold: "
          f"{um['cold'] / max(um['disk cache'], 1e-6):.0f}x faster")


if __name__ == "__main__":
    main()
