"""Many people at once: N headless-browser sessions on one server while one model trains in it.

One chromium, one browser context (a separate person: own cookies, own websocket, own Streamlit
session) per session, all driven concurrently with playwright's async API against one
``streamlit run app.py`` on loopback, started on a temp copy of checkpoints/ (so the repository's
folder is never written). Before the measured window, session 0 starts ONE training job through
the sidebar form (the form's default model, 1000 epochs so that it outlasts the window; it is
cancelled with the Cancel button at the end). The other pages open one every ``--ramp`` s. Then, for ``--seconds``, every session repeats, with
a think time of ``--think`` s (uniform 0.5x..1.5x) between actions:

- move a latent slider with the keyboard. Even-numbered sessions use ``?live=0`` (stock st.slider:
  key press -> server rerun -> new decoded <img> loaded); odd ones the live sliders (decoded in the
  page: key press -> new frame painted, and key press -> the server has the new z, seen as the
  URL's z changing);
- click a dot of the latent map (a random dot that is the nearest one to its own position) ->
  "Test image #i" and its image shown;
- change the interpolation's Steps slider -> the new strip <img> loaded.

Times run from the browser's own keydown/pointerdown event (performance.now(), polled every
20 ms) to the update. Errors (must be 0): uncaught page errors, exceptions shown in the page
(``[data-testid=stException]``), actions that timed out (``--timeout``), tracebacks in the
server's log. The server process's peak RSS (VmRSS sampled every 0.5 s, and VmHWM) and CPU (from
/proc/<pid>/stat), the training process's CPU, and the machine's busy CPU are read from /proc.
The same scenario runs first with 1 session (on a fresh server), then with N.

    .venv/bin/python bench/load.py [--sessions 20] [--seconds 60] [--think 1.0] [--no-baseline] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS, start_app, stop_app  # noqa: E402

SHARED_MNIST = ROOT.parent / "shared" / "data" / "mnist"
SIDEBAR = "[data-testid='stSidebar']"
MAIN = "[data-testid='stMain']"
POLL_MS = 20
JOB_NAME = "load-bench"
ACTIONS = {  # key -> row label in the table
    "stock": "stock slider: key -> new digit <img>",
    "live_paint": "live slider: key -> frame painted",
    "live_server": "live slider: key -> server has z",
    "map": "map click -> test image shown",
    "interp": "interp. steps -> new strip <img>",
    "open": "open page -> first digit",
}

# Helpers installed in every page before its scripts run.
INIT_JS = """
(() => {
  const B = window.__load = { t0: null, armed: false };
  const mark = () => { if (B.armed && B.t0 === null) B.t0 = performance.now(); };
  document.addEventListener("keydown", mark, true);
  document.addEventListener("pointerdown", mark, true);
  B.arm = () => { B.t0 = null; B.armed = true; };
  B.since = () => (B.t0 === null ? null : Math.max(performance.now() - B.t0, 0.01));
  B.panel = () => {  // the selected tab's panel (the others, once rendered, stay in the DOM, hidden)
    const tab = document.querySelector("[data-testid='stMain'] [role='tab'][aria-selected='true']");
    const p = tab && document.getElementById(tab.getAttribute("aria-controls"));
    if (p) return p;
    for (const q of document.querySelectorAll("[data-testid='stMain'] [data-testid='stTabPanel']"))
      if (q.offsetParent !== null) return q;
    return null;
  };
  B.img = () => { const p = B.panel(); return p && p.querySelector("[data-testid='stImage'] img"); };
  B.loaded = (i) => !!i && i.complete && i.naturalWidth > 0;
  B.shadow = (sel) => {
    for (const h of document.querySelectorAll("[data-testid='stBidiComponentIsolated']")) {
      const r = h.shadowRoot && h.shadowRoot.querySelector(sel);
      if (r) return r;
    }
    return null;
  };
  B.map = () => B.shadow(".vm-root");
  B.live = () => B.shadow(".live-latent");
  B.liveSynced = () => {  // the live sliders show the code the server has (the URL's z, 3 significant digits)
    const r = B.live();
    if (!r || !(r.dataset.frames > 0) || r.dataset.ready !== "1") return false;
    const url = new URLSearchParams(location.search).get("z");
    if (!url) return true;
    const want = url.split(",").map(Number), got = JSON.parse(r.dataset.z || "[]");
    return got.length === want.length && got.every((v, d) => Number(v.toPrecision(3)) === want[d]);
  };
  B.mapReady = () => { const r = B.map(); return !!r && r.dataset.ready === "1" && r.dataset.atlas === "ready"; };
  B.pickDot = (prev) => {  // a random on-screen dot that is the nearest one to its own position
    const r = B.map(); if (!r) return null;
    const v = r.mapView;
    for (let t = 0; t < 500; t++) {
      const i = Math.floor(Math.random() * v.n);
      if (i === prev) continue;
      const [sx, sy] = v.toScreen(v.X[i], v.Y[i]);
      if (sx < 20 || sy < 20 || sx > v.W - 20 || sy > v.H - 20 || v.nearest(sx, sy) !== i) continue;
      const p = v.screenPosition(i);
      if (p && p.y > 5 && p.y < innerHeight - 5) return { index: i, x: p.x, y: p.y };
    }
    return null;
  };
})();
"""


# helpers


def pct(xs: list[float], q: float) -> float | None:
    if not xs:
        return None
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


def proc_status(pid: int, key: str) -> int | None:
    """A kB field of /proc/<pid>/status (VmRSS, VmHWM) in bytes."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return None


