"""GUI-thread cost of showing one 12 MP photo: full-size drawing vs the display level (app/display.py).

Measures, for the studio's views, the CPU time of the GUI thread (time.thread_time, so the number
does not depend on how busy the rest of the machine is) spent in each step a user's photo goes
through on that thread: show the photo, bind its mask overlay, show two maps and their difference,
one brush stroke, and one full repaint of the window. ``--cap 0`` draws at full size (what the
studio did before display levels); the default cap is app.display.MAX_SIDE.

    QT_QPA_PLATFORM=offscreen nice -n 15 python benchmarks/bench_display.py --size 4032x3024
    QT_QPA_PLATFORM=offscreen nice -n 15 python benchmarks/bench_display.py --size 4032x3024 --cap 0
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cv2  # noqa: E402
import numpy as np  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--size", default="4032x3024")
    p.add_argument("--cap", type=int, help="display long-side cap; 0 = full size (no display level)")
    p.add_argument("--repeat", type=int, default=3, help="best of N for each step")
    p.add_argument("--out", type=Path)
    args = p.parse_args(argv)
    cv2.setNumThreads(1)
    w, h = (int(v) for v in args.size.lower().split("x"))

    import app.display as display

    if args.cap is not None:
        display.MAX_SIDE = args.cap or 10 ** 9
    from PySide6.QtWidgets import QApplication

    import app  # noqa: F401
    from app.display import colorize, difference, display_factor, mask_rgba, reduce
    from app.views import ViewGrid
    from dbd_core.annotate.mask_model import MaskModel

    qapp = QApplication.instance() or QApplication([])
    grid = ViewGrid()
    grid.resize(1200, 860)
    grid.show()
    qapp.processEvents()
    rng = np.random.default_rng(0)
    rgb = cv2.resize(rng.integers(0, 256, (h // 16, w // 16, 3), np.uint8), (w, h), interpolation=cv2.INTER_CUBIC)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    teacher = (xx / w).astype(np.float32)
    student = (yy / h).astype(np.float32)
    k = display_factor(rgb.shape)
    # What the map worker hands over (made on its thread, not timed here).
    shown_rgb, shown_t, shown_s = reduce(rgb, k), reduce(teacher, k), reduce(student, k)
    lut_t, lut_s = grid.maps["teacher"].lut, grid.maps["student"].lut
    coloured_t = None if lut_t is None else colorize(shown_t, lut_t)  # the worker colours maps (app/workers.py)
    coloured_s = None if lut_s is None else colorize(shown_s, lut_s)
    diff = difference(shown_t, shown_s)  # the worker makes and colours the disagreement too
    diff_rgb = None if grid.diff.lut is None else colorize(diff, grid.diff.lut)
    model = MaskModel((h, w), (teacher > 0.5).astype(np.uint8))
    # The worker colours a saved mask's overlay pixels; each bind adopts a fresh buffer.
    saved_rgba = iter([mask_rgba(model.mask, k) for _ in range(args.repeat)])

    def cost(fn) -> float:
        best = float("inf")
        for _ in range(args.repeat):
            t0 = time.thread_time()
            fn()
            qapp.processEvents()  # includes the repaint that the change asks for
            best = min(best, time.thread_time() - t0)
        return round(best * 1000, 1)

    def stroke():
        model.begin("hand")
        for i in range(10):
            model.paint_segment((w / 3 + i * 20, h / 2), (w / 3 + i * 20 + 20, h / 2), 30, 1)
        model.end()

    thresholds = iter(np.linspace(0.3, 0.7, 4 * args.repeat))

    seed_buffer = np.empty(teacher.shape, bool)

    def threshold_step():  # one slider move as app/session.py makes it: seed from the cached map, recolour
        from dbd_core.annotate.threshold import threshold_map

        model.set_mask(threshold_map(teacher, float(next(thresholds)), out=seed_buffer), kind="seed")

    steps = {
        "show photo": lambda: grid.photo.show_array(shown_rgb, k),
        "bind mask overlay (full recolour)": lambda: grid.overlay.set_model(model),
        "bind a saved mask (pixels made by the worker)": lambda: grid.overlay.set_model(model, next(saved_rgba)),
        "show two maps (coloured by the worker)": lambda: [
            grid.maps["teacher"].show_array(shown_t, k, coloured=coloured_t),
            grid.maps["student"].show_array(shown_s, k, coloured=coloured_s)],
        "show difference (made on the GUI thread)": lambda: grid.diff.show_array(difference(shown_t, shown_s), k),
        "show difference (made by the worker)": lambda: grid.diff.show_array(diff, k, coloured=diff_rgb),
        "brush stroke (10 segments)": stroke,
        "threshold slider step (seed + overlay)": threshold_step,
        "full repaint of the views": lambda: grid.grab(),
    }
    grid.fit(rgb.shape)
    result = {"size": f"{w}x{h}", "display_factor": k, "display_shape": list(shown_rgb.shape[:2]),
              "gui_thread_cpu_ms": {name: cost(fn) for name, fn in steps.items()}}
    print(json.dumps(result, indent=1))
    if args.out:
        args.out.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
