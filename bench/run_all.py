"""Run every benchmark in bench/ and rewrite the figures table in bench/README.md.

    .venv/bin/python bench/run_all.py [--only train_speed,app_start] [--dry-run]

Each benchmark prints its own figures; this script records what each printed (the lines that carry
numbers), the machine it ran on, and the date, between the FIGURES markers of bench/README.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BENCHES = ["train_speed", "app_start", "live_morph", "train_responsiveness", "load"]
START, END = "<!-- FIGURES:START -->", "<!-- FIGURES:END -->"


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} cores ({cpu}), {mem:.0f} GiB, {platform.system()} {platform.release()}, Python {platform.python_version()}"


def run(name: str, timeout: int) -> tuple[str, float, int]:
    t0 = time.perf_counter()
    try:
        p = subprocess.run([sys.executable, str(HERE / f"{name}.py")], cwd=ROOT, capture_output=True, text=True,
                           timeout=timeout)
        out, rc = p.stdout, p.returncode
        if rc:
            out += "\n" + p.stderr[-2000:]
    except subprocess.TimeoutExpired as e:
        out, rc = (e.stdout or b"").decode() if isinstance(e.stdout, bytes) else (e.stdout or ""), 124
    return out, time.perf_counter() - t0, rc


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", default=None, help="comma-separated benchmark names")
    ap.add_argument("--timeout", type=int, default=1800)
    ap.add_argument("--dry-run", action="store_true", help="print, do not rewrite bench/README.md")
    a = ap.parse_args()
    names = a.only.split(",") if a.only else [n for n in BENCHES if (HERE / f"{n}.py").is_file()]
    sections = [f"Machine: {machine()}. Date: {time.strftime('%Y-%m-%d')}.", ""]
    failed = 0
    for name in names:
        print(f"== {name}", flush=True)
        out, secs, rc = run(name, a.timeout)
        print(out, flush=True)
        lines = [ln.rstrip() for ln in out.splitlines() if ln.strip()]
        status = "" if rc == 0 else f" — **failed (exit {rc})**"
        failed += rc != 0
        sections += [f"### `{name}` ({secs:.0f} s){status}", "", "```", *lines[-40:], "```", ""]
    if not a.dry_run:
        readme = HERE / "README.md"
        text = readme.read_text()
        head, rest = text.split(START, 1)
        _, tail = rest.split(END, 1)
        readme.write_text(head + START + "\n" + "\n".join(sections) + "\n" + END + tail)
        print(f"rewrote {readme}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