def cpu_seconds(pid: int) -> float | None:
    """utime + stime of a process, in seconds."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def machine_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs since boot."""
    vals = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = vals[3] + (vals[4] if len(vals) > 4 else 0)
    return sum(vals) - idle, sum(vals)


def parents() -> dict[int, int]:
    """pid -> parent pid of every process."""
    out = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                out[int(d.name)] = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                pass
    return out


def children(pid: int) -> list[int]:
    return [c for c, p in parents().items() if p == pid]


def tree(pid: int) -> list[int]:
    """``pid`` and all its descendants."""
    kids: dict[int, list[int]] = {}
    for c, p in parents().items():
        kids.setdefault(p, []).append(c)
    out, todo = [], [pid]
    while todo:
        q = todo.pop()
        out.append(q)
        todo += kids.get(q, [])
    return out


def tree_cpu(pid: int) -> float:
    """CPU seconds used so far by ``pid`` and its live descendants."""
    return sum(cpu_seconds(q) or 0.0 for q in tree(pid))


def machine_load(seconds: float = 5.0) -> float:
    """Cores kept busy by everything except this process's tree, over ``seconds``."""
    b0, t0, own0 = *machine_ticks(), tree_cpu(os.getpid())
    time.sleep(seconds)
    b1, t1, own1 = *machine_ticks(), tree_cpu(os.getpid())
    return max(0.0, (b1 - b0) / max(1, t1 - t0) * os.cpu_count() - (own1 - own0) / seconds)


def trace_path(trace: Path | None, n: int) -> Path | None:
    """--trace t.jsonl -> t-<N>.jsonl, one file per scenario."""
    return trace and trace.with_name(f"{trace.stem}-{n}{trace.suffix}")


def app_script(tmp: Path, script: str, trace: Path | None = None) -> tuple[str, str]:
    """The script to run, and a note. If it does not place the training panel yet, a wrapper that runs it
    and then adds the panel (the same call app.py will make) is written into ``tmp``. With ``trace``, a
    wrapper that first installs bench/trace_runs.py (a line per script run, into that file)."""
    if trace is not None:
        wrapper = tmp / "app_traced.py"
        # (a spawned training process imports this file as __mp_main__: it must not run the app there)
        wrapper.write_text(f"import runpy, sys\nsys.path.insert(0, {str(ROOT)!r})\n"
                           "if __name__ == '__main__':\n"
                           "    from bench import trace_runs\n"
                           "    if not getattr(trace_runs, 'installed', False):\n"
                           "        trace_runs.install(); trace_runs.installed = True\n"
                           f"    runpy.run_path({str(ROOT / script)!r}, run_name='__main__')\n")
        return str(wrapper), f" (traced into {trace})"
    if "render_training_sidebar" in (ROOT / script).read_text():
        return script, ""
    wrapper = tmp / "app_with_training.py"
    wrapper.write_text(f"import runpy, sys\nsys.path.insert(0, {str(ROOT)!r})\n"
                       f"runpy.run_path({str(ROOT / script)!r}, run_name='__main__')\n"
                       "from explorer.ui.context import checkpoint_dir\n"
                       "from explorer.ui.train_panel import render_training_sidebar\n"
                       "render_training_sidebar(checkpoint_dir())\n")
    return str(wrapper), f" ({script} does not place the training panel yet: a wrapper adds it)"


