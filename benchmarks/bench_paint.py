"""Time per brush-stroke segment on a 6000x4000 mask: model edit + overlay recolour of the changed
rectangle + Qt repaint of the photo view (offscreen). Run:
    QT_QPA_PLATFORM=offscreen python benchmarks/bench_paint.py
"""

import os
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
import app  # noqa: F401,E402

import numpy as np  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from app.views import ViewGrid  # noqa: E402
from dbd_core.annotate import MaskModel  # noqa: E402


def main(h=4000, w=6000, segments=300, radius=25, force_repaint=False):
    qapp = QApplication.instance() or QApplication([])
    grid = ViewGrid()
    grid.resize(1400, 900)
    grid.show()
    grid.photo.show_array(np.full((h, w, 3), 128, np.uint8))
    model = MaskModel((h, w))
    grid.overlay.set_model(model)
    grid.fit((h, w))
    qapp.processEvents()
    times = []
    model.begin("hand")
    x, y = 500.0, 500.0
    for i in range(segments):
        nx, ny = x + 15, y + 10 * np.sin(i / 10)
        t0 = time.perf_counter()
        model.paint_segment((x, y), (nx, ny), radius, 1)  # listener recolours the rectangle
        qapp.processEvents()  # the repaint of the exposed rectangle
        if force_repaint:  # worst case: synchronously repaint the whole photo view, zoomed to fit
            grid.photo.glw.viewport().repaint()
        times.append(time.perf_counter() - t0)
        x, y = nx, ny
    t0 = time.perf_counter()
    model.end()
    end_ms = (time.perf_counter() - t0) * 1e3
    t = np.array(times) * 1e3
    print(f"{'forced full-view repaint' if force_repaint else 'dirty-rect update'}: {w}x{h}, radius {radius}px, {segments} segments: median {np.median(t):.2f} ms, "
          f"p95 {np.percentile(t, 95):.2f} ms, max {t.max():.2f} ms per segment; end of stroke {end_ms:.1f} ms; "
          f"history {model.history_bytes() / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
    main(segments=60, force_repaint=True)
    # Skip interpreter teardown of the two offscreen views: a PySide6/pyqtgraph finaliser can abort
    # at exit after both measurements are printed; it says nothing about painting.
    os._exit(0)
