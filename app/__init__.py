"""dbd-studio: the thin PySide6 + pyqtgraph desktop app over dbd_core.

Importing ``app`` pins pyqtgraph to PySide6 (it prefers PyQt6 when both exist) and sets pyqtgraph's
global options once, before any image item exists: row-major images (else they show transposed).
"""

import os

os.environ.setdefault("PYQTGRAPH_QT_LIB", "PySide6")

import PySide6  # noqa: E402,F401  (import first so pyqtgraph binds to it)
import pyqtgraph as pg  # noqa: E402

pg.setConfigOptions(imageAxisOrder="row-major", antialias=False)
