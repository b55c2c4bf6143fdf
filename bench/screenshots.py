#!/usr/bin/env python3
"""The README's screenshots of the lab page: the live sim graph after it has run a while
(events, files and zones listed), in headless chromium (src/lab_page/test/browser/driver.js).

docs/img/lab_page_phone.png: a 390x844 CSS px viewport (a phone in portrait) at device scale
factor 2; docs/img/lab_page_laptop.png: 1366x768 at scale 1; both of the whole page (scrolled
length), so every panel shows. Not a benchmark (it measures nothing and writes no JSON; under
`make bench` the pictures go to bench/results): run it after a change to the page, then look.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, Procs, bench_domain, wait_for
from _load import SimGraph

BROWSER_DIR = ROOT / "src" / "lab_page" / "test" / "browser"
SHOTS = {  # name -> (viewport, device scale factor)
    "lab_page_phone.png": ("390x844", 2),
    "lab_page_laptop.png": ("1366x768", 1),
}
MAX_BYTES = 400_000  # what the README can carry


def _shrink(path: Path) -> int:
    """A flat UI in 128 colours looks the same and weighs a third (Pillow, from matplotlib)."""
    from PIL import Image

    with Image.open(path) as im:
        q = im.convert("RGB").quantize(colors=128, method=Image.Quantize.MEDIANCUT)
    q.save(path, optimize=True)
    return path.stat().st_size


def main() -> int:
    from sensorhub_testing.browser import DriverLog, driver_argv, find_chromium

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "img")
    ap.add_argument("--run", type=float, default=30.0, help="seconds the graph runs first")
    a = ap.parse_args()
    bench_domain()
    a.out.mkdir(parents=True, exist_ok=True)
    chromium = find_chromium()
    with tempfile.TemporaryDirectory(prefix="lab-page-shots-") as td:
        tmp = Path(td)
        graph = SimGraph(tmp)
        procs = Procs(tmp)
        try:
            graph.start()
            if not graph.wait_running(120):
                raise SystemExit(f"the sim graph did not come up: see {tmp}/sensorhub.log")
            t_up = time.monotonic()
            wait_for(lambda: time.monotonic() - t_up >= max(0.0, a.run - 10), a.run + 1, 0.5)
            url = f"http://127.0.0.1:{graph.web_port}/"
            drivers = {}
            for name, (viewport, scale) in SHOTS.items():
                shot = ["--screenshot", a.out / name, "--shot-after", 10, "--full-page"]
                argv = driver_argv(BROWSER_DIR, chromium, url, "--viewport", viewport,
                                   "--scale", scale, "--duration", 10, *shot)  # fmt: skip
                procs.start(name, argv)
                drivers[name] = DriverLog(tmp / f"{name}.log")
            ok = wait_for(lambda: all(d.events("done") for d in drivers.values()), 120, 0.5)
            for name, d in drivers.items():
                shot = d.events("screenshot")
                last = d.last() or {}
                lab = last.get("lab") or {}
                size = _shrink(a.out / name) if shot else None
                print(f"{name}: {size} bytes, status {lab.get('status')}, events "
                      f"{lab.get('events')}, files {lab.get('files')}, zones {lab.get('zones')}, "
                      f"errors {d.errors()}")  # fmt: skip
                if size and size > MAX_BYTES:
                    print(f"{name}: larger than {MAX_BYTES} bytes", file=sys.stderr)
                    ok = False
        finally:
            procs.stop_all()
            graph.stop()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
