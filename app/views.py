"""The four linked views: photo (with the mask overlay), teacher map, student map and their
disagreement |teacher - student|. Maps use fixed 0..1 levels and a perceptual colormap with a
colorbar, so the same colour means the same probability in every view and every photo.

The views must show exactly the same region of the photo. With aspect locked, linked ranges only
agree if the view boxes have identical sizes, so nothing that differs between panels lives beside
a view: every panel has the same title bar above and a footer strip of the same fixed height below
(the colorbar for maps, the mask legend for the photo), and the grid gives all cells equal stretch.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QLinearGradient, QPainter
from PySide6.QtWidgets import (QHBoxLayout, QLabel, QSizePolicy, QStackedLayout, QToolButton,
                               QVBoxLayout, QWidget)

from app.display import MASK_COLOR, colorize, lookup_table
from app.overlay import MaskOverlayItem
from app.tools import ToolViewBox

# Also set here (not only in app/__init__) so no import path can leave images transposed.
pg.setConfigOptions(imageAxisOrder="row-major")

MAP_CMAP = "viridis"
DIFF_CMAP = "inferno"
FOOTER_H = 30  # the same for every panel, so all view boxes get the same size
SPACING = 4  # between the panels of the grid


class FooterStrip(QWidget):
    """Below a view: a horizontal colorbar (0..1 with ticks and a label) or, without a colormap,
    a legend swatch. Fixed height in every panel."""

    def __init__(self, cmap: str | None, label: str, parent=None):
        super().__init__(parent)
        self.cmap = pg.colormap.get(cmap) if cmap else None
        self.label = label
        self.swatch = MASK_COLOR  # the legend's colour when there is no colormap
        self.setFixedHeight(FOOTER_H)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)

    def paintEvent(self, ev) -> None:
        p = QPainter(self)
        p.fillRect(self.rect(), QColor("#202124"))
        fm = p.fontMetrics()
        text_w = fm.horizontalAdvance(self.label) + 12
        bar = QRectF(8, 4, max(20, self.width() - text_w - 24), 10)
        if self.cmap is None:  # legend: a swatch in the mask colour
            p.fillRect(QRectF(8, 8, 14, 14), QColor(*self.swatch))
            p.setPen(QColor("#cfd1d4"))
            p.drawText(QRectF(28, 0, self.width() - 32, FOOTER_H), Qt.AlignmentFlag.AlignVCenter, self.label)
            return
        grad = QLinearGradient(bar.left(), 0, bar.right(), 0)
        for pos, c in zip(*self.cmap.getStops(mode="qcolor")):
            grad.setColorAt(float(pos), c)
        p.fillRect(bar, grad)
        p.setPen(QColor("#cfd1d4"))
        # Quarter ticks only where their labels fit apart; a narrow bar keeps 0, 0.5 and 1.
        quarters = bar.width() / 4 > fm.horizontalAdvance("0.75") + 6
        for t in (0.0, 0.25, 0.5, 0.75, 1.0) if quarters else (0.0, 0.5, 1.0):
            x = bar.left() + t * bar.width()
            p.drawLine(int(x), int(bar.bottom()), int(x), int(bar.bottom()) + 3)
            s = f"{t:g}"
            w = fm.horizontalAdvance(s)
            tx = min(max(x - w / 2, 0), self.width() - w)
            p.drawText(int(tx), int(bar.bottom()) + 4 + fm.ascent(), s)
        p.drawText(QRectF(bar.right() + 12, 0, text_w, 20), Qt.AlignmentFlag.AlignVCenter, self.label)


class ImagePanel(QWidget):
    """Title bar (with maximise) over a pyqtgraph view, an optional colorbar and a message layer
    that replaces the picture while it is computing or when it failed."""

    maximise_toggled = Signal(object)

    def __init__(self, title: str, cmap: str | None = None, bar_label: str = "", viewbox=None, parent=None):
        super().__init__(parent)
        self.title = QLabel(f"<b>{title}</b>")
        self.info = QLabel("")
        self.info.setStyleSheet("color: #888")
        for label in (self.title, self.info):  # long texts may shrink, never widen one grid column
            label.setMinimumWidth(1)
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
        # Maps are coloured once with OpenCV (app/display.py) and shown as RGB: pyqtgraph's own
        # level/LUT pass would redo that on the GUI thread at every upload.
        self.lut = lookup_table(cmap) if cmap is not None else None
        self.values: np.ndarray | None = None
        self.footer = FooterStrip(cmap, bar_label)

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
        lay.addWidget(self.footer)

    def set_legend_color(self, color) -> None:
        self.footer.swatch = tuple(color)
        self.footer.update()

    def mouseDoubleClickEvent(self, ev) -> None:  # on the title bar
        self.maximise_toggled.emit(self)

    def show_array(self, arr: np.ndarray | None, k: int = 1, coloured: np.ndarray | None = None) -> None:
        """Show a display level (app/display.py): an RGB photo, or a 0..1 map that this panel
        colours (or ``coloured``: the same map already coloured with this panel's LUT, off the GUI
        thread), reduced by ``k`` from the full photo. The item spans k scene units per pixel, so
        every view keeps full-resolution photo coordinates."""
        self.values = arr  # what is shown, before colouring (the display level of a map)
        if arr is None:
            self.image.clear()
            return
        if coloured is not None:
            arr = coloured
        elif self.lut is not None and arr.ndim == 2:
            arr = colorize(arr, self.lut)
        # uint8 RGB with no levels is pyqtgraph's pass-through path: levels=(0, 255) would make it
        # rescale every pixel in Python-side numpy at each render (the profile showed ~1-2 s under load).
        self.image.setImage(arr, autoLevels=False)
        self.image.setRect(QRectF(0, 0, arr.shape[1] * k, arr.shape[0] * k))

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
        self.photo = ImagePanel("Photo + mask", viewbox=ToolViewBox(), bar_label="blurred (mask overlay)")
        self.overlay = MaskOverlayItem()
        self.photo.vb.addItem(self.overlay)
        self.maps = {
            "teacher": ImagePanel("Teacher map", MAP_CMAP, "P(blurred)"),
            "student": ImagePanel("Student map", MAP_CMAP, "P(blurred)"),
        }
        self.diff = ImagePanel("Disagreement |teacher − student|", DIFF_CMAP, "|Δ|")
        self.panels = [self.photo, self.maps["teacher"], self.maps["student"], self.diff]
        for p in self.panels:
            p.setParent(self)
            p.maximise_toggled.connect(self.toggle_maximise)
            if p is not self.photo:
                p.vb.setXLink(self.photo.vb)
                p.vb.setYLink(self.photo.vb)
        self.maximised = None
        self._shape: tuple[int, int] | None = None  # the photo's (h, w), for fitting

    def toggle_maximise(self, panel) -> None:
        self.maximised = None if self.maximised is panel else panel
        for p in self.panels:
            p.setVisible(self.maximised is None or p is self.maximised)
        self._place()
        # The links keep screen scale: a view four times the size would show the photo in its top-left quarter.
        self.refit()

    @property
    def active_view(self):
        """The view box the user sees and zooms: the maximised one, else the photo's (the others follow it)."""
        return (self.maximised or self.photo).vb

    def resizeEvent(self, ev) -> None:
        super().resizeEvent(ev)
        self._place()

    def _place(self) -> None:
        """Lay the panels out by hand: a grid layout splits odd sizes unevenly (one pixel more for
        one row or column), which would make the linked views show slightly different regions."""
        if self.maximised is not None:
            self.maximised.setGeometry(0, 0, self.width(), self.height())
            return
        w, h = (self.width() - SPACING) // 2, (self.height() - SPACING) // 2
        for i, p in enumerate(self.panels):
            p.setGeometry((i % 2) * (w + SPACING), (i // 2) * (h + SPACING), w, h)

    def minimumSizeHint(self) -> QSize:
        return QSize(320, 260)

    def sizeHint(self) -> QSize:  # no layout to ask: claim the room the four views want
        return QSize(1000, 720)

    def fit(self, shape) -> None:
        self._shape = tuple(shape[:2])
        self.refit()

    def refit(self) -> None:
        """The whole photo in view (Home / Ctrl+0)."""
        if self._shape is not None:
            h, w = self._shape
            self.active_view.setRange(xRange=(0, w), yRange=(0, h), padding=0.01)

    def zoom(self, factor: float) -> None:
        """Zoom about the view's centre (factor > 1 magnifies); the linked views follow."""
        if self._shape is not None:
            self.active_view.scaleBy((1 / factor, 1 / factor))
