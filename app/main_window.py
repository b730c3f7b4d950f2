"""The main window: composition and wiring only. Views, tools, the mask session, the photo list
and the worker are separate pieces (see their modules); this class connects their signals."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtCore import QEventLoop, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (QApplication, QDockWidget, QFileDialog, QFrame, QLabel, QMainWindow, QMessageBox,
                               QScrollArea)

from app import gc_policy
from app.image_list import ImageList
from app.mask_panel import MaskPanel
from app.models import ModelProvider
from app.save_guard import SaveGuard
from app.session import AnnotationSession
from app.tools import ToolController
from app.display import difference, display_factor, lookup_table, reduce
from app.views import DIFF_CMAP, MAP_CMAP, ViewGrid
from app.workers import MapWorker, ResultCache
from dbd_core.annotate import ProjectStore
from dbd_core.errors import DBDError
from dbd_core.images import expand_paths, is_image_file


EMPTY_HINT = "No photos yet.\n\nOpen photos (Ctrl+O) or a folder (Ctrl+Shift+O),\nor drop them on this window."


class MainWindow(QMainWindow):
    maps_settled = Signal(str)  # every map of the current photo is computed or has failed

    def __init__(self, provider: ModelProvider | None = None, project: str | Path | None = None, confirm=None):
        super().__init__()
        self.provider = provider or ModelProvider()
        self.setWindowTitle("dbd-studio")
        self.resize(1500, 900)
        self.setAcceptDrops(True)
        persistent = project is not None
        store = ProjectStore.open(project) if persistent else ProjectStore(Path.cwd())
        self.images = ResultCache(max_bytes=600_000_000)
        self.maps = ResultCache()
        # Display levels (app/display.py) of photos (key: path) and maps (key: (path, role)) as
        # (array, id of the full-size array it was made from): a swapped model's map never shows an old level.
        self.display = ResultCache(max_bytes=400_000_000)
        self.map_seconds: dict[tuple[str, str], float] = {}
        self._loaded_masks: dict[str, tuple] = {}  # path -> (mask file, mask, error, overlay rgba) from the worker
        self.failures: dict[tuple[str, str], str] = {}
        self.row = -1

        self.views = ViewGrid()
        self.setCentralWidget(self.views)
        self.tools = ToolController(self.views.photo.vb, self)
        self.list = ImageList()
        self.panel = MaskPanel()
        for title, widget, area in (("Photos", self.list, Qt.DockWidgetArea.LeftDockWidgetArea),
                                    ("Mask", self.panel, Qt.DockWidgetArea.RightDockWidgetArea)):
            dock = QDockWidget(title, self)
            dock.setObjectName(title)
            if widget is self.panel:  # on a short screen the controls scroll instead of setting the window's height
                scroll = QScrollArea(widgetResizable=True, frameShape=QFrame.Shape.NoFrame)
                scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
                scroll.setWidget(widget)
                widget = scroll
            dock.setWidget(widget)
            dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable)
            self.addDockWidget(area, dock)
        self.status_model, self.status_time, self.status_size = QLabel(), QLabel(), QLabel()
        for w in (self.status_model, self.status_time, self.status_size):
            self.statusBar().addPermanentWidget(w)
        self.status_model.setText(self.provider.summary())

        self.session = AnnotationSession(store, persistent, self.maps_for, confirm or self._ask,
                                         model_labels=lambda: {r: self.provider.label(r) for r in self.provider.roles})
        self.worker = MapWorker(self.provider, map_lut=lookup_table(MAP_CMAP), diff_lut=lookup_table(DIFF_CMAP))
        self._wire()
        self._menus()
        from app.finetune_controller import FinetuneController

        self.finetune = FinetuneController(self)  # Fine-tune dock + Models menu; applies adopted versions
        # The tabbed right dock would otherwise take the fine-tune panel's wide size hint and squeeze the views.
        right = [d for d in self.findChildren(QDockWidget)
                 if self.dockWidgetArea(d) == Qt.DockWidgetArea.RightDockWidgetArea]
        self.resizeDocks(right, [380] * len(right), Qt.Orientation.Horizontal)
        self.worker.start()
        if persistent:
            self._on_project(str(store.folder), False)
        if store.photos:
            self._load_entries(store.photos, select=int(store.view.get("current", 0)))
        else:
            self.views.photo.show_message(EMPTY_HINT)
        QTimer.singleShot(0, gc_policy.freeze_long_lived)  # start-up objects: out of the GC's walk

    # ---------------------------------------------------------------- wiring
    def _wire(self) -> None:
        w, p, s, t = self.worker, self.panel, self.session, self.tools
        w.image_ready.connect(self._on_image)
        w.mask_ready.connect(self._on_mask)
        w.image_failed.connect(self._on_image_failed)
        w.map_ready.connect(self._on_map)
        w.diff_ready.connect(self._on_diff)
        w.map_failed.connect(self._on_map_failed)
        w.thumb_ready.connect(self._on_thumb)
        self.list.photo_selected.connect(self.select)
        p.source_changed.connect(s.set_source)
        p.threshold_changed.connect(s.set_threshold)
        p.otsu_requested.connect(self._otsu)
        p.reseed_requested.connect(s.reseed)
        p.opacity_changed.connect(self.views.overlay.setOpacity)
        p.outline_toggled.connect(self.views.overlay.set_outline)
        p.color_selected.connect(self._set_mask_color)
        p.tool_selected.connect(t.set_tool)
        p.radius_selected.connect(t.set_radius)
        p.undo_requested.connect(s.undo)
        p.redo_requested.connect(s.redo)
        p.status_selected.connect(self._set_status)
        t.edited.connect(s.hand_edit_done)
        t.tool_changed.connect(p.show_tool)
        t.radius_changed.connect(p.show_radius)
        s.state_changed.connect(self._show_mask_state)
        s.status_changed.connect(self._on_status)
        s.message.connect(lambda m: self.statusBar().showMessage(m, 8000))
        s.warning.connect(self._on_warning)
        s.project_changed.connect(self._on_project)
        self.save_guard = SaveGuard(self, s, self._save_as)
        s.save_recovered.connect(lambda: self._on_project(str(s.store.folder), s.auto))
        p.show_tool(t.tool)

    def _menus(self) -> None:
        def act(menu, text, keys, slot):
            a = QAction(text, self)
            if keys:
                a.setShortcuts([QKeySequence(k) for k in keys])
            a.triggered.connect(slot)
            menu.addAction(a)
            self.addAction(a)  # shortcuts work whatever widget has focus
            return a

        f = self.menuBar().addMenu("&File")
        act(f, "Open photos…", ["Ctrl+O"], self._open_files)
        act(f, "Open folder…", ["Ctrl+Shift+O"], self._open_folder)
        act(f, "Save project as…", ["Ctrl+Shift+S"], self._save_as)
        act(f, "Export dataset…", ["Ctrl+E"], self._export)
        act(f, "Quit", ["Ctrl+Q"], self.close)
        n = self.menuBar().addMenu("&Navigate")
        act(n, "Next photo", ["D", "PgDown"], lambda: self.select(self._step(1)))
        act(n, "Previous photo", ["A", "PgUp"], lambda: self.select(self._step(-1)))
        act(n, "Next not done", ["Shift+D", "Ctrl+PgDown"], lambda: self.select(self.next_not_done()))
        act(n, "Mark done and go to next not done", ["Ctrl+Return", "Ctrl+Enter"], self._done_next)  # Enter: keypad
        e = self.menuBar().addMenu("&Edit")
        act(e, "Undo", ["Ctrl+Z"], self.session.undo)
        act(e, "Redo", ["Ctrl+Shift+Z", "Ctrl+Y"], self.session.redo)
        for tool, key in (("brush", "B"), ("eraser", "E"), ("fill", "F"), ("polygon", "G"), ("pan", "H")):
            act(e, f"Tool: {tool}", [key], lambda _=False, x=tool: self.tools.set_tool(x))
        act(e, "Smaller brush", ["["], lambda: self.tools.grow(1 / 1.25))
        act(e, "Larger brush", ["]"], lambda: self.tools.grow(1.25))
        act(e, "Close polygon", ["Return", "Enter"], self.tools.close_polygon)
        act(e, "Cancel polygon", ["Escape"], self.tools.cancel_polygon)
        act(e, "Toggle outline", ["O"], lambda: self.panel.outline.toggle())
        act(e, "Auto threshold (Otsu)", ["T"], self._otsu)
        act(e, "Lower threshold", [","], lambda: self.panel.spin.stepBy(-1))
        act(e, "Raise threshold", ["."], lambda: self.panel.spin.stepBy(1))
        act(e, "Re-seed from the map (discards hand edits)", ["R"], self.panel.reseed.click)
        v = self.menuBar().addMenu("&View")
        act(v, "Fit to window", ["Home", "Ctrl+0"], self.views.refit)
        act(v, "Zoom in", ["+", "=", "Ctrl++"], lambda: self.views.zoom(1.25))
        act(v, "Zoom out", ["-", "Ctrl+-"], lambda: self.views.zoom(1 / 1.25))

    # ---------------------------------------------------------------- photos
    def add_paths(self, paths) -> None:
        """Photos and folders (expanded); already-listed photos are skipped."""
        problems: list = []  # an unreadable folder, links to nowhere, a folder with no photos: said, not fatal
        files = [p for p in expand_paths(paths, problems=problems) if p.is_dir() is False]
        reopened = self.session.ensure_project(paths) if files else []  # automatic project, if none yet
        added = self.session.store.add_photos(files)
        self._load_entries(reopened + added, select=self.session.store.view.get("current", 0) if reopened else None)
        self.session.save_now()
        if problems:  # last, so the project's own status line does not cover it
            text = "; ".join(f"{p}: {why}" for p, why in problems[:3])
            self.statusBar().showMessage(text + (f" (+{len(problems) - 3} more)" if len(problems) > 3 else ""), 15000)

    def _on_project(self, folder: str, auto: bool) -> None:
        kind = "automatic project" if auto else "project"
        self.setWindowTitle(f"dbd-studio — {Path(folder).name} ({kind}, autosaved)")
        self.statusBar().showMessage(f"Autosaving to {kind} {folder}" +
                                     (" — File → Save project as… to name it" if auto else ""), 15000)

    def _set_mask_color(self, name: str) -> None:
        from app.display import MASK_COLORS

        color = MASK_COLORS[name]
        self.worker.mask_color = color
        self.views.overlay.set_color(color)
        self.views.photo.set_legend_color(color)

    def _on_warning(self, text: str) -> None:
        self.statusBar().showMessage(text, 60000)
        QMessageBox.warning(self, "dbd-studio", text)

    def _load_entries(self, entries, select) -> None:
        for e in entries:
            self.list.append(e.name, "failed" if e.error else e.status)
            self.worker.request_thumbnail(str(self.session.store.resolve(e)))
        if select is not None or self.row < 0:
            self.select(select or 0)

    @property
    def entries(self):
        return self.session.store.photos

    def path_of(self, row: int) -> str:
        return str(self.session.store.resolve(self.entries[row]))

    def select(self, row: int | None) -> None:
        if row is None or not (0 <= row < len(self.entries)):
            return
        if row != self.list.currentRow():
            self.list.select(row)  # comes back here through photo_selected
            if self.list.currentRow() == row:
                return
        self.row = row
        self.session.store.view["current"] = row
        entry, path = self.entries[row], self.path_of(row)
        self.panel.show_state(entry.threshold, entry.source, entry.status, entry.hand_edited)
        rgb = self.images.get(path)
        self._loaded_masks = {k: v for k, v in self._loaded_masks.items() if k == path}
        if rgb is not None:
            self._show_photo(path, rgb)
        else:
            self.views.photo.show_message("Loading photo…")
            self.views.overlay.set_model(None)
            self.tools.model = None
            self.session.current = None  # the previous photo's mask must not take this one's edits
        for role in self.provider.roles:
            self._show_map(path, role)
        if not self.request_current() and rgb is not None:
            self.maps_settled.emit(path)

    def request_current(self) -> bool:
        """Ask the worker for what the current photo still lacks: its image, maps, saved mask.
        One request for all of them (a new request drops the previous one). Returns whether maps
        or the image are still to come (False: only the mask, or nothing, was missing)."""
        entry, path = self.entries[self.row], self.path_of(self.row)
        rgb = self.images.get(path)
        missing = [r for r in self.provider.roles if (path, r) not in self.maps and (path, r) not in self.failures]
        mask_file = None if path in self._loaded_masks else self.session.pending_mask_file(entry)
        if missing or rgb is None or mask_file:
            self.worker.request(path, missing, want_image=rgb is None, mask_file=mask_file)
        return bool(missing or rgb is None)

    def _step(self, d: int) -> int | None:
        n = len(self.entries)
        for k in range(1, n + 1):
            r = (self.row + d * k) % n
            if not self.entries[r].error:
                return r
        return None

    def next_not_done(self) -> int | None:
        n = len(self.entries)
        for k in range(1, n + 1):
            r = (self.row + k) % n
            if self.entries[r].status != "done" and not self.entries[r].error:
                return r
        return None

    def _set_status(self, status: str) -> None:
        # The shown photo's entry, not session.current: that is None while its mask is still loading.
        if 0 <= self.row < len(self.entries):
            self.session.set_status(self.entries[self.row], status)

    def _done_next(self) -> None:
        self._set_status("done")
        self.select(self.next_not_done())

    # ---------------------------------------------------------------- worker results
    def _is_current(self, path: str) -> bool:
        return 0 <= self.row < len(self.entries) and self.path_of(self.row) == path

    def _on_image(self, path: str, rgb: np.ndarray, shown: np.ndarray | None = None) -> None:
        self.images.put(path, rgb)
        if shown is not None:
            self.display.put(path, (shown, id(rgb)))
        if self._is_current(path):
            self._show_photo(path, rgb)

    def _display_level(self, key, full: np.ndarray) -> np.ndarray:
        """The display level of ``full`` (a photo or map of the current photo): the worker's, or
        made here if it is missing (evicted, or a map that did not come from the worker)."""
        hit = self.display.get(key)
        if hit is not None and hit[1] == id(full):
            return hit[0]
        shown = reduce(full, display_factor(full.shape))
        self.display.put(key, (shown, id(full)))
        return shown

    def _show_photo(self, path: str, rgb: np.ndarray) -> None:
        self.views.photo.show_message(None)
        self.views.photo.show_array(self._display_level(path, rgb), display_factor(rgb.shape))
        self.views.fit(rgb.shape)
        self.status_size.setText(f"{rgb.shape[1]}×{rgb.shape[0]} px")
        self._bind_mask(path, rgb.shape[:2])

    def _bind_mask(self, path: str, shape: tuple[int, int]) -> None:
        """Give the overlay and the tools the photo's mask, unless the worker is still reading it
        from disk (then ``_on_mask`` comes back here); editing starts once it is bound."""
        entry = self.entries[self.row]
        loaded = self._loaded_masks.pop(path, None)
        if loaded is None and self.session.pending_mask_file(entry):
            self.views.overlay.set_model(None)
            self.tools.model = None
            self.session.current = None  # threshold and tools act on no mask until this one is bound
            return
        model = self.session.mask_for(entry, shape, None if loaded is None else loaded[:3])
        # The worker's overlay pixels fit only if the model holds exactly the mask it read (mask_for may
        # keep a resident model or reread a moved project's file); the check costs 3 ms at 12 MP, the
        # recolour it saves 31 ms.
        made = loaded[3] if loaded is not None and loaded[1] is not None and np.array_equal(model.mask, loaded[1]) \
            else None
        rgba, rgba_color = made if made is not None else (None, None)
        if self.views.overlay.model is not model:  # re-selecting the shown photo needs no recolour
            self.views.overlay.set_model(model, rgba, rgba_color)
        self.tools.model = model
        self.session.maps_arrived(entry)
        self._show_mask_state()

    def _on_mask(self, path: str, mask_file: str, mask, error: str, rgba=None) -> None:
        if not self._is_current(path):
            return
        self._loaded_masks[path] = (mask_file, mask, error, rgba)
        rgb = self.images.get(path)
        if rgb is not None and self.session.pending_mask_file(self.entries[self.row]):
            self._bind_mask(path, rgb.shape[:2])

    def _on_image_failed(self, path: str, msg: str) -> None:
        for row, e in enumerate(self.entries):
            if str(self.session.store.resolve(e)) == path and e.error != msg:
                e.error = msg
                self.list.set_status(row, "failed", msg)
        if self._is_current(path):
            self.views.photo.show_message(f"Cannot open this photo:\n{msg}")
            for panel in (*self.views.maps.values(), self.views.diff):
                panel.show_message("No map: the photo could not be read")
            self.maps_settled.emit(path)

    def _on_map(self, path: str, role: str, blur_map: np.ndarray, seconds: float, shown=None,
                shown_rgb=None) -> None:
        self.maps.put((path, role), blur_map)
        if shown is not None:
            self.display.put((path, role), (shown, id(blur_map)))
        if shown_rgb is not None:
            self.display.put((path, role, "rgb"), (shown_rgb, id(blur_map)))
        self.map_seconds[(path, role)] = seconds
        if self._is_current(path):
            self._show_map(path, role)
            self.session.maps_arrived(self.entries[self.row])
            self._settled_check(path)

    def _on_diff(self, path: str, pair, diff: np.ndarray, diff_rgb) -> None:
        # Kept with the maps themselves (not their ids): it is used only while both are the ones shown.
        self.display.put((path, "diff"), (diff, diff_rgb, pair))

    def _on_map_failed(self, path: str, role: str, msg: str) -> None:
        self.failures[(path, role)] = msg
        if self._is_current(path):
            self._show_map(path, role)
            self.session.maps_arrived(self.entries[self.row])
            self._settled_check(path)

    def _settled_check(self, path: str) -> None:
        if all((path, r) in self.maps or (path, r) in self.failures for r in self.provider.roles):
            self.maps_settled.emit(path)

    def _show_map(self, path: str, role: str) -> None:
        panel = self.views.maps.get(role)
        if panel is not None:
            m = self.maps.get((path, role))
            if m is None:
                panel.show_array(None)
            else:
                hit = self.display.get((path, role, "rgb"))  # coloured by the worker, if still current
                panel.show_array(self._display_level((path, role), m), display_factor(m.shape),
                                 coloured=hit[0] if hit is not None and hit[1] == id(m) else None)
            if m is not None:
                panel.show_message(None)
                panel.info.setText(f"{self.provider.label(role)} · {self.map_seconds.get((path, role), 0):.2f} s")
                self.status_time.setText(f"{role} map: {self.map_seconds.get((path, role), 0):.2f} s")
            else:
                panel.info.setText(self.provider.label(role))
                panel.show_message(self.failures.get((path, role), f"Computing the {role} map…"))
        maps = self.maps_for(self.entries[self.row]) if self._is_current(path) else {}
        if "teacher" in maps and "student" in maps:
            t, s = maps["teacher"], maps["student"]
            hit = self.display.get((path, "diff"))  # made by the worker from these two maps?
            if hit is not None and hit[2][0] is t and hit[2][1] is s:
                self.views.diff.show_array(hit[0], display_factor(t.shape), coloured=hit[1])
            else:
                # Of the display levels (block means): close to the full-size difference reduced, at 1/k^2 of
                # its cost.
                self.views.diff.show_array(difference(self._display_level((path, "teacher"), t),
                                                      self._display_level((path, "student"), s)),
                                           display_factor(t.shape))
            self.views.diff.show_message(None)
        else:
            self.views.diff.show_array(None)
            waiting = [r for r in ("teacher", "student") if (path, r) not in self.failures]
            self.views.diff.show_message("Waiting for both maps…" if len(waiting) == 2 else
                                         "Needs both the teacher and the student map")

    def _on_thumb(self, path: str, thumb, size) -> None:
        for row in range(len(self.entries)):
            if self.path_of(row) == path:
                self.list.set_thumbnail(row, thumb)

    def maps_for(self, entry) -> dict:
        path = str(self.session.store.resolve(entry))
        return {r: self.maps.get((path, r)) for r in self.provider.roles if (path, r) in self.maps}

    # ---------------------------------------------------------------- mask state
    def _otsu(self) -> None:
        t = self.session.otsu()
        if t is not None:
            self.panel.show_state(t, self.session.current.source, self.session.current.status,
                                  self.session.model.hand_edited)

    def _show_mask_state(self) -> None:
        m = self.session.model
        if m is not None:
            self.panel.show_history(m.can_undo(), m.can_redo())
            self.panel.show_hand_edited(m.hand_edited)

    def _on_status(self, entry) -> None:
        row = self.entries.index(entry)
        self.list.set_status(row, entry.status)
        if row == self.row:
            self.panel.show_state(entry.threshold, entry.source, entry.status, entry.hand_edited)

    def _ask(self, text: str) -> bool:
        return QMessageBox.question(self, "dbd-studio", text) == QMessageBox.StandardButton.Yes

    # ---------------------------------------------------------------- files
    def _open_files(self) -> None:
        files, _ = QFileDialog.getOpenFileNames(self, "Open photos", "", "Images (*.jpg *.jpeg *.png *.tif *.tiff *.bmp *.webp)")
        self.add_paths(files)

    def _open_folder(self) -> None:
        d = QFileDialog.getExistingDirectory(self, "Open folder")
        if d:
            self.add_paths([d])

    def _save_as(self) -> bool:
        d = QFileDialog.getExistingDirectory(self, "Project folder")
        if not d:
            return False
        try:
            self.session.save_as(d)
        except (OSError, DBDError) as e:
            QMessageBox.warning(self, "Save project as", f"Could not save the project to {d}:\n{e}")
            return False
        if self.session.save_error is not None:
            return False  # save_failed has said why
        self.statusBar().showMessage(f"Project saved to {d}; changes now autosave", 8000)
        return True

    def _export(self) -> None:
        from app.export_dialog import ExportDialog

        self.session.save_now()
        ExportDialog(self.session, self).exec()

    def dragEnterEvent(self, ev) -> None:
        if ev.mimeData().hasUrls():
            ev.acceptProposedAction()

    def dropEvent(self, ev) -> None:
        paths = [Path(u.toLocalFile()) for u in ev.mimeData().urls() if u.isLocalFile()]
        self.add_paths([p for p in paths if p.is_dir() or is_image_file(p)])

    def closeEvent(self, ev) -> None:
        if not self.finetune.may_close():  # a running fine-tune: ask, then cancel and wait
            ev.ignore()
            return
        if not self.save_guard.may_close():  # edits the folder refused: save elsewhere, leave them, or stay
            ev.ignore()
            return
        self.session.shutdown()  # after the last save: mask writes in hand are finished, no autosave follows
        # The map in hand may take seconds (a 48 MP teacher map: ~4 s) and cannot be interrupted: its result
        # is not wanted any more, and the window goes at once instead of standing frozen until it is done.
        for sig in (self.worker.image_ready, self.worker.mask_ready, self.worker.map_ready, self.worker.diff_ready,
                    self.worker.map_failed, self.worker.image_failed, self.worker.thumb_ready):
            try:
                sig.disconnect()
            except (RuntimeError, TypeError):  # nothing connected
                pass
        self.worker.request_stop()
        self.hide()
        QApplication.processEvents(QEventLoop.ProcessEventsFlag.ExcludeUserInputEvents)  # let the hide reach the screen
        self.worker.wait()  # the process exits cleanly only once the thread has ended
        super().closeEvent(ev)
