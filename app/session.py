"""The annotation session: one MaskModel (with its history) per photo, seeding from maps by
threshold, hand-edit protection, and debounced autosave into the project store.

Every change is saved ~0.7 s after the last edit (temp file + rename, via the store). Masks are encoded
and written on a writer thread (app.workers.MaskWriter) from copies: a mask stays dirty until the writer
says it is on disk, and the index is written (on the GUI thread: it is small) only after the masks it
describes. Each index entry keeps the stamp of its mask file, so a project whose index a crash left one save
apart from its masks is reconciled when it is opened (dbd_core.annotate.project); the session says which photos
and saves the reconciled index.

Without an explicit project folder the first photos opened choose an automatic one in the user's data location
(``studio_home()/projects/<name from the photo set>``), so nothing lives only in memory and opening
the same photos again finds their masks; "Save project as…" moves it to a folder the user names.

Only the masks (and undo histories) of the last few photos stay in memory: older ones that are
saved are dropped and re-read from the project when the user comes back to them.
"""

from __future__ import annotations

import os
import time
from collections import OrderedDict
from pathlib import Path
from typing import Callable

import numpy as np
from PySide6.QtCore import QObject, QStandardPaths, QTimer, Signal

from dbd_core.annotate import MaskModel, PhotoEntry, ProjectStore
from dbd_core.annotate.threshold import SeedSource
from app.workers import MaskWriter
from dbd_core.annotate.project import auto_project_name, find_project_holding, refuse_other_project
from dbd_core.images import expand_paths
from dbd_core.errors import DBDError, InputError

AUTOSAVE_MS = 700
SAVE_RETRY_MS = 10_000  # after a refused save
RESIDENT_MASKS = 8  # photos whose mask + history stay in memory (LRU); the rest reload from disk


def studio_home() -> Path:
    """The studio's data folder: ``$DBD_STUDIO_HOME`` (tests, portable installs) or the platform's
    application data location (e.g. ~/.local/share/dbd-studio)."""
    env = os.environ.get("DBD_STUDIO_HOME")
    if env:
        return Path(env)
    base = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.AppDataLocation)
    return Path(base) if base else Path.home() / ".dbd-studio"


