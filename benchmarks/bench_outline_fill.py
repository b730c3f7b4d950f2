"""GUI-thread cost of toggling the overlay's outline mode and of a whole-photo flood fill, on the
studio's own objects: a MaskModel bound to the MaskOverlayItem of an offscreen ViewGrid, the photo
zoomed to fit, edits sent through the ToolController as a click does. Every time includes the Qt
repaint that follows (processEvents). Run:
    QT_QPA_PLATFORM=offscreen python benchmarks/bench_outline_fill.py            # 48 MP and 12 MP
    QT_QPA_PLATFORM=offscreen python benchmarks/bench_outline_fill.py --sizes 8000x6000 --repeats 9

Masks: "subject" (one sharp ellipse in a blurred photo: one smooth boundary), "astronaut" (the
shipped student's map of skimage's astronaut upscaled to the size, thresholded at 0.5: a real mask) and
"blobs" (a thresholded smooth random field: boundaries all over the photo, a busy worst case).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import app  # noqa: F401,E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402
from PySide6.QtCore import QPointF, Qt  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from app.tools import ToolController  # noqa: E402
from app.views import ViewGrid  # noqa: E402
from dbd_core.annotate import MaskModel  # noqa: E402


def subject_mask(h: int, w: int) -> np.ndarray:
    m = np.ones((h, w), np.uint8)
    cv2.ellipse(m, (w // 2, h // 2), (w // 5, h // 3), 0, 0, 360, 0, -1)
    return m


def astronaut_mask(h: int, w: int) -> np.ndarray:
    from skimage import data

    from app.models import ModelProvider

    rgb = cv2.resize(data.astronaut(), (w, h), interpolation=cv2.INTER_CUBIC)
    prob = ModelProvider({"student": "student"}).get("student").predict(rgb)
    return (np.asarray(prob) > 0.5).view(np.uint8)


def blob_mask(h: int, w: int, seed: int = 0) -> np.ndarray:
    field = np.random.default_rng(seed).normal(size=(12, 16)).astype(np.float32)
    return (cv2.resize(field, (w, h), interpolation=cv2.INTER_CUBIC) > 0).view(np.uint8)


class _Click:
    """The parts of a pyqtgraph click event that ToolController.click reads."""

    def __init__(self, vb, x: float, y: float):
        self._pos = vb.mapFromView(QPointF(x, y))

    def pos(self):
        return self._pos

    def modifiers(self):
        return Qt.KeyboardModifier.NoModifier

    def double(self):
        return False


def _ms(f) -> float:
    t0 = time.perf_counter()
    f()
    return (time.perf_counter() - t0) * 1e3


def _timed(obj, name: str, bucket: list) -> None:
    """Wrap obj.name so each call's duration lands in ``bucket`` (ms)."""
    real = getattr(obj, name)

    def wrapper(*a, **kw):
        t0 = time.perf_counter()
        try:
            return real(*a, **kw)
        finally:
            bucket.append((time.perf_counter() - t0) * 1e3)

    setattr(obj, name, wrapper)


def med(xs) -> float:
    return float(np.median(xs)) if len(xs) else float("nan")


