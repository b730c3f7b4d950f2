"""What the window says and asks when the project folder refuses writes: the edits stay in memory (the
session keeps them dirty), the title says NOT SAVED for as long as it lasts, one dialog says why, and
closing offers to save the project elsewhere instead of losing them."""

from __future__ import annotations

from typing import Callable

from PySide6.QtWidgets import QMessageBox, QWidget


class SaveGuard:
    def __init__(self, window: QWidget, session, save_as: Callable[[], bool]):
        self.window, self.session, self.save_as = window, session, save_as
        session.save_failed.connect(self.on_failed)

    def on_failed(self, reason: str) -> None:
        """Once per run of failed saves (the session says when one starts)."""
        self.window.setWindowTitle(f"dbd-studio — {self.session.store.folder.name} "
                                   "(NOT SAVED: the folder refuses writes)")
        QMessageBox.warning(self.window, "Autosave failed",
                            f"Your edits could not be saved:\n{reason}\n\nThey are kept in memory. Use File → Save "
                            "project as… to save them somewhere writable; autosave keeps retrying here.")

    def may_close(self) -> bool:
        """Save now; if the folder refuses, ask: save elsewhere (then check again), close anyway, or stay."""
        while not self.session.save_now():
            box = QMessageBox(QMessageBox.Icon.Warning, "Unsaved edits",
                              f"Your edits could not be saved:\n{self.session.save_error}", parent=self.window)
            save_as = box.addButton("Save project as…", QMessageBox.ButtonRole.AcceptRole)
            box.addButton("Close without saving", QMessageBox.ButtonRole.DestructiveRole)
            cancel = box.addButton(QMessageBox.StandardButton.Cancel)
            box.exec()
            if box.clickedButton() is cancel:
                return False
            if box.clickedButton() is not save_as:
                return True  # the user chose to leave the edits
            self.save_as()  # saved: the next save_now() says so; failed or cancelled: ask again
        return True
