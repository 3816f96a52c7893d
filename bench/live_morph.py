"""Benchmark live morphing in headless chromium: in-browser decoding vs the stock st.slider path.

    .venv/bin/python bench/live_morph.py [--ckpt mnist-z16] [--seconds 2] [--repeats 3] [--trials 8] [--json out.json]

Live widget (bench/live_demo_app.py): decode+paint time per frame (performance.now() around both,
inside the component), frames painted per second during a ~2 s programmatic drag, and the delay
from each slider `input` event to the next painted frame. Stock path (?mode=stock: st.slider +
st.image decoded on the server): time from releasing the thumb to the new image's src (a
MutationObserver) and to the image being loaded. Targets: >= 30 frames/s while dragging, p95
decode+paint <= 16 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]

# helpers


def start_demo(log_path: Path) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "bench/live_demo_app.py", "--server.headless", "true",
         "--server.port", str(port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false",
         "--server.fileWatcherType", "none"],
        cwd=ROOT, env={**os.environ, "PYTHONUNBUFFERED": "1"}, stdout=open(log_path, "wb"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(log_path.read_text())
        try:
            if urllib.request.urlopen(url + "/_stcore/health", timeout=2).read().strip() == b"ok":
                return proc, url
        except OSError:
            time.sleep(0.3)
    proc.kill()
    raise RuntimeError("streamlit did not start:\n" + log_path.read_text())


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p * len(xs)))] if xs else float("nan")


# the two measurements


async def bench_live(page, url: str, ckpt: str, seconds: float, repeats: int, report_ms: int = 250) -> dict:
    """Drag one live slider back and forth for ``seconds``, ``repeats`` times; frame rate, decode+paint
    times (over all drags), delay from an input event to the frame that shows it.

    The pointer moves every ~8 ms without waiting for each move to be handled (like a 125 Hz mouse), so
    the page, not the test harness, sets the frame rate.
    """
    received = []
    page.on("websocket", lambda ws: ws.on("framereceived", lambda f: received.append(len(f))))
    t0 = time.perf_counter()
    await page.goto(f"{url}/?ckpt={ckpt}&report_ms={report_ms}")
    await page.wait_for_function("() => window.__vaeLive?.live?.frames > 0", timeout=120_000)
    first_paint_s = time.perf_counter() - t0
    initial_bytes = sum(received)
    await page.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=120_000)
    slider = page.get_by_label("z3 · latent 3", exact=True)
    await slider.scroll_into_view_if_needed()
    box = await slider.bounding_box()
    # record every input event and every painted frame (page clock), animation frames and long tasks
    await slider.evaluate("""s => {
        const i = window.__vaeLive.live;
        window.__bench = {inputs: [], paints: [], ticks: 0, on: true, long: []};
        new PerformanceObserver((l) => l.getEntries().forEach((e) => window.__bench.long.push(e.duration)))
            .observe({type: 'longtask'});
        s.addEventListener('input', () => window.__bench.inputs.push(performance.now()));
        new MutationObserver(() => window.__bench.paints.push(performance.now()))
            .observe(i.canvas, {attributes: true, attributeFilter: ['data-frames']});
        const tick = () => { if (window.__bench.on) { window.__bench.ticks++; requestAnimationFrame(tick); } };
        requestAnimationFrame(tick);
        i.resetStats();
    }""")
    y = box["y"] + box["height"] / 2
    left, width = box["x"] + 8, box["width"] - 16
    drags, delays, moves_sent, drag_bytes = [], [], 0, 0
    for _ in range(repeats):
        await page.mouse.move(left + width / 2, y)
        await page.mouse.down()
        received.clear()
        start = await page.evaluate("() => { const b = window.__bench; b.ticks = 0; b.paints = []; b.inputs = [];"
                                    " b.long = []; b.reports = window.__vaeLive.live.reports; return performance.now(); }")
        t_end = time.perf_counter() + seconds
        k, moves = 0, []
        while time.perf_counter() < t_end:
            k += 1
            moves.append(asyncio.create_task(page.mouse.move(left + width * (0.5 + 0.48 * math.sin(k / 12)), y)))
            await asyncio.sleep(0.008)
        await asyncio.gather(*moves)
        got = await page.evaluate("() => { const b = window.__bench; return {end: performance.now(), paints: b.paints,"
                                  " inputs: b.inputs, ticks: b.ticks, long: b.long,"
                                  " reports: window.__vaeLive.live.reports - b.reports}; }")
        await page.mouse.up()
        await page.wait_for_timeout(1000)
        await page.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')",
                                     timeout=120_000)
        drag_bytes += sum(received)
        moves_sent += k
        dur = (got["end"] - start) / 1000
        j = 0
        for p in got["paints"]:  # delay from the first input not yet shown to the frame that shows it
            first = None
            while j < len(got["inputs"]) and got["inputs"][j] <= p:
                first = got["inputs"][j] if first is None else first
                j += 1
            if first is not None:
                delays.append(p - first)
        drags.append({"s": dur, "fps": len(got["paints"]) / dur, "raf_per_s": got["ticks"] / dur,
                      "inputs": len(got["inputs"]), "frames": len(got["paints"]), "reports": got["reports"],
                      "long_tasks": len(got["long"]), "long_task_ms": sum(got["long"])})
    st = await page.evaluate("() => window.__vaeLive.live.stats()")
    fps = [d["fps"] for d in drags]
    return {"first_paint_s": first_paint_s, "initial_ws_bytes": initial_bytes, "report_ms": report_ms,
            "drags": drags, "fps_median": statistics.median(fps), "fps_min": min(fps), "fps_max": max(fps),
            "raf_per_s_median": statistics.median(d["raf_per_s"] for d in drags),
            "pointer_moves": moves_sent, "input_events": sum(d["inputs"] for d in drags),
            "frames": sum(d["frames"] for d in drags), "decode_paint_ms_p50": st["p50"],
            "decode_paint_ms_p95": st["p95"], "decode_paint_ms_max": st["max"], "timed_frames": st["n"],
            "input_to_paint_ms_p50": pct(delays, 0.5), "input_to_paint_ms_p95": pct(delays, 0.95),
            "reports_during_drags": sum(d["reports"] for d in drags), "ws_bytes_during_drags": drag_bytes,
            "long_tasks": sum(d["long_tasks"] for d in drags), "long_task_ms": sum(d["long_task_ms"] for d in drags),
            "dtype": await page.evaluate("() => window.__vaeLive.live.decoder.dtype")}


async def bench_stock(page, url: str, ckpt: str, trials: int) -> dict:
    """Release a stock st.slider ``trials`` times; delay until the server-decoded image is on screen."""
    await page.goto(f"{url}/?ckpt={ckpt}&mode=stock")
    await page.wait_for_selector("[data-testid='stImage'] img", timeout=120_000)
    await page.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=120_000)
    await page.evaluate("""() => {
        const b = window.__stock = {src: null, changed: [], loaded: [], release: [], moves: 0};
        const cur = () => document.querySelector("[data-testid='stImage'] img");
        b.src = cur().src;
        new MutationObserver(() => {
            const img = cur();
            if (!img || img.src === b.src) return;
            b.src = img.src;
            const t = performance.now();
            b.changed.push(t);
            const done = () => b.loaded.push(performance.now());
            if (img.complete && img.naturalWidth) done(); else img.addEventListener('load', done, {once: true});
        }).observe(document.body, {subtree: true, childList: true, attributes: true, attributeFilter: ['src']});
        window.addEventListener('pointerup', () => b.release.push(performance.now()), true);
    }""")
    thumb = page.locator("[data-testid='stSlider']").nth(3).locator("input[type=range]").locator("xpath=../..")
    changes_during_drag = 0
    lat_src, lat_load = [], []
    for t in range(trials):
        await thumb.scroll_into_view_if_needed()
        box = await thumb.bounding_box()
        track = await thumb.locator("xpath=..").bounding_box()
        x0, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
        target = track["x"] + track["width"] * (0.2 + 0.6 * ((t * 0.37) % 1))
        await page.mouse.move(x0, y)
        await page.mouse.down()
        n_before = await page.evaluate("() => window.__stock.changed.length")
        for k in range(1, 21):
            await page.mouse.move(x0 + (target - x0) * k / 20, y)
            await page.wait_for_timeout(15)
        changes_during_drag += await page.evaluate("() => window.__stock.changed.length") - n_before
        await page.mouse.up()
        await page.wait_for_function("n => window.__stock.loaded.length > n", arg=n_before, timeout=120_000)
        b = await page.evaluate("() => window.__stock")
        lat_src.append(b["changed"][-1] - b["release"][-1])
        lat_load.append(b["loaded"][-1] - b["release"][-1])
        await page.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=120_000)
    return {"trials": trials, "release_to_src_ms_p50": statistics.median(lat_src),
            "release_to_src_ms_max": max(lat_src), "release_to_image_ms_p50": statistics.median(lat_load),
            "release_to_image_ms_max": max(lat_load), "images_changed_during_drags": changes_during_drag}


async def run(args) -> tuple[dict, dict, dict]:
    from playwright.async_api import async_playwright

    log = Path(os.environ.get("TMPDIR", "/tmp")) / "live_morph_bench.log"
    proc, url = start_demo(log)
    try:
        async with async_playwright() as p:
            browser = await p.chromium.launch(executable_path=os.environ.get("CHROMIUM", "/usr/bin/chromium"),
                                              headless=True, args=CHROMIUM_ARGS)
            ctx = await browser.new_context(viewport={"width": 1400, "height": 1000})
            live = await bench_live(await ctx.new_page(), url, args.ckpt, args.seconds, args.repeats)
            quiet = await bench_live(await ctx.new_page(), url, args.ckpt, args.seconds, args.repeats, report_ms=10**6)
            stock = await bench_stock(await ctx.new_page(), url, args.ckpt, args.trials)
            await browser.close()
    finally:
        proc.terminate()
        proc.wait(10)
    return live, quiet, stock


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ckpt", default="mnist-z16")
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--repeats", type=int, default=3, help="drags per live measurement")
    ap.add_argument("--trials", type=int, default=8, help="releases of the stock slider")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    live, quiet, stock = asyncio.run(run(args))
    n = args.repeats
    print(f"checkpoint {args.ckpt}, weights as {live['dtype']}, {os.cpu_count()} CPUs, load average "
          f"{os.getloadavg()[0]:.1f}")
    print(f"live: first frame {live['first_paint_s']:.1f} s after navigation, "
          f"{live['initial_ws_bytes'] / 1e6:.2f} MB over the websocket on load (the weights, once per session)")
    print(f"live: {n} drags of {args.seconds:.0f} s: {live['pointer_moves']} pointer moves -> {live['input_events']} "
          f"input events -> {live['frames']} frames painted; {live['fps_median']:.1f} frames/s median "
          f"(range {live['fps_min']:.1f}-{live['fps_max']:.1f}; animation frames available "
          f"{live['raf_per_s_median']:.1f}/s)")
    print(f"live: decode+paint over {live['timed_frames']} frames p50 {live['decode_paint_ms_p50']:.2f} ms, "
          f"p95 {live['decode_paint_ms_p95']:.2f} ms, max {live['decode_paint_ms_max']:.2f} ms; "
          f"input->paint p50 {live['input_to_paint_ms_p50']:.1f} ms, p95 {live['input_to_paint_ms_p95']:.1f} ms")
    print(f"live: {live['reports_during_drags']} throttled reports to Python during the drags (every "
          f"{live['report_ms']} ms), {live['ws_bytes_during_drags'] / 1e3:.1f} kB received over the websocket "
          f"(weights not resent); {live['long_tasks']} long tasks (> 50 ms) on the main thread, "
          f"{live['long_task_ms']:.0f} ms in all")
    print(f"live, reporting only on release: {quiet['fps_median']:.1f} frames/s median (range "
          f"{quiet['fps_min']:.1f}-{quiet['fps_max']:.1f}; animation frames {quiet['raf_per_s_median']:.1f}/s), "
          f"decode+paint p95 {quiet['decode_paint_ms_p95']:.2f} ms, input->paint p95 "
          f"{quiet['input_to_paint_ms_p95']:.1f} ms, {quiet['long_tasks']} long tasks")
    print(f"stock st.slider: new images during {stock['trials']} drags: {stock['images_changed_during_drags']}; "
          f"release -> new src p50 {stock['release_to_src_ms_p50']:.0f} ms (max {stock['release_to_src_ms_max']:.0f}),"
          f" -> image loaded p50 {stock['release_to_image_ms_p50']:.0f} ms (max {stock['release_to_image_ms_max']:.0f})")
    ratio = stock["release_to_image_ms_p50"] / live["input_to_paint_ms_p50"]
    print(f"ratio: a new image takes {ratio:.0f}x longer on the stock path (after release) than in the live widget "
          f"(after any movement, p50 vs p50); during a drag the stock path shows no new image, the live one "
          f"{live['fps_median']:.0f} per second")
    ok_fps, ok_p95 = live["fps_median"] >= 30, live["decode_paint_ms_p95"] <= 16
    print(f"targets: >= 30 frames/s while dragging: {'met' if ok_fps else 'MISSED'}; "
          f"p95 decode+paint <= 16 ms: {'met' if ok_p95 else 'MISSED'}")
    if args.json:
        args.json.write_text(json.dumps({"live": live, "live_release_only": quiet, "stock": stock,
                                         "ratio_image_delay": ratio}, indent=2))


if __name__ == "__main__":
    main()