@dataclass
class Result:
    sessions: int
    seconds: float = 0.0  # from the window's start until the last action started in it ended
    window_s: float = 0.0  # the window itself (CPU figures are averaged over it)
    samples: dict[str, list[float]] = field(default_factory=lambda: {k: [] for k in ACTIONS})
    page_errors: list[str] = field(default_factory=list)
    exceptions: list[str] = field(default_factory=list)
    timeouts: list[str] = field(default_factory=list)
    http_errors: list[str] = field(default_factory=list)  # e.g. a 404 for an image replaced before it was fetched
    broken: list[str] = field(default_factory=list)  # images still broken at the end: seen by people
    driver_errors: list[str] = field(default_factory=list)
    server_tracebacks: int = 0
    server_notes: list[str] = field(default_factory=list)  # warnings worth a look (not errors)
    notes: list[str] = field(default_factory=list)  # the driver's: a click that landed on another dot
    server_rss_peak: int = 0
    server_hwm: int | None = None
    server_cpu: float | None = None  # cores, averaged over the window
    trainer_cpu: float | None = None
    trainer_rss_peak: int = 0
    browser_cpu: float | None = None  # chromium + playwright + this script, cores
    other_cpu: float | None = None  # everything else on the machine, cores
    machine_busy: float | None = None  # fraction of all cores
    job: dict = field(default_factory=dict)

    @property
    def errors(self) -> int:
        return (len(self.page_errors) + len(self.exceptions) + len(self.timeouts) + len(self.broken)
                + self.server_tracebacks)


# one person