def bench_size(qapp, h: int, w: int, repeats: int) -> None:
    grid = ViewGrid()
    grid.resize(1400, 900)
    grid.show()
    grid.photo.show_array(np.full((-(-h // 4), -(-w // 4), 3), 128, np.uint8), k=4)
    grid.fit((h, w))
    tools = ToolController(grid.photo.vb)
    tools.set_tool("fill")
    ov = grid.overlay
    step = lambda f: _ms(lambda: (f(), qapp.processEvents()))  # noqa: E731
    print(f"--- {w}x{h} ({h * w / 1e6:.0f} MP), display factor k = ", end="")

    for name, make in (("subject", subject_mask), ("astronaut", astronaut_mask), ("blobs", blob_mask)):
        model = MaskModel((h, w), make(h, w))
        ov.set_outline(False)
        ov.set_model(model)
        tools.model = model
        qapp.processEvents()
        if name == "subject":
            print(ov.k)
        first = step(lambda: ov.set_outline(True))
        on, off = [], []
        for _ in range(repeats):
            off.append(step(lambda: ov.set_outline(False)))
            on.append(step(lambda: ov.set_outline(True)))
        # A stroke in fill mode, then the toggle: what the outline must catch up on.
        ov.set_outline(False)
        after_stroke = []
        for i in range(repeats):
            model.begin("hand")
            y = h * (i + 1) / (repeats + 2)
            for j in range(20):
                model.paint_segment((w * 0.1 + 40 * j, y), (w * 0.1 + 40 * (j + 1), y), 25, j % 2 == 0 or i % 2)
            model.end()
            qapp.processEvents()
            after_stroke.append(step(lambda: ov.set_outline(True)))
            ov.set_outline(False)
            qapp.processEvents()
        # Brush segments drawn in outline mode (mask edit + outline of the changed rectangle + repaint).
        ov.set_outline(True)
        qapp.processEvents()
        segs = []
        model.begin("hand")
        x, y = w * 0.3, h * 0.5
        for i in range(200):
            nx, ny = x + 15, y + 10 * np.sin(i / 10)
            segs.append(step(lambda: model.paint_segment((x, y), (nx, ny), 25, 1)))
            x, y = nx, ny
        model.end()
        print(f"{name:9s} outline toggle: first on {first:6.1f} ms; repeated on median {med(on):6.1f} ms "
              f"(max {max(on):.1f}), off median {med(off):6.1f} ms (max {max(off):.1f}); "
              f"on after a 20-segment stroke median {med(after_stroke):6.1f} ms (max {max(after_stroke):.1f})")
        print(f"{name:9s} brush segment in outline mode: median {med(segs):.2f} ms, p95 {np.percentile(segs, 95):.2f} ms, "
              f"max {max(segs):.2f} ms")
        ov.set_outline(False)

    # Flood fill clicks of the fill tool: an empty photo filled blurred, then cleared again (the region is the
    # whole photo each time); and the background of the subject mask cleared (most of the photo, one hole).
    # Each fill is undone and redone; after the subject fill, undone again so the next click finds the same mask.
    for case, make in (("whole photo", lambda: np.zeros((h, w), np.uint8)), ("subject background", lambda: subject_mask(h, w))):
        for outline in (False, True):
            model = MaskModel((h, w), make())
            ov.set_outline(outline)
            ov.set_model(model)
            tools.model = model
            qapp.processEvents()
            parts = {k: [] for k in ("flood_fill", "end", "overlay")}
            _timed(model, "flood_fill", parts["flood_fill"])
            _timed(model, "end", parts["end"])
            model.listeners[:] = [lambda r, cb=cb: parts["overlay"].append(_ms(lambda: cb(r))) for cb in model.listeners]
            fills, undos, redos, exact = [], [], [], True
            for i in range(repeats):
                before = model.mask.copy()
                fills.append(step(lambda: tools.click(_Click(grid.photo.vb, 2, 2), grid.photo.vb)))
                after = model.mask.copy()
                exact &= bool(not np.array_equal(after, before) and after[2, 2] != before[2, 2])
                undos.append(step(model.undo))
                exact &= np.array_equal(model.mask, before)
                redos.append(step(model.redo))
                exact &= np.array_equal(model.mask, after)
                if case != "whole photo":
                    model.undo()
                    qapp.processEvents()
            fill_ovl = parts["overlay"][0::4 if case != "whole photo" else 3]  # each fill's own redraw
            print(f"{case} fill click, {'outline' if outline else 'fill'} mode: median {med(fills):6.1f} ms "
                  f"(max {max(fills):.1f}) = flood_fill {med(parts['flood_fill']):.1f} (of which overlay redraw "
                  f"{med(fill_ovl):.1f}) + end of the undo step {med(parts['end']):.1f} + Qt repaint; "
                  f"undo median {med(undos):.1f} ms, redo median {med(redos):.1f} ms; masks and undo exact: {exact}; "
                  f"history {model.history_bytes() / 1e6:.0f} MB")
            ov.set_outline(False)
    ov.set_model(None)
    grid.close()
    grid.deleteLater()
    qapp.processEvents()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", nargs="+", default=["8000x6000", "4000x3000"])
    p.add_argument("--repeats", type=int, default=7)
    args = p.parse_args(argv)
    qapp = QApplication.instance() or QApplication([])
    for size in args.sizes:
        w, h = (int(v) for v in size.lower().split("x"))
        bench_size(qapp, h, w, args.repeats)
    return 0


if __name__ == "__main__":
    rc = main()
    sys.stdout.flush()
    # Skip interpreter teardown of the offscreen view: a PySide6/pyqtgraph finaliser can abort at exit
    # after the numbers are printed (as in bench_paint.py); it says nothing about the work measured.
    os._exit(rc)
