"""The photo list: thumbnail, name and per-image status (new, in progress, done, or failed with
the reason as tooltip). Status is shown by a coloured marker and text so it reads without colour."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QIcon, QImage, QPixmap
from PySide6.QtWidgets import QListWidget, QListWidgetItem

from app.workers import THUMB

STATUS_MARK = {"new": ("○", "#9aa0a6"), "in progress": ("◐", "#f6bf26"), "done": ("●", "#34a853"),
               "failed": ("✕", "#ea4335")}


class ImageList(QListWidget):
    photo_selected = Signal(int)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setIconSize(QSize(THUMB, THUMB * 3 // 4))
        self.setUniformItemSizes(True)
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
        item = QListWidgetItem(name)
        self.addItem(item)
        self._names.append(name)
        self._status.append(status)
        self.set_status(len(self._names) - 1, status)

    def set_status(self, row: int, status: str, reason: str | None = None) -> None:
        self._status[row] = status
        mark, color = STATUS_MARK.get(status, ("?", "#888"))
        item = self.item(row)
        item.setText(f"{self._names[row]}\n{mark} {status}")
        item.setForeground(QBrush(QColor(color if status == "failed" else "#e8eaed")))
        item.setToolTip(reason or f"{self._names[row]}: {status}")
        if status == "failed":
            item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsSelectable)

    def status(self, row: int) -> str:
        return self._status[row]

    def set_thumbnail(self, row: int, thumb: np.ndarray) -> None:
        thumb = np.ascontiguousarray(thumb)
        h, w = thumb.shape[:2]
        qimg = QImage(thumb.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()
        self.item(row).setIcon(QIcon(QPixmap.fromImage(qimg)))

    def select(self, row: int) -> None:
        if 0 <= row < self.count():
            self.setCurrentRow(row)
