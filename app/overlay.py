"""The mask drawn over the photo, redrawn only where it changed.

The overlay keeps a premultiplied RGBA buffer at the photo's display level (app/display.py: the
full-resolution mask reduced by the same integer factor k as the photo; a display pixel's alpha is
the share of its k x k block that is blurred, so edges stay smooth). A QImage shares the buffer (no
copy) and the item is scaled by k, so its scene coordinates are full-resolution pixels. An edit
recolours just the display pixels its rectangle touches, from the full-resolution mask, and asks Qt
to repaint just those, so a brush stroke on a 24 MP photo costs about the same as on a small one,
and the result equals recolouring everything. Opacity is the item's opacity (no recolouring);
outline mode draws only the mask's edge.

There is one buffer per mode (filled, outline). The shown one follows every edit; the hidden one only
notes which of its tiles an edit touched and catches up on those when it is shown, so toggling the
outline (key O) does not recompute a 48 MP edge image (110-155 ms) each time. A tile whose
neighbourhood in the mask has one value is painted as one colour without a reduction or a morphology:
a photo's mask is mostly such tiles.
"""

from __future__ import annotations

import cv2
import numpy as np
from PySide6.QtCore import QRectF
from PySide6.QtGui import QImage, QTransform
from PySide6.QtWidgets import QGraphicsItem, QGraphicsObject

from app.display import MASK_COLOR, coverage_rgba, display_factor, display_shape, reduce

TILE_SIDE = 256  # full-resolution side of the overlay's tiles, rounded down to whole display blocks


def _empty() -> np.ndarray:
    return np.zeros((1, 1, 4), np.uint8)


