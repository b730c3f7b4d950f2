"""The mask drawn over the photo, redrawn only where it changed.

The overlay keeps a premultiplied RGBA buffer at the photo's display level (app/display.py: the
full-resolution mask reduced by the same integer factor k as the photo; a display pixel's alpha is
the share of its k x k block that is blurred, so edges stay smooth). A QImage shares the buffer (no
copy) and the item is scaled by k, so its scene coordinates are full-resolution pixels. An edit
recolours just the display pixels its rectangle touches, from the full-resolution mask, and asks Qt
to repaint just those, so a brush stroke on a 24 MP photo costs about the same as on a small one,
and the result equals recolouring everything. Opacity is the item's opacity (no recolouring);
outline mode draws only the mask's edge.
"""

from __future__ import annotations

import cv2
import numpy as np
from PySide6.QtCore import QRectF
from PySide6.QtGui import QImage, QTransform
from PySide6.QtWidgets import QGraphicsItem, QGraphicsObject

from app.display import MASK_COLOR, coverage_rgba, display_factor, display_shape, reduce


class MaskOverlayItem(QGraphicsObject):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.model = None
        self.outline = False
        self.color = MASK_COLOR
        self._rgba = np.zeros((1, 1, 4), np.uint8)
        self._qimage = QImage()
        self.k = 1  # display reduction of the current photo
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemUsesExtendedStyleOption, True)
        self.setOpacity(0.45)
        self.setZValue(10)

    # ---------------------------------------------------------------- model binding
    def set_model(self, model, rgba: np.ndarray | None = None, rgba_color=None) -> None:
        """Bind ``model``; ``rgba`` = its pixels already made off the GUI thread (app.display.mask_rgba
        of exactly ``model.mask``, in ``rgba_color``), adopted instead of recolouring the whole mask here
        (23-31 ms at 12 MP) when made in the overlay's colour."""
        if rgba is not None and tuple(rgba_color or MASK_COLOR) != tuple(self.color):
            rgba = None  # made before a colour change: recolour here
        if self.model is not None and self._on_change in self.model.listeners:
            self.model.listeners.remove(self._on_change)
        self.prepareGeometryChange()
        self.model = model
        ready = False
        if model is None:
            self._rgba = np.zeros((1, 1, 4), np.uint8)
        else:
            model.listeners.append(self._on_change)
            self.k = display_factor(model.shape)
            shape = display_shape(model.shape, self.k) + (4,)
            ready = (rgba is not None and not self.outline and rgba.shape == shape and rgba.dtype == np.uint8
                     and rgba.flags.c_contiguous and rgba.flags.writeable)
            self._rgba = rgba if ready else np.zeros(shape, np.uint8)
        self.setTransform(QTransform.fromScale(self.k, self.k))
        h, w = self._rgba.shape[:2]
        self._qimage = QImage(self._rgba.data, w, h, 4 * w, QImage.Format.Format_RGBA8888_Premultiplied)
        if ready:
            self.update()
        else:
            self.redraw()

    def set_color(self, color) -> None:
        """The colour of "blurred" (one full recolour, on a user's choice)."""
        self.color = tuple(color)
        self.redraw()

    def set_outline(self, on: bool) -> None:
        self.outline = bool(on)
        self.redraw()

    def redraw(self, rect=None) -> None:
        """Recolour the display pixels that ``rect`` (y0, x0, y1, x1, full resolution) touches, or all."""
        if self.model is None:
            self.update()
            return
        h, w = self.model.shape
        k = self.k
        y0, x0, y1, x1 = rect if rect is not None else (0, 0, h, w)
        # Outline pixels depend on their neighbours: widen the rectangle by the edge width.
        pad = self._edge_width() if self.outline else 0
        y0, x0, y1, x1 = max(0, y0 - pad), max(0, x0 - pad), min(h, y1 + pad), min(w, x1 + pad)
        if y0 >= y1 or x0 >= x1:
            return
        # Whole display blocks: a display pixel is recomputed from all of its k x k block.
        y0, x0, y1, x1 = y0 // k * k, x0 // k * k, min(h, -(-y1 // k) * k), min(w, -(-x1 // k) * k)
        py0, px0, py1, px1 = max(0, y0 - pad), max(0, x0 - pad), min(h, y1 + pad), min(w, x1 + pad)
        src = self.model.mask[py0:py1, px0:px1]
        if self.outline:
            kernel = np.ones((3, 3), np.uint8)
            src = cv2.morphologyEx(src, cv2.MORPH_GRADIENT, kernel, iterations=max(1, pad // 2))
        on = src[y0 - py0:y1 - py0, x0 - px0:x1 - px0]
        cover = reduce(on * np.uint8(255), k)  # share of each block that is blurred
        dy0, dx0 = y0 // k, x0 // k
        dy1, dx1 = dy0 + cover.shape[0], dx0 + cover.shape[1]
        self._rgba[dy0:dy1, dx0:dx1] = coverage_rgba(cover, self.color)
        self.update(QRectF(dx0, dy0, dx1 - dx0, dy1 - dy0))

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
