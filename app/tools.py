"""Mouse tools on the photo view: brush (paint blurred), eraser (paint sharp), flood fill and
polygon / lasso fill. They translate mouse events into MaskModel edits; drawing and history are the
model's job. Left button edits, right/middle button and wheel still pan and zoom.

A drag is one stroke and one undo step: begin() on the first drag event, one interpolated segment
per mouse event (so fast moves leave no gaps), end() on release.
"""

from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtCore import QObject, QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QPen, QColor
from PySide6.QtWidgets import QGraphicsEllipseItem

TOOLS = ("brush", "eraser", "fill", "polygon", "pan")
MIN_RADIUS, MAX_RADIUS = 1, 500


class ToolViewBox(pg.ViewBox):
    """A ViewBox that hands left-button mouse work to the active tool."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.tool: ToolController | None = None

    def _tool_takes(self, ev) -> bool:
        return self.tool is not None and self.tool.editing() and ev.button() == Qt.MouseButton.LeftButton

    def mouseDragEvent(self, ev, axis=None):
        if self._tool_takes(ev):
            ev.accept()
            self.tool.drag(ev, self)
        else:
            super().mouseDragEvent(ev, axis)

    def mouseClickEvent(self, ev):
        if self._tool_takes(ev):
            ev.accept()
            self.tool.click(ev, self)
        else:
            super().mouseClickEvent(ev)

    def hoverEvent(self, ev):
        if self.tool is not None:
            self.tool.hover(None if ev.isExit() else self.mapToView(ev.pos()))


class ToolController(QObject):
    edited = Signal()  # a stroke / fill finished and changed the mask
    tool_changed = Signal(str)
    radius_changed = Signal(int)

    def __init__(self, viewbox: ToolViewBox, parent=None):
        super().__init__(parent)
        self.vb = viewbox
        viewbox.tool = self
        self.model = None
        self.tool = "brush"
        self.radius = 12
        self._last: tuple[float, float] | None = None
        self._poly: list[tuple[float, float]] = []
        self._poly_value = 1
        self.cursor = QGraphicsEllipseItem()
        pen = QPen(QColor(0, 230, 255))
        pen.setCosmetic(True)
        pen.setWidthF(1.5)
        self.cursor.setPen(pen)
        self.cursor.setZValue(20)
        self.cursor.hide()
        viewbox.addItem(self.cursor, ignoreBounds=True)
        self.path = pg.PlotCurveItem(pen=pg.mkPen((0, 230, 255), width=2))
        self.path.setZValue(21)
        viewbox.addItem(self.path, ignoreBounds=True)

    # ---------------------------------------------------------------- settings
    def editing(self) -> bool:
        return self.model is not None and self.tool != "pan"

    def set_tool(self, tool: str) -> None:
        if tool not in TOOLS:
            raise ValueError(tool)
        self.cancel_polygon()
        self.tool = tool
        self.cursor.setVisible(False)
        self.tool_changed.emit(tool)

    def set_radius(self, r: int) -> None:
        r = int(min(MAX_RADIUS, max(MIN_RADIUS, r)))
        if r != self.radius:
            self.radius = r
            self.radius_changed.emit(r)
            self._place_cursor(self.cursor.rect().center() if self.cursor.isVisible() else None)

    def grow(self, factor: float) -> None:
        """``]`` and ``[``: change the brush size by a ratio so big and small sizes are both quick;
        always by at least one pixel so small brushes do not get stuck."""
        r = self.radius
        self.set_radius(max(r + 1, round(r * factor)) if factor > 1 else min(r - 1, round(r * factor)))

    # ---------------------------------------------------------------- cursor
    def hover(self, pos: QPointF | None) -> None:
        self._place_cursor(pos if self.tool in ("brush", "eraser") else None)

    def _place_cursor(self, pos) -> None:
        if pos is None or self.model is None:
            self.cursor.hide()
            return
        r = self.radius
        self.cursor.setRect(QRectF(pos.x() - r, pos.y() - r, 2 * r, 2 * r))
        self.cursor.show()

    # ---------------------------------------------------------------- mouse
    def _value(self, ev) -> int:
        if self.tool == "eraser":
            return 0
        # Shift inverts the polygon / lasso (fill sharp) like a modifier on a selection tool.
        return 0 if ev.modifiers() & Qt.KeyboardModifier.ShiftModifier else 1

    def drag(self, ev, vb) -> None:
        p = vb.mapToView(ev.pos())
        cur = (p.x(), p.y())
        if self.tool in ("brush", "eraser"):
            self._place_cursor(p)
            if ev.isStart():
                s = vb.mapToView(ev.buttonDownPos())
                self._last = (s.x(), s.y())
                self.model.begin("hand")
            if self._last is not None:
                self.model.paint_segment(self._last, cur, self.radius, self._value(ev))
                self._last = cur
            if ev.isFinish():
                self._last = None
                if self.model.end() is not None:
                    self.edited.emit()
        elif self.tool == "polygon":  # lasso: freehand outline, filled on release
            if ev.isStart():
                s = vb.mapToView(ev.buttonDownPos())
                self._poly = [(s.x(), s.y())]
                self._poly_value = self._value(ev)
            self._poly.append(cur)
            self._show_path()
            if ev.isFinish():
                self.close_polygon()

    def click(self, ev, vb) -> None:
        p = vb.mapToView(ev.pos())
        x, y = p.x(), p.y()
        if self.tool in ("brush", "eraser"):
            self.model.begin("hand")
            self.model.paint_segment((x, y), (x, y), self.radius, self._value(ev))
            self._finish()
        elif self.tool == "fill":
            h, w = self.model.shape
            if 0 <= x < w and 0 <= y < h:
                # Clicking a region flips it: fill a hole in the mask, or clear a stray blob.
                value = 1 - int(self.model.mask[int(y), int(x)])
                self.model.begin("hand")
                self.model.flood_fill(x, y, value)
                self._finish()
        elif self.tool == "polygon":
            if ev.double():
                self.close_polygon()
                return
            if not self._poly:
                self._poly_value = self._value(ev)
            self._poly.append((x, y))
            self._show_path()

    def _finish(self) -> None:
        if self.model.end() is not None:
            self.edited.emit()

    def _show_path(self) -> None:
        if self._poly:
            xs, ys = zip(*(self._poly + self._poly[:1]))
            self.path.setData(list(xs), list(ys))
        else:
            self.path.setData([], [])

    def close_polygon(self) -> None:
        """Fill the polygon being drawn (double-click or Enter)."""
        pts, self._poly = self._poly, []
        self._show_path()
        if self.model is not None and len(pts) >= 3:
            self.model.begin("hand")
            self.model.fill_polygon(pts, self._poly_value)
            self._finish()

    def cancel_polygon(self) -> None:
        self._poly = []
        self._show_path()
