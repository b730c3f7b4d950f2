"""The photo list: thumbnail, name and per-image status (new, in progress, done, or failed with
the reason as tooltip). Status is shown by a coloured marker and text so it reads without colour."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QIcon, QImage, QPainter, QPixmap
from PySide6.QtWidgets import QListWidget, QListWidgetItem

from app.workers import THUMB

STATUS_MARK = {"new": ("○", "#9aa0a6"), "in progress": ("◐", "#f6bf26"), "done": ("●", "#34a853"),
               "failed": ("✕", "#ea4335")}


class ImageList(QListWidget):
    photo_selected = Signal(int)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setIconSize(QSize(THUMB, THUMB * 3 // 4))
        # Uniform rows take the first row's size: every row gets an icon-sized placeholder until its
        # thumbnail arrives (a failed photo keeps it), so one unreadable file cannot shrink the list.
        self.setUniformItemSizes(True)
        self._placeholder = self._blank_icon("#3c4043")
        self._failed_icon = self._blank_icon("#5c2b29")
        self.setMinimumWidth(230)
        self.currentRowChanged.connect(lambda row: row >= 0 and self.photo_selected.emit(row))
        self._names: list[str] = []
        self._status: list[str] = []

    def set_photos(self, names: list[str], statuses: list[str]) -> None:
        self.blockSignals(True)
        self.clear()
        self._names, self._status = [], []
        for n, s in zip(names, statuses):
            self.append(n, s)
        self.blockSignals(False)

    def append(self, name: str, status: str) -> None:
        item = QListWidgetItem(self._placeholder, name)
        self.addItem(item)
        self._names.append(name)
        self._status.append(status)
        self.set_status(len(self._names) - 1, status)

    def set_status(self, row: int, status: str, reason: str | None = None) -> None:
        self._status[row] = status
        mark, color = STATUS_MARK.get(status, ("?", "#888"))
        item = self.item(row)
        line = f"{mark} {status}"
        if status == "failed" and reason:  # the reason names the file first: the row already does
            line += ": " + reason.split(": ", 1)[-1]
            item.setIcon(self._failed_icon)
        item.setText(f"{self._names[row]}\n{line}")
        item.setForeground(QBrush(QColor(color if status == "failed" else "#e8eaed")))
        item.setToolTip(reason or f"{self._names[row]}: {status}")
        if status == "failed":
            item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsSelectable)

    def _blank_icon(self, color: str) -> QIcon:
        pm = QPixmap(self.iconSize())
        pm.fill(QColor(color))
        return QIcon(pm)

    def status(self, row: int) -> str:
        return self._status[row]

    def set_thumbnail(self, row: int, thumb: np.ndarray) -> None:
        thumb = np.ascontiguousarray(thumb)
        h, w = thumb.shape[:2]
        qimg = QImage(thumb.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()
        # Centred on a canvas of the icon's size: a square or portrait thumbnail would otherwise pull its
        # row's text left of the other rows'.
        size = self.iconSize()
        scaled = QPixmap.fromImage(qimg).scaled(size, Qt.AspectRatioMode.KeepAspectRatio,
                                                Qt.TransformationMode.SmoothTransformation)
        canvas = QPixmap(size)
        canvas.fill(Qt.GlobalColor.transparent)
        painter = QPainter(canvas)
        painter.drawPixmap((size.width() - scaled.width()) // 2, (size.height() - scaled.height()) // 2, scaled)
        painter.end()
        self.item(row).setIcon(QIcon(canvas))

    def select(self, row: int) -> None:
        if 0 <= row < self.count():
            self.setCurrentRow(row)