class MaskOverlayItem(QGraphicsObject):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.model = None
        self.outline = False
        self.color = MASK_COLOR
        self._bufs = {False: _empty(), True: _empty()}  # outline? -> premultiplied RGBA at display level
        self._stale = {False: np.zeros((1, 1), bool), True: np.zeros((1, 1), bool)}  # tiles to redo before showing
        self._images = {False: QImage(), True: QImage()}
        self.k = 1  # display reduction of the current photo
        self._side = TILE_SIDE  # full-resolution side of a tile: a multiple of k
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemUsesExtendedStyleOption, True)
        self.setOpacity(0.45)
        self.setZValue(10)

    @property
    def _rgba(self) -> np.ndarray:
        """The pixels shown now."""
        return self._bufs[self.outline]

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
        if model is None:
            self._bufs = {False: _empty(), True: _empty()}
            self._stale = {False: np.zeros((1, 1), bool), True: np.zeros((1, 1), bool)}
        else:
            model.listeners.append(self._on_change)
            self.k = display_factor(model.shape)
            self._side = max(1, TILE_SIDE // self.k) * self.k
            shape = display_shape(model.shape, self.k) + (4,)
            ready = (rgba is not None and rgba.shape == shape and rgba.dtype == np.uint8
                     and rgba.flags.c_contiguous and rgba.flags.writeable)
            self._bufs = {False: rgba if ready else np.zeros(shape, np.uint8), True: np.zeros(shape, np.uint8)}
            grid = (-(-model.shape[0] // self._side), -(-model.shape[1] // self._side))
            self._stale = {False: np.full(grid, not ready), True: np.ones(grid, bool)}
        self.setTransform(QTransform.fromScale(self.k, self.k))
        for mode, buf in self._bufs.items():
            h, w = buf.shape[:2]
            self._images[mode] = QImage(buf.data, w, h, 4 * w, QImage.Format.Format_RGBA8888_Premultiplied)
        self._catch_up()
        self.update()

    def set_color(self, color) -> None:
        """The colour of "blurred": both buffers recoloured from their alpha (the blurred share), which is
        what recolouring from the mask would give; stale tiles are redone in the new colour when shown."""
        self.color = tuple(color)
        if self.model is not None:
            for mode, buf in self._bufs.items():
                if not self._stale[mode].all():
                    buf[:] = coverage_rgba(np.ascontiguousarray(buf[..., 3]), self.color)
        self.update()

    def set_outline(self, on: bool) -> None:
        if bool(on) == self.outline:
            return
        self.outline = bool(on)
        self._catch_up()
        self.update()

    def redraw(self, rect=None) -> None:
        """Recolour the display pixels that ``rect`` (y0, x0, y1, x1, full resolution) touches, or all."""
        if self.model is None:
            self.update()
            return
        h, w = self.model.shape
        y0, x0, y1, x1 = rect if rect is not None else (0, 0, h, w)
        hidden = not self.outline
        span = self._widen(hidden, y0, x0, y1, x1)
        if span is not None:
            s = self._side
            self._stale[hidden][span[0] // s:(span[2] - 1) // s + 1, span[1] // s:(span[3] - 1) // s + 1] = True
        span = self._widen(self.outline, y0, x0, y1, x1)
        if span is None:
            return
        self._paint(self.outline, *span)
        y0, x0, y1, x1 = span
        k = self.k
        self.update(QRectF(x0 // k, y0 // k, -(-x1 // k) - x0 // k, -(-y1 // k) - y0 // k))

    def _edge_width(self) -> int:
        return max(2, int(max(self.model.shape) / 700))

    def _pad(self, outline: bool) -> int:
        """How far a mask pixel's change reaches in ``outline`` mode's picture."""
        return self._edge_width() if outline else 0

    def _widen(self, outline: bool, y0, x0, y1, x1):
        """The whole display blocks that a change of the mask inside (y0, x0, y1, x1) alters in ``outline``
        mode (outline pixels depend on their neighbours), clipped to the photo; None if empty."""
        h, w = self.model.shape
        k, pad = self.k, self._pad(outline)
        y0, x0, y1, x1 = max(0, y0 - pad), max(0, x0 - pad), min(h, y1 + pad), min(w, x1 + pad)
        if y0 >= y1 or x0 >= x1:
            return None
        return y0 // k * k, x0 // k * k, min(h, -(-y1 // k) * k), min(w, -(-x1 // k) * k)

    def _catch_up(self) -> None:
        """Redo the shown buffer's tiles that changed while it was hidden."""
        stale = self._stale[self.outline]
        if self.model is None or not stale.any():
            return
        h, w = self.model.shape
        s = self._side
        for ty in np.flatnonzero(stale.any(axis=1)):
            row = np.concatenate(([False], stale[ty], [False]))
            edges = np.flatnonzero(row[1:] != row[:-1])
            for a, b in zip(edges[::2], edges[1::2]):
                self._paint(self.outline, int(ty) * s, int(a) * s, min(h, (int(ty) + 1) * s), min(w, int(b) * s))
        stale[:] = False

    def _paint(self, outline: bool, y0: int, x0: int, y1: int, x1: int) -> None:
        """Recompute ``outline`` mode's display pixels of the full-resolution span (whole display blocks,
        except at the photo's last row and column). Each tile the span crosses whose neighbourhood has one
        value is painted in one colour; the others are computed a run of neighbours at a time (fewer, larger
        OpenCV calls)."""
        h, w = self.model.shape
        s, pad = self._side, self._pad(outline)
        mask = self.model.mask
        for ty in range(y0 // s, (y1 - 1) // s + 1):
            r0, r1 = max(y0, ty * s), min(y1, (ty + 1) * s)
            run = None  # x range of consecutive tiles to compute
            for tx in range(x0 // s, (x1 - 1) // s + 1):
                c0, c1 = max(x0, tx * s), min(x1, (tx + 1) * s)
                lo, hi = cv2.minMaxLoc(mask[max(0, r0 - pad):min(h, r1 + pad), max(0, c0 - pad):min(w, c1 + pad)])[:2]
                if lo == hi:
                    # One value all around: no edge within reach, and every block wholly blurred or wholly sharp.
                    self._solid(outline, r0, c0, r1, c1, bool(hi) and not outline)
                    if run is not None:
                        self._compute(outline, r0, run[0], r1, run[1])
                        run = None
                else:
                    run = (c0 if run is None else run[0], c1)
            if run is not None:
                self._compute(outline, r0, run[0], r1, run[1])

    def _display(self, outline: bool, y0: int, x0: int, y1: int, x1: int) -> np.ndarray:
        k = self.k
        return self._bufs[outline][y0 // k:-(-y1 // k), x0 // k:-(-x1 // k)]

    def _solid(self, outline: bool, y0: int, x0: int, y1: int, x1: int, blurred: bool) -> None:
        # One 32-bit store per pixel: assigning an RGBA tuple to the slice costs ~50 us a tile.
        pixel = np.array((*self.color, 255) if blurred else (0, 0, 0, 0), np.uint8).view(np.uint32)[0]
        self._display(outline, y0, x0, y1, x1).view(np.uint32)[:] = pixel

    def _compute(self, outline: bool, y0: int, x0: int, y1: int, x1: int) -> None:
        h, w = self.model.shape
        pad = self._pad(outline)
        py0, px0, py1, px1 = max(0, y0 - pad), max(0, x0 - pad), min(h, y1 + pad), min(w, x1 + pad)
        src = self.model.mask[py0:py1, px0:px1]
        if outline:
            kernel = np.ones((3, 3), np.uint8)
            src = cv2.morphologyEx(src, cv2.MORPH_GRADIENT, kernel, iterations=max(1, pad // 2))
        on = src[y0 - py0:y1 - py0, x0 - px0:x1 - px0]
        cover = reduce(on * np.uint8(255), self.k)  # share of each block that is blurred
        self._display(outline, y0, x0, y1, x1)[:] = coverage_rgba(cover, self.color)

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
        painter.drawImage(QRectF(r), self._images[self.outline], QRectF(r))
