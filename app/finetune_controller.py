"""Fine-tune from the studio: start a run on the project's done photos, follow it, adopt or discard the
result, and switch the model that makes the maps between the base model and adopted versions.

Engine work happens in dbd_core (annotate.finetune drives the run, annotate.versions keeps the
bookkeeping); this class only wires it to the window. A model swap bumps the provider's epoch, so maps
still being computed by the old model are dropped, and the current photo's maps are recomputed.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path

from PySide6.QtCore import QCoreApplication, QObject, Qt, QTimer, Signal
from PySide6.QtWidgets import QDockWidget, QMessageBox

from app.finetune_panel import FinetunePanel
from app.finetune_worker import FinetuneWorker
from app.model_menu import ModelMenu
from dbd_core.annotate.finetune import MIN_DONE_PHOTOS, check_ready, project_finetune
from dbd_core.annotate.versions import ModelVersions
from dbd_core.errors import DBDError, InputError

FINETUNE_ROLES = ("student", "teacher")


class FinetuneController(QObject):
    versions_changed = Signal()
    run_event = Signal(object)  # every event, after the panel showed it (tests, benchmarks)
    run_ended = Signal(object)  # the terminal event: done / cancelled / error

    def __init__(self, win, ask=None, inform=None):
        super().__init__(win)
        self.win = win
        provider = win.provider
        self.base_specs = dict(provider.specs)
        self.base_labels = {r: provider.label(r) for r in provider.roles}
        # Replaceable (tests): ask(text) -> bool, inform(text) -> None.
        self.ask = ask or (lambda text: QMessageBox.question(win, "dbd-studio", text) == QMessageBox.StandardButton.Yes)
        self.inform = inform or (lambda text: QMessageBox.information(win, "Fine-tune", text))
        self.config: dict | None = None  # None = the engine's recipe for the network (finetune_<arch>.toml)
        self.min_photos = MIN_DONE_PHOTOS
        self.worker: FinetuneWorker | None = None
        self.role: str | None = None
        self.candidate: dict | None = None  # the finished run's summary, until adopted or discarded
        self.skipped: list[str] = []  # the run's "skipped" lines: photos left out as unreadable

        self.panel = FinetunePanel([r for r in FINETUNE_ROLES if r in provider.roles])
        self.dock = QDockWidget("Fine-tune", win)
        self.dock.setObjectName("Fine-tune")
        self.dock.setWidget(self.panel)
        self.dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable)
        win.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.dock)
        mask_dock = win.findChild(QDockWidget, "Mask")
        if mask_dock is not None:
            win.tabifyDockWidget(mask_dock, self.dock)
            mask_dock.raise_()
        self.panel.start_requested.connect(self.start)
        self.panel.cancel_requested.connect(self.cancel)
        self.panel.adopt_requested.connect(self.adopt)
        self.panel.discard_requested.connect(self.discard)
        self.menu = ModelMenu(win, self)
        if hasattr(win.session, "project_changed"):  # an automatic or saved-as project brings its versions
            win.session.project_changed.connect(lambda *_: self.apply_active_versions())
        self.apply_active_versions()

    # ---------------------------------------------------------------- versions
    def versions(self) -> ModelVersions | None:
        s = self.win.session
        return ModelVersions(s.store) if s.persistent else None

    def apply_active_versions(self) -> None:
        """At start (and when the project changes): each role uses the project's active version."""
        vs = self.versions()
        for role in self.win.provider.roles:
            v = vs.active(role) if vs else None
            if v is not None:
                self._apply(role, str(v.path), v.name)
        self.versions_changed.emit()

    def active_name(self, role: str) -> str | None:
        vs = self.versions()
        v = vs.active(role) if vs else None
        return v.name if v else None

    def switch(self, role: str, name: str | None) -> None:
        """Make ``role`` use an adopted version (or the base model for None) and recompute its maps."""
        vs = self.versions()
        try:
            v = vs.set_active(role, name) if vs else None
        except (DBDError, KeyError) as e:
            self.inform(str(e))
            return
        if v is None:
            self._apply(role, self.base_specs[role], self.base_labels[role])
        else:
            self._apply(role, str(v.path), v.name)
        self.versions_changed.emit()

    def _apply(self, role: str, spec, label: str) -> None:
        self.win.provider.set_spec(role, spec, label)
        # Results of the old model already queued to this thread arrive before this posted call; it
        # then clears them, so no old map survives the swap.
        QTimer.singleShot(0, lambda: self.refresh(role))

    def refresh(self, role: str) -> None:
        """Drop ``role``'s maps made by its previous model and ask for the current photo's again."""
        win = self.win
        win.maps.discard_where(lambda key: key[1] == role)
        win.display.discard_where(lambda key: key[1] == "diff")  # made from the old model's map
        for d in (win.failures, win.map_seconds):
            for key in [k for k in d if k[1] == role]:
                del d[key]
        win.status_model.setText(win.provider.summary())
        if 0 <= win.row < len(win.entries):
            win._show_map(win.path_of(win.row), role)
            win.request_current()

    # ---------------------------------------------------------------- runs
    @property
    def running(self) -> bool:
        return self.worker is not None and self.worker.isRunning()

    def parent_weights(self, role: str) -> Path:
        """The weights file the role's maps come from now: what a fine-tune starts from."""
        from dbd_core.weights import SHIPPED_MODELS, require_shipped

        spec = self.win.provider.specs[role]
        if isinstance(spec, (str, Path)):
            if str(spec) == "lbp":
                raise DBDError(f"the {role} view shows the LBP baseline, which has no weights to fine-tune; "
                               f"start the studio with a network (--{role} FILE)")
            if str(spec) in SHIPPED_MODELS:
                return require_shipped(str(spec))
            if not Path(spec).is_file():
                raise InputError(spec, "no such weights file")
            return Path(spec)
        src = getattr(spec, "source", None)
        if src and Path(src).is_file():
            return Path(src)
        raise DBDError(f"the {role} model ({self.win.provider.label(role)}) is not a weights file; nothing to fine-tune")

    def start(self, role: str = "student") -> bool:
        """Start a run; False (with a message to the user) when it cannot start."""
        if self.running:
            return False
        if self.candidate is not None:
            self.inform(f"Adopt or discard {Path(self.candidate['output']).stem} first.")
            return False
        session = self.win.session
        if not session.persistent:
            self.inform("Fine-tuning keeps its versions in a project folder: File → Save project as… first.")
            return False
        session.save_now()  # the run reads the saved masks
        try:
            check_ready(session.store, self.min_photos)
            parent = self.parent_weights(role)
        except DBDError as e:
            self.inform(str(e))
            return False
        store, cfg, threads = session.store, copy.deepcopy(self.config), self.win.provider.threads
        self.role = role
        self.worker = FinetuneWorker(lambda cancel: project_finetune(store, role, parent, cancel, cfg, threads,
                                                                     self.min_photos), self)
        self.worker.event.connect(self._on_event)
        self.panel.reset()
        self.skipped = []
        self.panel.set_running(True)
        self.dock.raise_()
        self.worker.start()
        return True

    def cancel(self) -> None:
        if self.running:
            self.worker.cancel()
            self.panel.status.setText("Cancelling after the current step…")
            self.panel.cancel.setEnabled(False)

    def _on_event(self, ev: dict) -> None:
        self.panel.show_event(ev)
        kind = ev.get("type")
        if kind == "check":  # the engine reads every photo of the snapshot once before training
            self.panel.progress.setRange(0, max(1, ev["total"]))
            self.panel.progress.setValue(ev["done"])
            self.panel.progress.setFormat("checking photos %v/%m")
            self.panel.status.setText("Reading the photos and masks…")
        elif kind == "skipped":  # a photo or mask that cannot be read: the engine left it out, the run goes on
            self.skipped.append(ev["message"])
            self.panel.result.setText("Left out (unreadable):\n" + "\n".join(self.skipped))
        if kind == "done":
            self._finished(ev["summary"])
        if kind in ("done", "cancelled", "error"):
            self.panel.set_running(False)
            self.panel.show_decision(self.candidate is not None)
            self.run_ended.emit(ev)
        self.run_event.emit(ev)

    def _finished(self, summary: dict) -> None:
        # The engine writes a version only with finite held-out metrics (a diverged run ends in "error").
        before, after = summary.get("before") or {}, summary.get("after") or {}
        self.candidate = summary
        self.panel.show_metrics(before, after)
        name = Path(summary["output"]).stem
        self.panel.show_finished(summary.get("steps"), bool(summary.get("stopped_early")))
        d = after.get("mae", math.nan) - before.get("mae", math.nan)
        head = (f"Done in {summary.get('wall_s', 0):.0f} s: {name} on {summary['n_val']} held-out photo(s) — MAE "
                f"{before.get('mae', math.nan):.4f} → {after.get('mae', math.nan):.4f}")
        if d < 0:
            self.panel.status.setText(f"{head} (better). Adopt it to make the {self.role} maps with it.")
            self.panel.adopt.setText("Adopt new version")
        else:  # the run kept its starting weights, or got worse: say so, and make Discard the obvious choice
            self.panel.status.setText(f"{head}: no better on the held-out photos. Discard keeps the current model; "
                                      "more corrected photos give the next run more to learn from.")
            self.panel.adopt.setText("Adopt anyway")

    def adopt(self) -> None:
        if self.candidate is None:
            return
        vs = self.versions()
        try:
            v = vs.adopt(self.role, self.candidate["output"])
        except DBDError as e:
            self.inform(str(e))
            return
        self.candidate = None
        self.panel.show_decision(False)
        self.panel.set_running(False)
        self.switch(self.role, v.name)
        self.panel.result.setText(f"Adopted {v.name}: the {self.role} maps are recomputed with it. "
                                  f"Models → {self.role} switches back.")

    def discard(self) -> None:
        if self.candidate is None:
            return
        self._discard_file(self.candidate["output"])
        self.candidate = None
        self.panel.show_decision(False)
        self.panel.set_running(False)
        self.panel.result.setText("Discarded; the current model is unchanged.")

    def _discard_file(self, output: str) -> None:
        vs = self.versions()
        if vs is not None:
            try:
                vs.discard(output)
            except DBDError as e:
                self.inform(str(e))

    def may_close(self) -> bool:
        """Before the window closes: a running fine-tune is cancelled (if the user agrees) and waited for;
        an unadopted result is adopted or discarded."""
        if self.running:
            if not self.ask("A fine-tune is running. Cancel it and close?"):
                return False
            self.worker.cancel()
            # No time limit: the engine stops at the next step boundary, and destroying a running
            # QThread would abort the process.
            self.worker.wait()
            QCoreApplication.processEvents()  # its last events (a run may have finished meanwhile)
        if self.candidate is not None:
            if self.ask(f"Adopt the fine-tuned {Path(self.candidate['output']).stem} before closing? "
                        "(No discards it.)"):
                self.adopt()
            else:
                self.discard()
        return True
