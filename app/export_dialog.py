"""Export the project's masks as a labelled dataset (CTCUG-style folder or HDF5) through
dbd_core.data.formats: original photo bytes, masks 1 = blurred stored blur-white (255 = blurred)."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (QApplication, QButtonGroup, QDialog, QDialogButtonBox, QFileDialog, QFormLayout,
                               QHBoxLayout, QLabel, QLineEdit, QMessageBox, QProgressDialog, QPushButton,
                               QRadioButton)

from dbd_core.annotate.export import export_project as write_project
from dbd_core.annotate.export import export_candidates, project_samples
from dbd_core.data.formats import is_dataset, is_empty_folder, is_h5_path
from dbd_core.errors import DBDError


def _in_memory(session) -> dict:
    return {name: model.mask for name, model in session.masks.items()}


def export_samples(session, only_done: bool):
    """The project's photos as dataset samples (the mask in memory if open, else the saved one)."""
    return project_samples(session.store, only_done, _in_memory(session), saved=session.persistent)


def export_project(session, path, only_done: bool, progress=None, cancel=None, overwrite=False,
                   errors: list[str] | None = None) -> int:
    """Write the samples; returns how many (0 and nothing written when cancelled or when there is none);
    photos whose saved mask cannot be read are left out and named in ``errors``."""
    return write_project(session.store, path, only_done, _in_memory(session), saved=session.persistent,
                         progress=progress, cancel=cancel, overwrite=overwrite, errors=errors)


def export_target(text: str, as_h5: bool) -> Path:
    """The destination for the chosen format: HDF5 gets a .h5 name, a folder must not look like one (the
    readers tell the two apart by that extension)."""
    p = Path(text.strip()).expanduser()
    if as_h5:
        return p if is_h5_path(p) else p.with_name(p.name + ".h5")
    if is_h5_path(p):
        raise ValueError(f"{p.name}: a folder named like an HDF5 file would be read as one; "
                         "choose the HDF5 format or another name")
    return p


class ExportDialog(QDialog):
    def __init__(self, session, parent=None):
        super().__init__(parent)
        self.session = session
        self.setWindowTitle("Export dataset")
        self.path = QLineEdit()
        self.path.textEdited.connect(self._follow_extension)
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        row = QHBoxLayout()
        row.addWidget(self.path, 1)
        row.addWidget(browse)
        self.h5 = QRadioButton("HDF5 file (.h5)")
        self.folder = QRadioButton("Folder (images/, gt/, dataset.json)")
        self.folder.setChecked(True)
        self.all_photos = QRadioButton("All photos with a mask")
        # not ``self.done``: that would hide QDialog.done(), which accept() and reject() call
        self.only_done = QRadioButton("Only photos marked done")
        self.only_done.setChecked(True)
        g1, g2 = QButtonGroup(self), QButtonGroup(self)
        for g, bs in ((g1, (self.folder, self.h5)), (g2, (self.all_photos, self.only_done))):
            for b in bs:
                g.addButton(b)
        form = QFormLayout(self)
        form.addRow("Format", self.folder)
        form.addRow("", self.h5)
        form.addRow("Photos", self.only_done)
        form.addRow("", self.all_photos)
        form.addRow("Destination", row)
        form.addRow(QLabel("Masks are written with polarity blur-white: 255 (or 1 in HDF5) = blurred."))
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self._run)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)
        self.last_message = ""  # what the last export said (tests read it; the user sees a message box)

    def _follow_extension(self, text: str) -> None:
        """Typing a .h5 name picks the HDF5 format; the radio buttons then say what will be written."""
        (self.h5 if is_h5_path(text.strip()) else self.folder).setChecked(True)

    def _browse(self) -> None:
        if self.h5.isChecked():
            p, _ = QFileDialog.getSaveFileName(self, "HDF5 file", "", "HDF5 (*.h5 *.hdf5)")
            if p and not is_h5_path(p):
                p += ".h5"
        else:
            p = QFileDialog.getExistingDirectory(self, "Parent folder")
            p = str(Path(p) / "dataset") if p else ""
        if p:
            self.path.setText(p)

    def _tell(self, title: str, text: str, warn: bool = False) -> None:
        self.last_message = text
        (QMessageBox.warning if warn else QMessageBox.information)(self, title, text)

    def _run(self) -> None:
        if not self.path.text().strip():
            self._tell("Export", "Choose a destination first.", warn=True)
            return
        try:
            target = export_target(self.path.text(), self.h5.isChecked())
        except ValueError as e:
            self._tell("Export", str(e), warn=True)
            return
        only_done = self.only_done.isChecked()
        if not export_candidates(self.session.store, only_done, _in_memory(self.session), self.session.persistent):
            self._tell("Export", "Nothing to export: no photo is marked done (Ctrl+Enter marks one), nothing "
                                 "written." if only_done else "Nothing to export: no photo has a mask yet, "
                                 "nothing written.", warn=True)
            return
        overwrite = is_empty_folder(target)
        if target.exists() and not overwrite:
            if not is_dataset(target):
                self._tell("Export", f"{target} exists and is not a dbd dataset: choose another destination "
                                     "(an export only replaces an earlier export).", warn=True)
                return
            answer = QMessageBox.question(self, "Export", f"{target} exists. Replace it with this export?")
            if answer != QMessageBox.StandardButton.Yes:
                return
            overwrite = True
        dlg = QProgressDialog("Exporting…", "Cancel", 0, 1, self)
        dlg.setWindowModality(Qt.WindowModality.WindowModal)
        dlg.setMinimumDuration(0)

        def progress(i, n):
            dlg.setMaximum(max(n, 1))
            dlg.setValue(i)
            QApplication.processEvents()  # keeps Cancel clickable between samples

        errors: list[str] = []
        try:
            n = export_project(self.session, target, only_done, progress, dlg.wasCanceled, overwrite=overwrite,
                               errors=errors)
        except DBDError as e:
            dlg.close()
            self._tell("Export failed", str(e), warn=True)
            return
        dlg.close()
        if not n:
            self._tell("Export", "Export cancelled; nothing written.")
            return
        left_out = ("\n\nLeft out (their saved masks cannot be read):\n" + "\n".join(errors)) if errors else ""
        self._tell("Export", f"Exported {n} photos to {target}{left_out}", warn=bool(errors))
        self.accept()