class AnnotationSession(QObject):
    status_changed = Signal(object)  # PhotoEntry
    state_changed = Signal()  # history / hand-edit flags of the current mask
    message = Signal(str)
    warning = Signal(str)  # something the user must read (a lost or unreadable file): not a passing message
    project_changed = Signal(str, bool)  # folder, chosen automatically
    save_failed = Signal(str)  # the reason, once per run of failed saves (the edits stay in memory)
    save_recovered = Signal()  # the next save after a failure went through

    def __init__(self, store: ProjectStore, persistent: bool, maps_for: Callable[[PhotoEntry], dict],
                 confirm: Callable[[str], bool] | None = None, model_labels: Callable[[], dict] = dict,
                 parent=None):
        super().__init__(parent)
        self.store = store
        self.persistent = persistent
        self.maps_for = maps_for  # entry -> {role: map} of the maps cached so far
        self.confirm = confirm or (lambda text: True)
        self.model_labels = model_labels  # () -> {role: model name}, recorded with each seed
        self.auto = False  # the project folder was chosen automatically (not named by the user)
        self.masks: OrderedDict[str, MaskModel] = OrderedDict()  # least recently shown first
        self.current: PhotoEntry | None = None
        self._dirty_masks: set[str] = set()
        self._dirty_index = False
        self._seed_buffer = np.zeros((0, 0), bool)  # reused by every threshold seed (see threshold_map)
        # The mask sources of the last photos shown (mean map, Otsu, tile ranges: made once per photo and maps).
        self._sources: OrderedDict[tuple[str, str], SeedSource] = OrderedDict()
        # (model, its revision, source, threshold) of the last seed: while all still hold, the mask and the seed
        # buffer are exactly that threshold's, and a new threshold re-thresholds only the tiles it can change.
        self._seed_state: tuple | None = None
        # Photos whose threshold or source was chosen while their seed could not be made (see maps_arrived).
        self._chosen: set[str] = set()
        # name -> (model, its revision, how many maps): a first seed of a mean made before all maps were in (see
        # _stand_in_outgrown); it is replaced, still without an undo step, when the other maps come. Not the
        # source itself: a 48 MP mean is 192 MB, and a photo whose other map failed would keep it.
        self._provisional: dict[str, tuple] = {}
        self.save_error: str | None = None  # why the last save failed; None = everything is on disk
        self._timer = QTimer(self, singleShot=True, interval=AUTOSAVE_MS)
        self._timer.timeout.connect(self._autosave)
        self._writer = MaskWriter(self)
        self._writer.written.connect(lambda: self._collect(resume=True))
        self._in_flight: set[str] = set()  # masks handed to the writer, not yet confirmed on disk
        self._again = False  # an autosave came while a write was in flight: go again when it is done
        self._closed = False  # the window has gone (shutdown): nothing is scheduled any more
        if store.reconciled:  # said once the window listens (it connects after making the session)
            later = QTimer(self, singleShot=True, interval=0)
            later.timeout.connect(lambda: self._report_reconciled(store))
            later.start()

    # ---------------------------------------------------------------- project
    def ensure_project(self, paths) -> list[PhotoEntry]:
        """Before photos are added: without a project, open the automatic one for this photo set.
        Returns the photos it already held (a reopened set), which the caller lists."""
        if self.persistent:
            return []
        root = studio_home() / "projects"
        folder = root / auto_project_name(paths)
        if not folder.exists():  # the same photos opened another way (files, not their folder) find their work
            folder = find_project_holding(root, expand_paths(paths, problems=[])) or folder
        try:
            store = ProjectStore.open(folder)
        except InputError as e:  # a damaged automatic project is kept for inspection, never overwritten
            try:
                store = ProjectStore.open(root / time.strftime("untitled-%Y%m%d-%H%M%S"))
                self.message.emit(f"{e} — starting a new project")
            except InputError:
                # The studio's data folder refuses writes: a project held in memory, whose first save fails
                # and so takes the refused-save path (NOT SAVED title, one dialog, retries, Save as on close).
                store = ProjectStore(folder)
        self._drain()  # writes in flight go to the old folder: know which before switching
        reopened = list(store.photos)
        # Photos listed before a project existed (none in the studio's own flow) keep their masks.
        known = {str(store.resolve(e).resolve()) for e in store.photos}
        for e in self.store.photos:
            if str(self.store.resolve(e).resolve()) not in known:
                store.photos.append(e)
        self.store, self.persistent, self.auto = store, True, True
        self._dirty_masks |= set(self.masks)
        self._dirty_index = True
        self.project_changed.emit(str(store.folder), True)
        self._report_reconciled(store)  # after the project's own status line, which would cover it
        return reopened

    def _report_reconciled(self, store: ProjectStore) -> None:
        """One status line naming the photos whose index entry open() had to reconcile with the masks on disk,
        and the reconciled index saved (until then it exists only in memory)."""
        done, store.reconciled = store.reconciled, []
        if not done or store is not self.store:
            return
        shown = "; ".join(f"{name}: {what}" for name, what in done[:3])
        more = f" (+{len(done) - 3} more)" if len(done) > 3 else ""
        self.message.emit(f"The project index and its masks on disk disagreed (an interrupted save?), reconciled — "
                          f"{shown}{more}")
        self._dirty_index = True
        self._schedule()

    # ---------------------------------------------------------------- photos
    def pending_mask_file(self, entry: PhotoEntry) -> str | None:
        """The saved mask file that must be read before ``entry`` can be edited: None when its mask
        is in memory or it has none on disk. The map worker reads it, off the GUI thread."""
        if not self.persistent or entry.name in self.masks:
            return None
        path = self.store.mask_path(entry)
        return str(path) if path.is_file() else None

    def mask_for(self, entry: PhotoEntry, shape: tuple[int, int], loaded: tuple | None = None) -> MaskModel:
        """The mask model of ``entry``. ``loaded`` = (mask file, mask or None, error text) as the
        map worker read it; without it (or if the project has moved since) the file is read here."""
        model = self.masks.get(entry.name)
        if model is None or model.shape != tuple(shape):
            saved = None
            if self.persistent:
                try:
                    if loaded is not None and loaded[0] == str(self.store.mask_path(entry)):
                        if loaded[2]:
                            raise InputError(None, loaded[2])
                        saved = loaded[1]
                    else:
                        saved = self.store.load_mask(entry, shape)
                except InputError as e:
                    self._unreadable_mask(entry, e)
            model = MaskModel(shape, saved, hand_edited=entry.hand_edited and saved is not None)
            model.seeded = saved is not None  # a saved mask is never replaced by an automatic seed
            self.masks[entry.name] = model
        self.masks.move_to_end(entry.name)
        self.current = entry
        self._evict()
        return model

    def _unreadable_mask(self, entry: PhotoEntry, err: InputError) -> None:
        """A saved mask that cannot be read: set the file aside (the next autosave would overwrite it), start
        again from the map's seed, and take the photo out of "done" so it is neither exported nor counted as
        reviewed until someone looks at it again."""
        try:
            aside = self.store.set_aside_mask(entry)
        except OSError as e:
            aside, why = None, f"; it could not be set aside ({e.strerror or e}), so it will be overwritten"
        else:
            why = f"; kept as {aside.name}" if aside else ""
        entry.hand_edited = False
        was_done = entry.status == "done"
        if entry.status != "new":
            self.set_status(entry, "in progress")
        self.warning.emit(f"{entry.name}: its saved mask is unreadable ({err.reason}){why}. The mask is seeded again "
                          "from the map" + (", and the photo is no longer marked done." if was_done else "."))

    def _evict(self) -> None:
        """Drop the oldest masks beyond RESIDENT_MASKS that are safely on disk (never the current
        photo's, never one with unsaved changes). Their undo history goes with them."""
        if not self.persistent:
            return
        current = None if self.current is None else self.current.name
        for name in list(self.masks):
            if len(self.masks) <= RESIDENT_MASKS:
                break
            if name != current and name not in self._dirty_masks and name not in self._in_flight:
                del self.masks[name]
                self._provisional.pop(name, None)  # it holds the model: a 48 MP mask and its history

    @property
    def model(self) -> MaskModel | None:
        return None if self.current is None else self.masks.get(self.current.name)

    def seed_source(self, entry: PhotoEntry) -> SeedSource | None:
        """The mask source of ``entry`` (its selected map, or the mean of the maps it has), made once per
        photo and set of maps and reused by every threshold step, Otsu and re-seed."""
        maps = self.maps_for(entry)
        if entry.source == "mean":
            have = [m for m in maps.values() if m is not None]
        else:
            have = [maps[entry.source]] if maps.get(entry.source) is not None else []
        if not have:
            return None
        key = (entry.name, entry.source)
        src = self._sources.get(key)
        if src is None or not src.matches(have):  # a new photo, a new map, or a swapped model's map
            src = self._sources[key] = SeedSource(have)
        self._sources.move_to_end(key)
        while len(self._sources) > 2:  # a 48 MP mean map is 192 MB: keep the current photo's and the last one's
            self._sources.popitem(last=False)
        return src

    def source_map(self, entry: PhotoEntry) -> np.ndarray | None:
        src = self.seed_source(entry)
        return None if src is None else src.map

    def maps_arrived(self, entry: PhotoEntry) -> None:
        """A map of ``entry`` came (or failed), or its mask was bound: seed what waits for its maps.

        A fresh photo gets its first seed. A first seed of the mean made before all maps were in follows the
        maps as they come, while nobody has touched it. A threshold or source chosen while the seed could not be
        made (the photo or its saved mask still loading, the maps still computing) is applied now, unless the
        mask holds hand edits: those are never replaced without the user's word (Re-seed)."""
        model = self.masks.get(entry.name)
        if model is None:
            return
        if not getattr(model, "seeded", False):
            if not model.can_undo():  # painted before the maps came: the painting stays
                self._seed(entry, model)
            return
        if model.hand_edited:
            self._chosen.discard(entry.name)  # recorded on the entry, as for a step on a hand-edited mask
        elif self._stand_in_outgrown(entry, model) or entry.name in self._chosen:
            self._seed(entry, model)

    def _stand_in_outgrown(self, entry: PhotoEntry, model: MaskModel) -> bool:
        """``model``'s mask is still the untouched first seed of a mean made before all its maps were in, and
        more of them are here now."""
        held = self._provisional.get(entry.name)
        if held is None or held[0] is not model or held[1] != model.revision or model.can_undo() or model.can_redo():
            return False
        src = self.seed_source(entry)
        return src is not None and len(src.maps) > held[2]

    def _maps_incomplete(self, entry: PhotoEntry) -> bool:
        """The mean of ``entry`` lacks a role's map (still computing, or failed): a seed of it is a stand-in."""
        if entry.source != "mean":
            return False
        have = {r for r, m in self.maps_for(entry).items() if m is not None}
        return not set(self.model_labels()) <= have

    # ---------------------------------------------------------------- threshold
    def _seed(self, entry: PhotoEntry, model: MaskModel) -> bool:
        src = self.seed_source(entry)
        if src is None or src.shape != model.shape:
            return False
        t = float(entry.threshold)
        last, tiles = self._seed_state, None
        if (last is not None and last[0] is model and last[1] == model.revision and last[2] is src
                and self._seed_buffer.shape == src.shape):
            # The mask is still the last seed and the buffer holds it: only tiles the step can change are redone.
            tiles = src.update(self._seed_buffer, last[3], t)
        else:
            if self._seed_buffer.shape != src.shape:
                self._seed_buffer = np.empty(src.shape, bool)
            src.threshold(t, out=self._seed_buffer)
        # set_mask copies what changed into the mask model; the buffer keeps the seed for the next step.
        # The first seed of an untouched model is the photo's starting mask: Ctrl+Z must not empty it. A mask
        # painted before the maps came keeps its history: a later (re-)seed over it stays undoable.
        # A threshold step on a stand-in mean seed (maps still coming) is part of that first seed, not an edit.
        held = self._provisional.pop(entry.name, None)
        first = not model.can_undo() and not model.can_redo() and (
            not model.seeded or (held is not None and held[0] is model and held[1] == model.revision))
        model.set_mask(self._seed_buffer.view(np.uint8), kind="seed", tiles=tiles)
        if first:
            model.forget_history()
            if self._maps_incomplete(entry):
                self._provisional[entry.name] = (model, model.revision, len(src.maps))
        self._seed_state = (model, model.revision, src, t)
        self._chosen.discard(entry.name)
        model.seeded = True
        entry.seeded_with = {"source": entry.source, "threshold": round(float(entry.threshold), 4)}
        entry.models = self.model_labels()
        self._changed(entry, mask=True)
        return True

    def _shown(self) -> PhotoEntry | None:
        """The photo the panel speaks for: the one whose mask is bound, or, while its photo or saved mask is
        still loading (no mask bound, ``current`` None), the one the view shows (``store.view["current"]``)."""
        if self.current is not None:
            return self.current
        i, photos = self.store.view.get("current"), self.store.photos
        return photos[i] if isinstance(i, int) and 0 <= i < len(photos) else None

    def set_threshold(self, t: float) -> None:
        entry = self._shown()
        if entry is None:
            return
        entry.threshold = float(t)
        self._dirty_index = True
        model = self.model  # None while the shown photo's mask is not bound
        if model is None or (not model.hand_edited and not self._seed(entry, model)):
            # No mask bound or no maps yet: the seed is made with this choice once they are (maps_arrived).
            self._chosen.add(entry.name)
        self._schedule()

    def set_source(self, source: str) -> None:
        entry = self._shown()
        if entry is None:
            return
        entry.source = source
        self.set_threshold(entry.threshold)

    def otsu(self) -> float | None:
        if self.current is None:
            if self._shown() is not None:
                self.message.emit("The photo is still loading: Otsu needs its maps")
            return None
        src = self.seed_source(self.current)
        if src is None:
            self.message.emit("No map yet for the selected source")
            return None
        t = round(src.otsu(), 3)
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
        if self.persistent and not self._closed:
            self._timer.start()  # restarts: saves once the edits pause (debounce)

    @property
    def save_pending(self) -> bool:
        """Edits are not all on disk yet: an autosave is scheduled (within the debounce interval) or its masks
        are being written."""
        return self._timer.isActive() or bool(self._in_flight)

    def _autosave(self) -> None:
        """The debounced save: masks go to the writer thread, the GUI goes on."""
        if not self.persistent:
            return
        if self._in_flight:
            self._again = True  # one write at a time; this one's edits go when it is done
            return
        self._write(wait=False)

    def save_now(self) -> bool:
        """Write what changed and wait for it; False when the project folder refused it. Nothing is dropped
        then: the unsaved masks stay dirty and in memory (never evicted), and the next save, or Save project
        as, writes them. (Closing, exporting, fine-tuning and Save as need the files now; edits autosave
        without waiting.)"""
        self._timer.stop()
        if not self.persistent:
            return True
        self._drain()
        self._write(wait=True)
        return self.save_error is None

    def shutdown(self) -> None:
        """The window goes: no more autosaves; writes in hand are finished first (their outcome is collected,
        so a refused one is still dirty for whoever asks). Call after the last save_now."""
        self._closed = True
        self._timer.stop()
        self._drain()
        self._writer.stop()

    def _drain(self) -> None:
        """Wait for the writer and take in its results, starting nothing new."""
        self._again = False
        self._writer.wait_idle()
        self._collect(resume=False)

    def _write(self, wait: bool) -> None:
        by_name = {e.name: e for e in self.store.photos}
        self._dirty_masks &= set(by_name) & set(self.masks)
        names = sorted(self._dirty_masks)
        if not names:
            self._write_index()
            return
        # A copy for the writer (48 MP: ~15 ms) unless the GUI waits for it anyway; edits meanwhile make the
        # mask dirty again, so they are written by the next save.
        items = [(by_name[n], self.masks[n].mask if wait else self.masks[n].mask.copy()) for n in names]
        self._dirty_masks.clear()
        self._in_flight |= set(names)
        self._writer.submit(self.store, items)
        if wait:
            self._writer.wait_idle()
            self._collect(resume=False)

    def _collect(self, resume: bool) -> None:
        """Take in what the writer did: written masks are clean (unless edited since), the rest dirty again; a
        refusal takes the refused-save path; once no mask is dirty or in flight, the index follows them."""
        results = self._writer.take_results()
        if not results:
            return
        reason = ""
        for store, written, unwritten, why in results:
            self._in_flight -= set(written) | set(unwritten)
            self._dirty_masks |= set(unwritten)
            if store is not self.store:  # written into the folder the project has left: write them here too
                self._dirty_masks |= set(written)
            reason = why or reason
        if reason:
            self._refused(reason)
        elif not self._dirty_masks and not self._in_flight:
            self._write_index()
        if resume and self._again and not self._in_flight:
            self._again = False
            if not reason:  # after a refusal the retry timer says when to try again
                self._write(wait=False)

    def _write_index(self) -> None:
        try:
            self.store.save_index()  # small; statuses, thresholds and the view travel with every save
        except (OSError, DBDError) as e:
            self._refused(f"{getattr(e, 'filename', None) or self.store.folder}: {getattr(e, 'strerror', None) or e}")
            return
        self._dirty_index = False
        if self.save_error is not None:
            self.save_error = None
            self._timer.setInterval(AUTOSAVE_MS)  # back from the retry interval
            self.save_recovered.emit()
        self._evict()

    def _refused(self, reason: str) -> None:
        first = self.save_error is None
        self.save_error = reason  # before the signal: its handler opens a dialog, and a save may run inside
        self._timer.start(SAVE_RETRY_MS)  # the folder may become writable again: try again, quietly
        if first:
            self.save_failed.emit(reason)

    def save_as(self, folder: str | Path) -> None:
        """Save the project into ``folder`` and continue there. Masks on disk are copied (also those
        of photos not opened in this session); an automatic project is moved, not left behind."""
        folder = Path(folder)
        if self.persistent:
            self.save_now()
            store = self.store.move_to(folder, remove_old=self.auto)
        else:
            refuse_other_project(folder)
            store = ProjectStore.open(folder)
            store.photos, store.view, store.models = self.store.photos, self.store.view, self.store.models
        self.store, self.persistent, self.auto = store, True, False
        self._dirty_masks = set(self.masks)
        self.save_now()
        self.project_changed.emit(str(store.folder), False)
