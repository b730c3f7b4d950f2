"""Export the project's masks as a labelled dataset (CTCUG-style folder or HDF5) through
dbd_core.data.formats: original photo bytes, masks 1 = blurred stored blur-white (255 = blurred)."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (QApplication, QButtonGroup, QDialog, QDialogButtonBox, QFileDialog, QFormLayout,
                               QHBoxLayout, QLabel, QLineEdit, QMessageBox, QProgressDialog, QPushButton,
                               QRadioButton)

from dbd_core.data.formats import Sample, write_samples
from dbd_core.errors import DBDError


def export_samples(session, only_done: bool):
    """The project's photos as dataset samples (the mask in memory if open, else the saved one)."""
    out = []
    for e in session.store.photos:
        if e.error or (only_done and e.status != "done"):
            continue
        model = session.masks.get(e.name)
        mask = model.mask.copy() if model is not None else (session.store.load_mask(e) if session.persistent else None)
        if mask is None:
            continue  # never opened, nothing annotated: not a labelled sample
        prov = {"source": str(session.store.resolve(e)), "model": e.models or None, "threshold": e.threshold,
                "mask_source": e.source, "hand_edited": e.hand_edited, "status": e.status, "tool": "dbd-studio"}
        out.append(Sample(e.name, image_path=session.store.resolve(e), mask=mask, provenance=prov))
    return out


def export_project(session, path, only_done: bool, progress=None, cancel=None, overwrite=False) -> int:
    """Write the samples; returns how many (0 and nothing written when cancelled)."""
    samples = export_samples(session, only_done)
    ok = write_samples(path, samples, overwrite=overwrite, total=len(samples), progress=progress, cancel=cancel)
    return len(samples) if ok else 0


class ExportDialog(QDialog):
    def __init__(self, session, parent=None):
        super().__init__(parent)
        self.session = session
        self.setWindowTitle("Export dataset")
        self.path = QLineEdit()
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        row = QHBoxLayout()
        row.addWidget(self.path, 1)
        row.addWidget(browse)
        self.h5 = QRadioButton("HDF5 file (.h5)")
        self.folder = QRadioButton("Folder (images/, gt/, dataset.json)")
        self.folder.setChecked(True)
        self.all = QRadioButton("All photos with a mask")
        self.done = QRadioButton("Only photos marked done")
        self.done.setChecked(True)
        g1, g2 = QButtonGroup(self), QButtonGroup(self)
        for g, bs in ((g1, (self.folder, self.h5)), (g2, (self.all, self.done))):
            for b in bs:
                g.addButton(b)
        form = QFormLayout(self)
        form.addRow("Format", self.folder)
        form.addRow("", self.h5)
        form.addRow("Photos", self.done)
        form.addRow("", self.all)
        form.addRow("Destination", row)
        form.addRow(QLabel("Masks are written with polarity blur-white: 255 (or 1 in HDF5) = blurred."))
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self._run)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)

    def _browse(self) -> None:
        if self.h5.isChecked():
            p, _ = QFileDialog.getSaveFileName(self, "HDF5 file", "", "HDF5 (*.h5 *.hdf5)")
            if p and not p.endswith((".h5", ".hdf5")):
                p += ".h5"
        else:
            p = QFileDialog.getExistingDirectory(self, "Parent folder")
            p = str(Path(p) / "dataset") if p else ""
        if p:
            self.path.setText(p)

    def _run(self) -> None:
        target = self.path.text().strip()
        if not target:
            return
        dlg = QProgressDialog("Exporting…", "Cancel", 0, 1, self)
        dlg.setWindowModality(Qt.WindowModality.WindowModal)
        dlg.setMinimumDuration(0)

        def progress(i, n):
            dlg.setMaximum(max(n, 1))
            dlg.setValue(i)
            QApplication.processEvents()  # keeps Cancel clickable between samples

        try:
            n = export_project(self.session, target, self.done.isChecked(), progress, dlg.wasCanceled)
        except DBDError as e:
            dlg.close()
            QMessageBox.warning(self, "Export failed", str(e))
            return
        dlg.close()
        msg = f"Exported {n} photos to {target}" if n else "Export cancelled or nothing to export; nothing written."
        QMessageBox.information(self, "Export", msg)
        self.accept()
