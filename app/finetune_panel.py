"""The Fine-tune dock: model choice, start/cancel, progress with ETA, live loss and validation curves,
and the before/after metrics with Adopt / Discard. A view: it shows events and emits intentions;
``app.finetune_controller`` decides what happens."""

from __future__ import annotations

import math

import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QComboBox, QHBoxLayout, QHeaderView, QLabel, QProgressBar, QPushButton,
                               QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget)

# (key in the metrics dict, label, True if higher is better)
METRICS = (("mae", "MAE", False), ("f_beta", "F-beta @0.5", True), ("max_f", "max F", True),
           ("iou", "IoU @0.5", True), ("auc_roc", "ROC AUC", True))


def fmt_eta(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "–"
    s = int(round(seconds))
    return f"{s // 60}:{s % 60:02d}"


class FinetunePanel(QWidget):
    start_requested = Signal(str)  # role
    cancel_requested = Signal()
    adopt_requested = Signal()
    discard_requested = Signal()

    def __init__(self, roles=("student", "teacher"), parent=None):
        super().__init__(parent)
        self.role = QComboBox()
        self.role.addItems(list(roles))
        self.start = QPushButton("Fine-tune")
        self.start.setToolTip("Train the chosen model on the photos marked done (a new version; the current "
                              "model stays until you adopt it)")
        self.start.clicked.connect(lambda: self.start_requested.emit(self.role.currentText()))
        self.cancel = QPushButton("Cancel")
        self.cancel.setEnabled(False)
        self.cancel.clicked.connect(self.cancel_requested)
        top = QHBoxLayout()
        top.addWidget(QLabel("Model"))
        top.addWidget(self.role, 1)
        top.addWidget(self.start)
        top.addWidget(self.cancel)

        self.progress = QProgressBar()
        self.progress.setTextVisible(True)
        self.progress.setFormat("idle")
        self.status = QLabel("Mark corrected photos done, then Fine-tune.", wordWrap=True)
        self.loss_label = QLabel("")

        self.plot = pg.PlotWidget()
        self.plot.setMinimumHeight(170)
        self.plot.setLabel("bottom", "step")
        self.plot.setLabel("left", "loss")
        self.plot.showGrid(x=True, y=True, alpha=0.25)
        self.train_curve = self.plot.plot([], [], pen=pg.mkPen("#8ab4f8", width=2), name="train loss")
        self.val_curve = self.plot.plot([], [], pen=pg.mkPen("#f6bf26", width=2), symbol="o", symbolSize=6,
                                        symbolBrush="#f6bf26", name="held-out loss")
        # a legend inside the plot sat on the curves; the key lives above it instead
        self.legend = QLabel('<span style="color:#8ab4f8">━ train loss</span> &nbsp; '
                             '<span style="color:#f6bf26">━● held-out loss</span>')
        self.train_xy: tuple[list, list] = ([], [])
        self.val_xy: tuple[list, list] = ([], [])

        self.table = QTableWidget(len(METRICS), 3)
        self.table.setHorizontalHeaderLabels(["before", "after", "change"])
        self.table.setVerticalHeaderLabels([m[1] for m in METRICS])
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Stretch)  # three columns in the dock's width
        self.table.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.table.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.table.resizeRowsToContents()
        rows = sum(self.table.rowHeight(r) for r in range(self.table.rowCount()))
        self.table.setFixedHeight(rows + header.sizeHint().height() + 2 * self.table.frameWidth())
        self.result = QLabel("", wordWrap=True)
        self.adopt = QPushButton("Adopt new version")
        self.discard = QPushButton("Discard")
        self.adopt.clicked.connect(self.adopt_requested)
        self.discard.clicked.connect(self.discard_requested)
        decide = QHBoxLayout()
        decide.addWidget(self.adopt)
        decide.addWidget(self.discard)

        lay = QVBoxLayout(self)
        lay.addLayout(top)
        lay.addWidget(self.progress)
        lay.addWidget(self.status)
        lay.addWidget(self.loss_label)
        lay.addWidget(self.legend)
        lay.addWidget(self.plot, 1)
        lay.addWidget(QLabel("Held-out corrected photos"))
        lay.addWidget(self.table)
        lay.addWidget(self.result)
        lay.addLayout(decide)
        self.show_decision(False)

    # ---------------------------------------------------------------- state
    def set_running(self, running: bool) -> None:
        self.start.setEnabled(not running)
        self.role.setEnabled(not running)
        self.cancel.setEnabled(running)

    def show_decision(self, pending: bool) -> None:
        self.adopt.setEnabled(pending)
        self.discard.setEnabled(pending)
        if pending:
            self.start.setEnabled(False)  # one candidate at a time: adopt or discard it first

    def reset(self) -> None:
        self.train_xy, self.val_xy = ([], []), ([], [])
        self.train_curve.setData([], [])
        self.val_curve.setData([], [])
        self.table.clearContents()
        self.result.setText("")
        self.loss_label.setText("")
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.progress.setFormat("starting…")

    # ---------------------------------------------------------------- events
    def show_event(self, ev: dict) -> None:
        kind = ev.get("type")
        if kind == "export":
            n = max(1, ev["total"])
            self.progress.setRange(0, n)
            self.progress.setValue(ev["done"])
            self.progress.setFormat(f"preparing photos %v/%m")
            self.status.setText("Writing the training snapshot of the done photos…")
        elif kind == "start":
            self.progress.setRange(0, max(1, ev["total_steps"]))
            self.progress.setValue(ev.get("start_step", 0))
            self.progress.setFormat("step %v/%m")
            self.status.setText(f"Training on {ev['n_train']} photos, {ev['n_val']} held out for the metrics.")
        elif kind == "step":
            self.progress.setValue(ev["step"])
            self.progress.setFormat(f"step %v/%m · ETA {fmt_eta(ev.get('eta_s'))}")
            total = ev["losses"].get("total", sum(ev["losses"].values()))
            self.train_xy[0].append(ev["step"])
            self.train_xy[1].append(total)
            self.train_curve.setData(*self.train_xy)
            self.loss_label.setText(f"loss {total:.4f} · lr {ev.get('lr', 0):.2e} · "
                                    f"{ev.get('samples_per_s', 0):.1f} crops/s")
        elif kind == "val" and "val_loss" in ev.get("metrics", {}):
            self.val_xy[0].append(ev["step"])
            self.val_xy[1].append(ev["metrics"]["val_loss"])
            self.val_curve.setData(*self.val_xy)
        elif kind == "cancelled":
            self.progress.setFormat("cancelled")
            self.status.setText("Cancelled. The current model is unchanged.")
        elif kind == "error":
            self.progress.setFormat("failed")
            self.status.setText(f"Fine-tune stopped: {ev.get('message')}. Nothing was adopted.")

    def show_finished(self, steps: int | None, stopped_early: bool) -> None:
        """The bar says the run is over: full, and why it ended where it did."""
        total = self.progress.maximum()
        self.progress.setValue(total)
        if stopped_early and steps is not None:
            self.progress.setFormat(f"done · stopped early at step {steps} of {total} (held-out photos stopped improving)")
        else:
            self.progress.setFormat(f"done · {steps if steps is not None else total} steps")

    def show_metrics(self, before: dict, after: dict) -> None:
        for row, (key, _label, higher) in enumerate(METRICS):
            b, a = before.get(key), after.get(key)
            cells = [f"{b:.4f}" if b is not None else "–", f"{a:.4f}" if a is not None else "–", ""]
            better = None
            if b is not None and a is not None:
                cells[2] = f"{a - b:+.4f}"
                better = (a > b) if higher else (a < b)
            for col, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if col == 2 and better is not None and abs(a - b) > 1e-9:
                    item.setForeground(pg.mkColor("#81c995" if better else "#f28b82"))
                self.table.setItem(row, col, item)
