"""The annotation session: one MaskModel (with its history) per photo, seeding from maps by
threshold, hand-edit protection, and debounced autosave into the project store.

Without a project folder the session keeps masks in memory until "Save project as…" gives it one;
with one, every change is saved ~0.7 s after the last edit (temp file + rename, via the store).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
from PySide6.QtCore import QObject, QTimer, Signal

from dbd_core.annotate import MaskModel, PhotoEntry, ProjectStore, combine_maps, otsu_threshold, threshold_map
from dbd_core.errors import InputError

AUTOSAVE_MS = 700


class AnnotationSession(QObject):
    status_changed = Signal(object)  # PhotoEntry
    state_changed = Signal()  # history / hand-edit flags of the current mask
    message = Signal(str)

    def __init__(self, store: ProjectStore, persistent: bool, maps_for: Callable[[PhotoEntry], dict],
                 confirm: Callable[[str], bool] | None = None, model_labels: Callable[[], dict] = dict,
                 parent=None):
        super().__init__(parent)
        self.store = store
        self.persistent = persistent
        self.maps_for = maps_for  # entry -> {role: map} of the maps cached so far
        self.confirm = confirm or (lambda text: True)
        self.model_labels = model_labels  # () -> {role: model name}, recorded with each seed
        self.masks: dict[str, MaskModel] = {}
        self.current: PhotoEntry | None = None
        self._dirty_masks: set[str] = set()
        self._dirty_index = False
        self._timer = QTimer(self, singleShot=True, interval=AUTOSAVE_MS)
        self._timer.timeout.connect(self.save_now)

    # ---------------------------------------------------------------- photos
    def mask_for(self, entry: PhotoEntry, shape: tuple[int, int]) -> MaskModel:
        model = self.masks.get(entry.name)
        if model is None or model.shape != tuple(shape):
            saved = None
            if self.persistent:
                try:
                    saved = self.store.load_mask(entry, shape)
                except InputError as e:
                    self.message.emit(f"{e} — starting an empty mask")
            model = MaskModel(shape, saved, hand_edited=entry.hand_edited and saved is not None)
            model.seeded = saved is not None  # a saved mask is never replaced by an automatic seed
            self.masks[entry.name] = model
        self.current = entry
        return model

    @property
    def model(self) -> MaskModel | None:
        return None if self.current is None else self.masks.get(self.current.name)

    def source_map(self, entry: PhotoEntry) -> np.ndarray | None:
        maps = self.maps_for(entry)
        if entry.source == "mean":
            have = [m for m in maps.values() if m is not None]
            return combine_maps(have) if have else None
        return maps.get(entry.source)

    def maps_arrived(self, entry: PhotoEntry) -> None:
        """First seed of a fresh photo once its maps exist (the mean waits for all of them)."""
        model = self.masks.get(entry.name)
        if model is None or getattr(model, "seeded", False) or model.can_undo():
            return
        self._seed(entry, model)

    # ---------------------------------------------------------------- threshold
    def _seed(self, entry: PhotoEntry, model: MaskModel) -> bool:
        src = self.source_map(entry)
        if src is None or src.shape != model.shape:
            return False
        model.set_mask(threshold_map(src, entry.threshold), kind="seed")
        model.seeded = True
        entry.models = self.model_labels()
        self._changed(entry, mask=True)
        return True

    def set_threshold(self, t: float) -> None:
        if self.current is None:
            return
        self.current.threshold = float(t)
        self._dirty_index = True
        model = self.model
        if model is not None and not model.hand_edited:
            self._seed(self.current, model)  # live: cached maps, no inference
        self._schedule()

    def set_source(self, source: str) -> None:
        if self.current is None:
            return
        self.current.source = source
        self.set_threshold(self.current.threshold)

    def otsu(self) -> float | None:
        if self.current is None:
            return None
        src = self.source_map(self.current)
        if src is None:
            self.message.emit("No map yet for the selected source")
            return None
        t = round(otsu_threshold(src), 3)
        self.set_threshold(t)
        return t

    def reseed(self) -> bool:
        """Replace the mask by the threshold seed, with the user's word if it holds hand edits."""
        model = self.model
        if model is None:
            return False
        if model.hand_edited and not self.confirm("Replace the hand-edited mask by the threshold seed? "
                                                  "(Undo brings the edits back.)"):
            return False
        return self._seed(self.current, model)

    # ---------------------------------------------------------------- edits, history, status
    def hand_edit_done(self) -> None:
        entry = self.current
        if entry is None:
            return
        if entry.status == "new":
            entry.status = "in progress"
            self.status_changed.emit(entry)
        self._changed(entry, mask=True)

    def undo(self) -> None:
        if self.model is not None and self.model.undo() is not None:
            self._changed(self.current, mask=True)

    def redo(self) -> None:
        if self.model is not None and self.model.redo() is not None:
            self._changed(self.current, mask=True)

    def set_status(self, entry: PhotoEntry, status: str) -> None:
        if entry.status != status:
            entry.status = status
            self.status_changed.emit(entry)
            self._dirty_index = True
            self._schedule()

    def _changed(self, entry: PhotoEntry, mask: bool) -> None:
        model = self.masks.get(entry.name)
        if model is not None:
            entry.hand_edited = model.hand_edited
        if mask:
            self._dirty_masks.add(entry.name)
        self._dirty_index = True
        self.state_changed.emit()
        self._schedule()

    # ---------------------------------------------------------------- saving
    def _schedule(self) -> None:
        if self.persistent:
            self._timer.start()  # restarts: saves once the edits pause (debounce)

    def save_now(self) -> None:
        self._timer.stop()
        if not self.persistent:
            return
        by_name = {e.name: e for e in self.store.photos}
        for name in sorted(self._dirty_masks):
            if name in by_name and name in self.masks:
                self.store.save_mask(by_name[name], self.masks[name].mask)
        self._dirty_masks.clear()
        self.store.save_index()  # small; statuses, thresholds and the view travel with every save
        self._dirty_index = False

    def save_as(self, folder: str | Path) -> None:
        """Turn an in-memory session into a project folder and save everything into it."""
        folder = Path(folder)
        store = ProjectStore.open(folder)
        store.photos, store.view = self.store.photos, self.store.view
        self.store, self.persistent = store, True
        self._dirty_masks = set(self.masks)
        self.save_now()
