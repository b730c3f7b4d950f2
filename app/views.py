"""The four linked views: photo (with the mask overlay), teacher map, student map and their
disagreement |teacher - student|. Maps use fixed 0..1 levels and a perceptual colormap with a
colorbar, so the same colour means the same probability in every view and every photo.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QGridLayout, QHBoxLayout, QLabel, QSizePolicy, QStackedLayout, QToolButton,
                               QVBoxLayout, QWidget)

from app.overlay import MaskOverlayItem
from app.tools import ToolViewBox

# Also set here (not only in app/__init__) so no import path can leave images transposed.
pg.setConfigOptions(imageAxisOrder="row-major")

MAP_CMAP = "viridis"
DIFF_CMAP = "inferno"


class ImagePanel(QWidget):
    """Title bar (with maximise) over a pyqtgraph view, an optional colorbar and a message layer
    that replaces the picture while it is computing or when it failed."""

    maximise_toggled = Signal(object)

    def __init__(self, title: str, cmap: str | None = None, bar_label: str = "", viewbox=None, parent=None):
        super().__init__(parent)
        self.title = QLabel(f"<b>{title}</b>")
        self.info = QLabel("")
        self.info.setStyleSheet("color: #888")
        self.max_button = QToolButton(text="⤢", toolTip="Maximise / restore this view (double-click the title)")
        self.max_button.setAutoRaise(True)
        self.max_button.clicked.connect(lambda: self.maximise_toggled.emit(self))
        head = QHBoxLayout()
        head.setContentsMargins(4, 0, 4, 0)
        head.setSpacing(10)
        head.addWidget(self.title)
        head.addWidget(self.info, 1)
        head.addWidget(self.max_button)

        self.glw = pg.GraphicsLayoutWidget()
        self.glw.setBackground("#202124")
        self.glw.ci.setContentsMargins(2, 2, 2, 2)
        self.vb = viewbox or pg.ViewBox()
        self.vb.setAspectLocked(True)
        self.vb.invertY(True)  # row 0 at the top, like every photo viewer
        self.glw.addItem(self.vb, 0, 0)
        self.image = pg.ImageItem()
        self.vb.addItem(self.image)
        self.bar = None
        if cmap is not None:
            self.image.setLevels((0.0, 1.0))
            self.bar = pg.ColorBarItem(values=(0.0, 1.0), colorMap=pg.colormap.get(cmap), width=14,
                                       label=bar_label, interactive=False, colorMapMenu=False)
            self.bar.setImageItem(self.image)
            self.glw.addItem(self.bar, 0, 1)

        self.message = QLabel("", alignment=Qt.AlignmentFlag.AlignCenter, wordWrap=True)
        self.message.setStyleSheet("color: #eee; background: rgba(32,33,36,215); padding: 12px; font-size: 12px")
        self.message.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Ignored)
        self.message.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        body = QWidget()
        stack = QStackedLayout(body)
        stack.setStackingMode(QStackedLayout.StackingMode.StackAll)
        stack.addWidget(self.message)
        stack.addWidget(self.glw)
        self.message.hide()

        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(0)
        lay.addLayout(head)
        lay.addWidget(body, 1)

    def mouseDoubleClickEvent(self, ev) -> None:  # on the title bar
        self.maximise_toggled.emit(self)

    def show_array(self, arr: np.ndarray | None) -> None:
        if arr is None:
            self.image.clear()
            return
        if self.bar is not None:
            self.image.setImage(arr, autoLevels=False, levels=(0.0, 1.0))
        else:
            self.image.setImage(arr, autoLevels=False, levels=(0, 255))

    def show_message(self, text: str | None) -> None:
        """A message over the view (busy, failed, missing weights); None shows the picture."""
        if text:
            self.message.setText(text)
            self.message.show()
            self.message.raise_()
        else:
            self.message.hide()


class ViewGrid(QWidget):
    """Photo | teacher / student | disagreement in a 2x2 grid with linked zoom and pan."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.photo = ImagePanel("Photo + mask", viewbox=ToolViewBox())
        self.overlay = MaskOverlayItem()
        self.photo.vb.addItem(self.overlay)
        self.maps = {
            "teacher": ImagePanel("Teacher map", MAP_CMAP, "P(blurred)"),
            "student": ImagePanel("Student map", MAP_CMAP, "P(blurred)"),
        }
        self.diff = ImagePanel("Disagreement |teacher − student|", DIFF_CMAP, "|Δ|")
        self.panels = [self.photo, self.maps["teacher"], self.maps["student"], self.diff]
        grid = QGridLayout(self)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setSpacing(4)
        for i, p in enumerate(self.panels):
            grid.addWidget(p, i // 2, i % 2)
            p.maximise_toggled.connect(self.toggle_maximise)
            if p is not self.photo:
                p.vb.setXLink(self.photo.vb)
                p.vb.setYLink(self.photo.vb)
        self.maximised = None

    def toggle_maximise(self, panel) -> None:
        self.maximised = None if self.maximised is panel else panel
        for p in self.panels:
            p.setVisible(self.maximised is None or p is self.maximised)

    def fit(self, shape) -> None:
        h, w = shape[:2]
        self.photo.vb.setRange(xRange=(0, w), yRange=(0, h), padding=0.01)
