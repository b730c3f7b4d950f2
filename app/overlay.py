"""The mask drawn over the photo, redrawn only where it changed.

The overlay keeps a premultiplied RGBA buffer that a QImage shares (no copy). An edit recolours
just its rectangle of the buffer and asks Qt to repaint just that rectangle, so a brush stroke on a
24 MP photo costs about the same as on a small one. Opacity is the item's opacity (no recolouring);
outline mode draws only the mask's edge.
"""

from __future__ import annotations

import cv2
import numpy as np
from PySide6.QtCore import QRectF
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QGraphicsItem, QGraphicsObject

COLOR = (255, 60, 40)  # blurred = warm red, readable over most photos


class MaskOverlayItem(QGraphicsObject):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.model = None
        self.outline = False
        self._rgba = np.zeros((1, 1, 4), np.uint8)
        self._qimage = QImage()
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemUsesExtendedStyleOption, True)
        self.setOpacity(0.45)
        self.setZValue(10)

    # ---------------------------------------------------------------- model binding
    def set_model(self, model) -> None:
        if self.model is not None and self._on_change in self.model.listeners:
            self.model.listeners.remove(self._on_change)
        self.prepareGeometryChange()
        self.model = model
        if model is None:
            self._rgba = np.zeros((1, 1, 4), np.uint8)
        else:
            model.listeners.append(self._on_change)
            h, w = model.shape
            self._rgba = np.zeros((h, w, 4), np.uint8)
        h, w = self._rgba.shape[:2]
        self._qimage = QImage(self._rgba.data, w, h, 4 * w, QImage.Format.Format_RGBA8888_Premultiplied)
        self.redraw()

    def set_outline(self, on: bool) -> None:
        self.outline = bool(on)
        self.redraw()

    def redraw(self, rect=None) -> None:
        """Recolour ``rect`` (y0, x0, y1, x1) of the buffer from the mask, or all of it."""
        if self.model is None:
            self.update()
            return
        h, w = self.model.shape
        y0, x0, y1, x1 = rect if rect is not None else (0, 0, h, w)
        # Outline pixels depend on their neighbours: widen the rectangle by the edge width.
        pad = self._edge_width() if self.outline else 0
        y0, x0, y1, x1 = max(0, y0 - pad), max(0, x0 - pad), min(h, y1 + pad), min(w, x1 + pad)
        if y0 >= y1 or x0 >= x1:
            return
        py0, px0, py1, px1 = max(0, y0 - pad), max(0, x0 - pad), min(h, y1 + pad), min(w, x1 + pad)
        src = self.model.mask[py0:py1, px0:px1]
        if self.outline:
            k = np.ones((3, 3), np.uint8)
            edge = cv2.morphologyEx(src, cv2.MORPH_GRADIENT, k, iterations=max(1, pad // 2))
            src = edge
        on = src[y0 - py0:y1 - py0, x0 - px0:x1 - px0]
        dst = self._rgba[y0:y1, x0:x1]
        for c, v in enumerate(COLOR + (255,)):
            np.multiply(on, v, out=dst[..., c], casting="unsafe")
        self.update(QRectF(x0, y0, x1 - x0, y1 - y0))

    def _edge_width(self) -> int:
        return max(2, int(max(self.model.shape) / 700))

    def _on_change(self, rect) -> None:
        self.redraw(rect)

    # ---------------------------------------------------------------- QGraphicsItem
    def boundingRect(self) -> QRectF:
        h, w = self._rgba.shape[:2]
        return QRectF(0, 0, w, h)

    def paint(self, painter, option, widget=None) -> None:
        if self.model is None:
            return
        r = option.exposedRect.intersected(self.boundingRect()).toAlignedRect()
        if r.isEmpty():
            return
        painter.drawImage(QRectF(r), self._qimage, QRectF(r))