class Session:
    def __init__(self, index: int, browser, url: str, res: Result, timeout_ms: int, think: float) -> None:
        self.index, self.browser, self.res, self.timeout, self.think = index, browser, res, timeout_ms, think
        self.live = index % 2 == 1
        self.url = url + f"/?ckpt=mnist-z16&bench={index}" + ("" if self.live else "&live=0")
        self.rng = random.Random(index)
        self.step = 0
        self.counts: dict[str, int] = {}
        self.last_dot = -1
        self.debug_dir: Path | None = None

    def count(self, kind: str) -> int:
        """How many times this session did ``kind`` before."""
        self.counts[kind] = self.counts.get(kind, 0) + 1
        return self.counts[kind] - 1

    async def open(self) -> None:
        self.ctx = await self.browser.new_context(viewport={"width": 1400, "height": 1000})
        await self.ctx.add_init_script(INIT_JS)
        self.page = await self.ctx.new_page()
        self.page.on("pageerror", lambda e: self.res.page_errors.append(f"session {self.index}: {e}"))
        self.page.on("response", self.on_response)
        t0 = time.perf_counter()
        await self.page.goto(self.url, timeout=self.timeout)
        await self.first_digit()
        self.res.samples["open"].append(time.perf_counter() - t0)

    def on_response(self, r) -> None:
        if r.status >= 400:  # e.g. a media file (an <img>) removed before the page fetched it: a broken image
            self.res.http_errors.append(f"session {self.index}: HTTP {r.status} {r.url.split('//', 1)[-1][:120]}")

    async def first_digit(self) -> None:
        # live: also wait until the sliders show the server's code (after a map click they take it when their
        # tab is shown again; a key press before that would be overwritten by it)
        ready = "() => __load.liveSynced()" if self.live else "() => __load.loaded(__load.img())"
        await self.wait(ready)

    async def wait(self, js: str, arg=None, timeout_ms: float | None = None):
        handle = await self.page.wait_for_function(js, arg=arg, polling=POLL_MS, timeout=timeout_ms or self.timeout)
        return await handle.json_value()

    async def tab(self, name: str) -> None:
        tab = self.page.get_by_role("tab", name=name)
        if await tab.get_attribute("aria-selected") != "true":
            await tab.click(timeout=self.timeout)
        if name == "Latent sliders":
            await self.first_digit()
        elif name == "Latent map":
            await self.wait("() => __load.mapReady()")
        else:
            await self.wait("() => __load.loaded(__load.img())")
        # as a person does: act once the tab has finished drawing (Streamlit's "running" indicator is gone)
        await self.wait("() => !document.querySelector(\"[data-testid='stStatusWidget']\")")

    async def press(self, locator, key: str) -> None:
        await locator.focus(timeout=self.timeout)
        await self.page.evaluate("() => __load.arm()")
        await self.page.keyboard.press(key)

    # the actions

    async def slider(self) -> None:
        await self.tab("Latent sliders")
        k = self.count("slider")
        key = "ArrowRight" if k % 2 == 0 else "ArrowLeft"  # a small back-and-forth walk on dims 0, 1, 2
        if self.live:
            dim = self.page.locator(".live-latent input[type=range]").nth(k // 2 % 3)
            frames = await self.page.evaluate("() => __load.live().dataset.frames")
            search = await self.page.evaluate("() => location.search")
            await self.press(dim, key)
            self.res.samples["live_paint"].append(await self.wait(
                "f => __load.live()?.dataset.frames !== f ? __load.since() : null", frames) / 1e3)
            self.res.samples["live_server"].append(await self.wait(
                "s => location.search !== s ? __load.since() : null", search) / 1e3)
        else:
            dim = self.page.locator(MAIN).get_by_role("slider").nth(k // 2 % 3)
            src = await self.page.evaluate("() => __load.img().src")
            await self.press(dim, key)
            self.res.samples["stock"].append(await self.wait(
                "b => { const i = __load.img(); return i && i.src !== b && __load.loaded(i) ? __load.since() : null; }",
                src) / 1e3)

    async def map_click(self) -> None:
        """Click a dot; then wait for the panel to show the dot *the map took* (its data-selected). On a
        starved page the map can move between picking a dot and the click landing (it took another dot,
        or none: a miss, tried again up to 3 times); the app is judged on what the person clicked."""
        from playwright.async_api import TimeoutError as PWTimeout

        await self.tab("Latent map")
        for _ in range(3):
            dot = await self.page.evaluate("p => __load.pickDot(p)", self.last_dot)
            if dot is None:
                raise RuntimeError("no clickable dot on the map")
            before = await self.page.evaluate("() => __load.map().dataset.lastNonce || ''")
            await self.page.evaluate("() => __load.arm()")
            await self.page.mouse.click(dot["x"], dot["y"])
            try:
                took = await self.wait("b => { const m = __load.map(); return m && (m.dataset.lastNonce || '') !== b"
                                       " ? Number(m.dataset.selected) : null; }", before, timeout_ms=30_000)
                break
            except PWTimeout:
                self.res.notes.append(f"session {self.index}: a click on dot #{dot['index']} registered nothing")
        else:
            took = dot["index"]  # three misses: wait for it anyway (a map that takes no click times out here)
        if took != dot["index"]:
            self.res.notes.append(f"session {self.index}: clicked dot #{dot['index']}, the map took #{took}")
        self.last_dot = took
        self.res.samples["map"].append(await self.wait(
            "i => { const p = __load.panel(); return p && new RegExp('Test image #' + i + '\\\\b').test(p.innerText)"
            " && __load.loaded(__load.img()) ? __load.since() : null; }", took) / 1e3)

    async def interpolation(self) -> None:
        await self.tab("Interpolation")
        steps = self.page.locator(MAIN).get_by_role("slider", name="Steps")
        src = await self.page.evaluate("() => __load.img().src")
        await self.press(steps, "ArrowRight" if self.count("interp") % 2 == 0 else "ArrowLeft")
        self.res.samples["interp"].append(await self.wait(
            "b => { const i = __load.img(); return i && i.src !== b && __load.loaded(i) ? __load.since() : null; }",
            src) / 1e3)

    async def check_page(self) -> None:
        shown = self.page.locator("[data-testid='stException']")
        if await shown.count():
            text = (await shown.first.inner_text())[:300]
            self.res.exceptions.append(f"session {self.index}: {text}")

    async def broken_images(self) -> set[str]:
        """Images on the page that failed to load (a media file removed before the page fetched it)."""
        return set(await self.page.evaluate("""() => [...document.querySelectorAll("img")]
          .filter(i => i.complete && i.naturalWidth === 0 && i.src.includes("/media/"))
          .map(i => `${i.closest("[data-testid='stSidebar']") ? "sidebar" : "main"}: ${i.src.split("/media/")[1]}`)"""))

    async def final_check(self) -> None:
        """After the window: an image still broken 5 s after it was seen broken is an error a person sees."""
        try:
            first = await self.broken_images()
            await asyncio.sleep(5)
            for b in sorted(first & await self.broken_images()):
                self.res.broken.append(f"session {self.index}: {b}")
        except Exception as e:  # noqa: BLE001
            self.res.driver_errors.append(f"session {self.index}: final check: {e}"[:300])

    async def run(self, t_end: float) -> None:
        from playwright.async_api import TimeoutError as PWTimeout

        actions = [("slider", self.slider), ("map", self.map_click), ("slider", self.slider),
                   ("interpolation", self.interpolation)]
        while time.monotonic() < t_end:
            name, act = actions[self.step % len(actions)]
            started = time.time()  # wall clock: to find the action in a --trace
            try:
                await act()
                await self.check_page()
            except PWTimeout as e:
                where = str(e).splitlines()[0][:160]
                self.res.timeouts.append(f"session {self.index} ({'live' if self.live else 'stock'}): {name} "
                                         f"(step {self.step}, started at {started:.1f}): {where} | {await self.state()}")
                await self.screenshot(f"timeout-{self.index}-{self.step}.png")
                await self.recover()
            except Exception as e:  # noqa: BLE001 - a broken driver must show, not stop the run
                self.res.driver_errors.append(f"session {self.index}: {name}: {type(e).__name__}: {e}"[:300])
                await self.recover()
            self.step += 1
            await asyncio.sleep(self.think * self.rng.uniform(0.5, 1.5))

    async def screenshot(self, name: str) -> None:
        """With --debug-dir: what the page shows now (best effort: a hung page may not even paint)."""
        if self.debug_dir:
            try:
                await self.page.screenshot(path=str(self.debug_dir / name), timeout=10_000)
            except Exception as e:  # noqa: BLE001
                print(f"  (no screenshot {name}: {str(e).splitlines()[0]})", file=sys.stderr)

    async def state(self) -> str:
        """What the page shows now, in a line (for the report of a timeout)."""
        try:
            return await self.page.evaluate("""() => {
              const tab = document.querySelector("[role='tab'][aria-selected='true']");
              const p = __load.panel(), i = __load.img(), m = __load.map(), l = __load.live();
              const broken = [...document.querySelectorAll("img")].filter(x => x.complete && x.naturalWidth === 0).length;
              return [`tab=${tab && tab.textContent}`, `img=${i ? (__load.loaded(i) ? 'loaded' : 'loading') : 'none'}`,
                      `broken=${broken}`,
                      `map=${m ? m.dataset.ready + '/' + m.dataset.atlas + '/sel=' + m.dataset.selected : 'none'}`,
                      `live=${l ? l.dataset.frames + '/ready=' + l.dataset.ready : 'none'}`,
                      `running=${!!document.querySelector("[data-testid='stStatusWidget']")}`,
                      `panel=${p ? p.innerText.replace(/\\s+/g, ' ').slice(0, 80) : 'none'}`].join(' ');
            }""")
        except Exception as e:  # noqa: BLE001
            return f"(no state: {e})"[:200]

    async def recover(self) -> None:
        try:
            await self.page.goto(self.url, timeout=self.timeout)
            await self.first_digit()
        except Exception as e:  # noqa: BLE001
            self.res.driver_errors.append(f"session {self.index}: reload failed: {e}"[:300])

    # the training job (session 0 only)

    async def start_training(self) -> None:
        sb = self.page.locator(SIDEBAR)
        await sb.get_by_text("Train a new model").click()
        await sb.get_by_role("spinbutton", name="Epochs").fill("1000")
        await sb.get_by_role("textbox", name="Name of the new model").fill(JOB_NAME)
        await sb.get_by_role("textbox", name="Your name").fill("bench")
        await sb.get_by_role("button", name="Start training").click()
        try:
            await sb.get_by_text(re.compile(r"^Started by bench")).wait_for(timeout=self.timeout)
        except Exception:
            print("the training job did not start; the sidebar says:\n" + await sb.inner_text(), file=sys.stderr)
            raise
        try:  # preferably measure once it trains (past spawning and loading the data) ...
            await sb.get_by_text(re.compile(r"epoch [1-9][0-9]*/1000")).first.wait_for(timeout=120_000)
        except Exception:  # noqa: BLE001 - ... but a starved background job may not get there: measure anyway
            print("  (the job has not finished an epoch after 120 s; measuring anyway)", flush=True)
        await sb.get_by_text("Train a new model").click()  # fold the form away

    async def cancel_training(self) -> None:
        sb = self.page.locator(SIDEBAR)
        await sb.get_by_role("button", name="Cancel training").click(timeout=self.timeout)
        await sb.get_by_text("was cancelled").wait_for(timeout=self.timeout)


# one scenario: a fresh server, a training job, N sessions


async def monitor(pid: int, res: Result, stop: asyncio.Event) -> None:
    while not stop.is_set():
        res.server_rss_peak = max(res.server_rss_peak, proc_status(pid, "VmRSS") or 0)
        for c in children(pid):
            res.trainer_rss_peak = max(res.trainer_rss_peak, proc_status(c, "VmRSS") or 0)
        try:
            await asyncio.wait_for(stop.wait(), 0.5)
        except asyncio.TimeoutError:
            pass


async def scenario(pw, n: int, a, tmp: Path) -> Result:
    res = Result(sessions=n)
    deadline = time.monotonic() + a.wait_quiet
    while (other := machine_load()) > 0.25 and time.monotonic() < deadline:
        print(f"other load on the machine: {other:.2f} cores; waiting for it to settle ...", flush=True)
    print(f"[{n} session(s)] other load on the machine before the run: {other:.2f} of {os.cpu_count()} cores"
          + ("  (busy: the figures include its effect)" if other > 0.25 else ""), flush=True)
    ckpts = tmp / f"checkpoints-{n}"
    shutil.copytree(ROOT / "checkpoints", ckpts, ignore=shutil.ignore_patterns("user", ".*"))
    env = {"VAE_EXPLORER_CHECKPOINTS": str(ckpts), "VAE_EXPLORER_ADMIN_TOKEN": ""}
    trace = trace_path(a.trace, n)
    if trace:
        env["VAE_EXPLORER_TRACE"] = str(trace)
    if SHARED_MNIST.is_dir() and "VAE_EXPLORER_DATA" not in os.environ:
        env["VAE_EXPLORER_DATA"] = str(SHARED_MNIST)
    script, note = app_script(tmp, a.script, trace)
    print(f"[{n} session(s)] starting {a.script}{note} on a copy of checkpoints/ ...", flush=True)
    server = start_app(tmp, env=env, script=script, timeout=180)
    browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
    stop = asyncio.Event()
    mon = asyncio.create_task(monitor(server.proc.pid, res, stop))
    sessions = [Session(i, browser, server.url, res, a.timeout * 1000, a.think) for i in range(n)]
    for s in sessions:
        s.debug_dir = a.debug_dir
    try:
        # warm-up, not counted: one stock and one live page do each action once (the server's caches
        # fill: the model, the test codes, the map, the live decoder payload)
        for i in range(2):
            w = Session(i, browser, server.url, Result(sessions=0), a.timeout * 1000, a.think)
            await w.open()
            for act in (w.slider, w.map_click, w.interpolation, w.slider):
                await act()
            await w.ctx.close()
        await sessions[0].open()
        t = time.perf_counter()
        if a.job:
            await sessions[0].start_training()
            print(f"[{n} session(s)] training job running after {time.perf_counter() - t:.0f} s", flush=True)
        print(f"[{n} session(s)] opening the other {n - 1} page(s), one every {a.ramp:.1f} s ...", flush=True)

        async def arrive(s: Session, delay: float) -> None:  # a class does not click "open" in one instant
            await asyncio.sleep(delay)
            await s.open()

        opened = await asyncio.gather(*(arrive(s, i * a.ramp) for i, s in enumerate(sessions[1:])),
                                      return_exceptions=True)
        for s, o in zip(sessions[1:], opened):
            if isinstance(o, Exception):
                res.timeouts.append(f"session {s.index}: open: {type(o).__name__}: {str(o).splitlines()[0][:160]}"
                                    f" | {await s.state()}")
                await s.screenshot(f"open-{n}-{s.index}.png")
        live = [s for s, o in zip(sessions, [None, *opened]) if not isinstance(o, Exception)]
        print(f"[{n} session(s)] {len(live)} page(s) up; measuring for {a.seconds} s ...", flush=True)
        pid, me = server.proc.pid, os.getpid()
        cpu0, trainer = cpu_seconds(pid), children(pid)
        tcpu0, own0 = sum(cpu_seconds(c) or 0 for c in trainer), tree_cpu(me)
        busy0, total0 = machine_ticks()
        record = ckpts / "user" / "job.json"
        epoch0 = json.loads(record.read_text()).get("epoch") if record.is_file() else None
        t0 = time.monotonic()
        window: dict = {}

        async def sample_window() -> None:  # CPU over the window itself, not over the stragglers after it
            await asyncio.sleep(a.seconds)
            window.update(secs=time.monotonic() - t0, server=cpu_seconds(pid),
                          trainer=sum(cpu_seconds(c) or 0 for c in trainer), own=tree_cpu(me), ticks=machine_ticks())

        await asyncio.gather(sample_window(), *(s.run(t0 + a.seconds) for s in live))
        res.seconds = time.monotonic() - t0  # actions started in the window and all finished by now
        res.window_s = secs = window["secs"]
        busy1, total1 = window["ticks"]
        res.server_cpu = (window["server"] - cpu0) / secs
        res.trainer_cpu = (window["trainer"] - tcpu0) / secs if trainer else None
        own = (window["own"] - own0) / secs
        res.browser_cpu = own - res.server_cpu - (res.trainer_cpu or 0)
        res.machine_busy = (busy1 - busy0) / max(1, total1 - total0)
        res.other_cpu = max(0.0, res.machine_busy * os.cpu_count() - own)
        await asyncio.gather(*(s.final_check() for s in live))
        res.job = json.loads(record.read_text()) if record.is_file() else {}
        res.job = {"epoch_at_start": epoch0, **{k: res.job.get(k) for k in ("state", "epoch", "epochs", "name")}}
        if a.job:
            try:
                await sessions[0].cancel_training()
            except Exception as e:  # noqa: BLE001 - stopping the server stops the job too
                res.timeouts.append(f"session 0: cancel training: {str(e).splitlines()[0][:160]} | "
                                    f"{await sessions[0].state()}")
    finally:
        stop.set()
        await mon
        res.server_hwm = proc_status(server.proc.pid, "VmHWM")
        await browser.close()
        stop_app(server)
        res.server_tracebacks = server.log().count("Traceback (most recent call last)")
        res.server_notes = [line.strip()[:200] for line in server.log().splitlines()
                            if "finished ScriptRunner's shutdown" in line]  # explorer.ui.runtime_fix gave up
        if res.server_tracebacks:
            print(server.log()[-3000:], file=sys.stderr)
    return res


# the report


def fmt_ms(v: float | None) -> str:
    return "—" if v is None else f"{v * 1e3:.0f}"


def actions(r: Result) -> int:
    """Actions completed in the window (a live slider move counts once)."""
    return sum(len(r.samples[k]) for k in ("stock", "live_paint", "map", "interp"))


def table(results: list[Result], a) -> str:
    cols = [f"N={r.sessions}" for r in results]
    w = 36
    lines = [f"{'':<{w}}" + "".join(f"{c:>22}" for c in cols),
             f"{'action (p50 / p95 ms, n)':<{w}}" + "".join(f"{'p50':>7}{'p95':>8}{'n':>7}" for _ in results)]
    for key, label in ACTIONS.items():
        row = f"{label:<{w}}"
        for r in results:
            xs = r.samples[key]
            row += f"{fmt_ms(pct(xs, .5)):>7}{fmt_ms(pct(xs, .95)):>8}{len(xs):>7}"
        lines.append(row)
    def line(label, f):
        return f"{label:<{w}}" + "".join(f"{f(r):>22}" for r in results)
    mib = 2**20
    lines += [
        line("actions per session per minute", lambda r: f"{actions(r) / max(1, r.sessions) / max(r.seconds, 1e-9) * 60:.1f}"),
        line("errors: page/shown/timeout/img/log", lambda r: f"{len(r.page_errors)}/{len(r.exceptions)}/{len(r.timeouts)}/"
             f"{len(r.broken)}/{r.server_tracebacks}"),
        line("HTTP errors (transient 404s)", lambda r: f"{len(r.http_errors)}"),
        line("server peak RSS, MiB (VmHWM)", lambda r: f"{r.server_rss_peak / mib:.0f} ({(r.server_hwm or 0) / mib:.0f})"),
        line("server CPU, cores (avg)", lambda r: f"{r.server_cpu:.2f}" if r.server_cpu is not None else "—"),
        line("server CPU per action, ms", lambda r: f"{r.server_cpu * r.window_s / max(1, actions(r)) * 1e3:.0f}"
             if r.server_cpu is not None else "—"),
        line("training process CPU, cores", lambda r: f"{r.trainer_cpu:.2f}" if r.trainer_cpu is not None else "—"),
        line("training process peak RSS, MiB", lambda r: f"{r.trainer_rss_peak / mib:.0f}"),
        line("browser + driver CPU, cores", lambda r: f"{r.browser_cpu:.2f}" if r.browser_cpu is not None else "—"),
        line("other load on the machine, cores", lambda r: f"{r.other_cpu:.2f}" if r.other_cpu is not None else "—"),
        line("machine CPU busy (all cores)", lambda r: f"{r.machine_busy:.0%}" if r.machine_busy is not None else "—"),
        line("job: state at end, epochs in window", lambda r: f"{r.job.get('state')}, "
             f"{r.job.get('epoch_at_start')} -> {r.job.get('epoch')}" if r.job.get("state") else "no job"),
    ]
    return "\n".join(lines)


async def amain(a) -> list[Result]:
    from playwright.async_api import async_playwright

    counts = ([1] if a.baseline and a.sessions != 1 else []) + [a.sessions]
    tmp = Path(tempfile.mkdtemp(prefix="bench-load-"))
    results = []
    try:
        async with async_playwright() as pw:
            for n in counts:
                results.append(await scenario(pw, n, a, tmp))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return results


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sessions", type=int, default=20, help="concurrent browser sessions")
    p.add_argument("--seconds", type=float, default=60.0, help="length of the measured window")
    p.add_argument("--think", type=float, default=1.0, help="mean pause between a session's actions, s")
    p.add_argument("--timeout", type=float, default=180.0, help="seconds before an action counts as timed out")
    p.add_argument("--ramp", type=float, default=1.0, help="seconds between two pages opening")
    p.add_argument("--no-baseline", dest="baseline", action="store_false", help="skip the 1-session run")
    p.add_argument("--no-job", dest="job", action="store_false", help="no training job (for comparison)")
    p.add_argument("--wait-quiet", type=float, default=0.0,
                   help="wait up to this many seconds for other load on the machine to drop below 0.25 cores")
    p.add_argument("--script", default="app.py", help="the app to run (relative to the repo root)")
    p.add_argument("--json", type=Path, default=None, help="also write every sample here")
    p.add_argument("--trace", type=Path, default=None,
                   help="log every script run of the server (bench/trace_runs.py) to <trace>-<N>.jsonl")
    p.add_argument("--debug-dir", type=Path, default=None, help="save a screenshot of each timed-out page here")
    a = p.parse_args()
    results = asyncio.run(amain(a))
    print(f"\nload: {os.cpu_count()} cores; {a.seconds:.0f} s per run; think time {a.think:.1f} s mean; even sessions "
          f"?live=0 (stock sliders), odd ones live sliders; "
          + ("one training job running throughout (form defaults, 1000 epochs, cancelled at the end)" if a.job
             else "no training job") + f"; times from the browser's key/pointer event, polled every {POLL_MS} ms")
    print(table(results, a))
    for r in results:
        for kind in ("page_errors", "exceptions", "timeouts", "broken", "http_errors", "driver_errors",
                     "server_notes", "notes"):
            for e in getattr(r, kind)[:5]:
                print(f"  N={r.sessions} {kind}: {e}")
    if a.trace:
        from bench.trace_runs import summary

        for r in results:
            path = trace_path(a.trace, r.sessions)
            print(f"  N={r.sessions} trace ({path}): " + ", ".join(f"{k} {v}" for k, v in summary(path).items()))
    if a.json:
        a.json.write_text(json.dumps([r.__dict__ for r in results], indent=1, default=str))
    return 1 if any(r.errors or r.driver_errors for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
