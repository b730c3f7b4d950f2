"""Background work: reading photos, thumbnails and blur maps never run on the GUI thread.

One long-lived QThread pulls jobs from a priority queue: the current photo's image and maps first,
thumbnails after. Results travel back as signals carrying fresh arrays (Qt queues them to the GUI
thread); the worker never touches a widget. Requests for a photo the user has left are dropped.
Each photo and map also travels with its display level (app/display.py), made here; each map with
that level coloured; a photo's saved mask is decoded here and travels with the overlay's pixels of it;
and when one request makes both maps, their disagreement comes made and coloured too. So the GUI
thread never decodes, reduces or colours a 12 MP array (each of those costs 20-250 ms, a visible freeze).
"""

from __future__ import annotations

import itertools
import queue
import threading
import time
import traceback
from collections import OrderedDict

import cv2
import numpy as np
from PySide6.QtCore import QObject, QThread, Signal

from app.display import MASK_COLOR, colorize, difference, display_factor, mask_rgba, reduce
from dbd_core.data.formats import decode_image_bytes
from dbd_core.errors import DBDError, InputError
from dbd_core.images import read_image, read_mask

THUMB = 96
_FOREGROUND, _BACKGROUND = 0, 1


def make_thumbnail(path: str, size: int = THUMB) -> tuple[np.ndarray, tuple[int, int]]:
    """(thumbnail RGB with long side ``size``, full (h, w)), EXIF orientation applied.

    A JPEG is decoded at 1/2, 1/4 or 1/8 scale by libjpeg itself (a 24 MP photo costs about 1/40 of
    a full decode) at the smallest scale that still has ``size`` pixels on the long side; the
    header gives the full size without decoding. Other formats are decoded fully.
    """
    from PySide6.QtGui import QImageReader  # thread-safe: no widgets, no GUI objects

    reader = QImageReader(path)
    hdr = reader.size()
    reduce = 1
    if hdr.isValid() and bytes(reader.format()).lower() in (b"jpeg", b"jpg"):
        long_side = max(hdr.width(), hdr.height())
        reduce = next((r for r in (8, 4, 2) if long_side / r >= size), 1)
    if reduce > 1:
        try:
            data = open(path, "rb").read()
        except OSError:
            rgb = read_image(path)  # raises the one-line InputError
        else:
            rgb = decode_image_bytes(data, path, reduce)
    else:
        rgb = read_image(path)
    h, w = rgb.shape[:2]
    if reduce > 1:
        # Header size is before EXIF rotation: swap it if the decoded photo came out turned.
        fh, fw = hdr.height(), hdr.width()
        full = (fh, fw) if (fh > fw) == (h > w) else (fw, fh)
    else:
        full = (h, w)
    s = size / max(h, w)
    thumb = cv2.resize(rgb, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
    return thumb, full


class ResultCache:
    """LRU cache of arrays keyed by (photo path, model role), bounded in bytes. GUI thread only."""

    def __init__(self, max_bytes: int = 1_500_000_000):
        self.max_bytes = max_bytes
        self._items: OrderedDict = OrderedDict()

    def get(self, key):
        if key in self._items:
            self._items.move_to_end(key)
            return self._items[key]
        return None

    def __contains__(self, key) -> bool:
        return key in self._items

    def discard_where(self, pred) -> None:
        """Drop the entries whose key matches (a model swap invalidates one role's maps)."""
        for key in [k for k in self._items if pred(k)]:
            del self._items[key]

    def put(self, key, value) -> None:
        self._items[key] = value
        self._items.move_to_end(key)
        total = sum(getattr(v[0] if isinstance(v, tuple) else v, "nbytes", 0) for v in self._items.values())
        while len(self._items) > 2 and total > self.max_bytes:
            _, old = self._items.popitem(last=False)
            total -= getattr(old[0] if isinstance(old, tuple) else old, "nbytes", 0)


class MapWorker(QThread):
    image_ready = Signal(str, object, object)  # path, rgb uint8, its display level
    image_failed = Signal(str, str)  # path, one-line reason
    # path, role, map, seconds, its display level, that level coloured (RGB uint8, or None without a LUT)
    map_ready = Signal(str, str, object, float, object, object)
    # path, mask file, mask uint8 {0,1} or None, error ("" = none), the overlay's pixels of it (or None)
    mask_ready = Signal(str, str, object, str, object)
    # path, (teacher map, student map) it was made from, |teacher - student| of their display levels,
    # that coloured (or None without a LUT); sent just before the second of the two maps
    diff_ready = Signal(str, object, object, object)
    map_failed = Signal(str, str, str)  # path, role, message
    thumb_ready = Signal(str, object, object)  # path, thumbnail rgb, (h, w)
    busy_changed = Signal(bool)

    def __init__(self, provider, map_lut: np.ndarray | None = None, diff_lut: np.ndarray | None = None,
                 parent=None):
        super().__init__(parent)
        self.provider = provider
        self.map_lut = map_lut  # colours the maps' display levels (app/display.lookup_table)
        self.diff_lut = diff_lut  # colours the disagreement of the two maps' display levels
        self.mask_color = MASK_COLOR  # the overlay's colour for saved masks' pixels (set by the GUI)
        self._queue: queue.PriorityQueue = queue.PriorityQueue()
        self._seq = itertools.count()
        self._generation = 0  # foreground jobs of an older generation are stale
        self._stop = False
        self._last: tuple[str, np.ndarray] | None = None  # the photo last decoded, reused across its maps

    # ---------------------------------------------------------------- GUI thread API
    def request(self, path: str, roles: list[str], want_image: bool, mask_file: str | None = None) -> None:
        """Compute what the current photo needs (its image, the maps of ``roles``, its saved mask
        ``mask_file``, checked against the photo's size); drops pending work for the previous photo."""
        self._generation += 1
        self._queue.put((_FOREGROUND, next(self._seq),
                         ("photo", self._generation, path, tuple(roles), want_image, mask_file)))

    def request_thumbnail(self, path: str) -> None:
        self._queue.put((_BACKGROUND, next(self._seq), ("thumb", 0, path, (), False, None)))

    def request_stop(self) -> None:
        """Cooperative stop, without waiting: pending jobs are dropped, the map in hand is not reduced, coloured
        or sent, and the thread ends as soon as the model call in hand returns (it cannot be interrupted)."""
        self._stop = True
        self._queue.put((-1, next(self._seq), ("stop", 0, "", (), False, None)))

    def stop(self) -> None:
        """Cooperative stop (request_stop), then wait for the thread to end."""
        self.request_stop()
        self.wait()

    # ---------------------------------------------------------------- worker thread
    def run(self) -> None:
        while not self._stop:
            _, _, (kind, gen, path, roles, want_image, mask_file) = self._queue.get()
            if kind == "stop":
                break
            if kind == "photo" and gen != self._generation:
                continue
            try:
                if kind == "thumb":
                    self._thumbnail(path)
                else:
                    self.busy_changed.emit(True)
                    self._photo(gen, path, roles, want_image, mask_file)
            except Exception as e:  # a bug must not kill the worker; report it where the user looks
                traceback.print_exc()
                self.image_failed.emit(path, f"{path}: unexpected error ({type(e).__name__}: {e})")
            finally:
                if kind == "photo" and self._queue.empty():
                    self.busy_changed.emit(False)

    def _read(self, path: str) -> np.ndarray:
        if self._last is not None and self._last[0] == path:
            return self._last[1]
        rgb = read_image(path)
        self._last = (path, rgb)
        return rgb

    def _photo(self, gen: int, path: str, roles, want_image: bool, mask_file: str | None) -> None:
        try:
            rgb = self._read(path)
        except InputError as e:
            self.image_failed.emit(path, str(e))
            return
        k = display_factor(rgb.shape)
        if mask_file:  # before the image: the GUI binds the mask as soon as the photo shows
            try:
                mask, _ = read_mask(mask_file, "blur-white", expect_shape=rgb.shape[:2])
                color = self.mask_color  # read once: the GUI may change it meanwhile
                self.mask_ready.emit(path, mask_file, mask, "", (mask_rgba(mask, k, color), color))
            except InputError as e:
                self.mask_ready.emit(path, mask_file, None, str(e), None)
        if want_image:
            self.image_ready.emit(path, rgb, reduce(rgb, k))
        made: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # role -> (map, display level), this request
        for role in roles:
            if self._stop or gen != self._generation:
                return  # the user moved on; the maps of the new photo come first
            epoch = self.provider.epoch(role)  # a model swap meanwhile makes this result stale
            try:
                t0 = time.perf_counter()
                blur_map = self.provider.get(role).predict(rgb)
                seconds = time.perf_counter() - t0
                if self._stop:
                    return  # closing: nobody will show it (reducing and colouring 48 MP costs ~0.3 s)
            except DBDError as e:
                self.provider.publish(role, epoch, lambda: self.map_failed.emit(path, role, str(e)))
                continue
            except Exception as e:
                traceback.print_exc()
                msg = f"{role} failed: {type(e).__name__}: {e}"
                self.provider.publish(role, epoch, lambda: self.map_failed.emit(path, role, msg))
                continue
            blur_map = np.clip(np.asarray(blur_map, np.float32), 0, 1)
            if blur_map.shape != rgb.shape[:2]:
                self.map_failed.emit(path, role, f"{role} returned a {blur_map.shape} map for a {rgb.shape[:2]} photo")
                continue
            shown = reduce(blur_map, k)
            rgb_shown = None if self.map_lut is None else colorize(shown, self.map_lut)
            made[role] = (blur_map, shown)
            if role in ("teacher", "student") and {"teacher", "student"} <= made.keys():
                # Before this map's signal, so the GUI finds the disagreement ready when it shows both.
                (t, t_shown), (s, s_shown) = made["teacher"], made["student"]
                diff = difference(t_shown, s_shown)
                diff_rgb = None if self.diff_lut is None else colorize(diff, self.diff_lut)
                self.diff_ready.emit(path, (t, s), diff, diff_rgb)
            self.provider.publish(role, epoch,
                                  lambda: self.map_ready.emit(path, role, blur_map, seconds, shown, rgb_shown))

    def _thumbnail(self, path: str) -> None:
        try:
            if self._last is not None and self._last[0] == path:  # already decoded for the view
                rgb = self._last[1]
                h, w = rgb.shape[:2]
                s = THUMB / max(h, w)
                thumb, full = cv2.resize(rgb, (max(1, round(w * s)), max(1, round(h * s))),
                                         interpolation=cv2.INTER_AREA), (h, w)
            else:
                thumb, full = make_thumbnail(path)
        except InputError as e:
            self.image_failed.emit(path, str(e))
            return
        self.thumb_ready.emit(path, thumb, full)


class MaskWriter(QObject):
    """Encodes and writes masks on its own thread: a 48 MP mask's PNG costs ~0.45 s, which on the GUI thread
    froze the window after every pause in editing. The session hands over copies (the GUI keeps editing its
    own), one job at a time; each job's outcome waits in :meth:`take_results` and ``written`` says so (queued to
    the GUI thread). The thread is a daemon, started with the first job; :meth:`stop` ends it after the jobs
    in hand (the session waits for those before a window closes)."""

    written = Signal()  # results are waiting: take_results()

    def __init__(self, parent=None):
        super().__init__(parent)
        self._jobs: queue.Queue = queue.Queue()
        self._cond = threading.Condition()
        self._pending = 0
        self._results: list[tuple] = []
        self._thread: threading.Thread | None = None

    def submit(self, store, items) -> None:
        """Write ``items`` = [(entry, mask uint8 {0,1})] with ``store.save_mask``, in order; stops at the first
        failure. GUI thread."""
        with self._cond:
            self._pending += 1
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name="mask-writer", daemon=True)
            self._thread.start()
        self._jobs.put((store, items))

    @property
    def busy(self) -> bool:
        with self._cond:
            return self._pending > 0

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until every submitted job is written (or failed)."""
        with self._cond:
            return self._cond.wait_for(lambda: self._pending == 0, timeout)

    def take_results(self) -> list[tuple]:
        """[(store, names written, names not written, reason or "")], oldest first; each result once."""
        with self._cond:
            out, self._results = self._results, []
        return out

    def stop(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            self._jobs.put(None)
            self._thread.join()
        self._thread = None

    def _run(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            store, items = job
            written, reason = [], ""
            for entry, mask in items:
                try:
                    store.save_mask(entry, mask)
                except (OSError, DBDError) as e:
                    reason = f"{getattr(e, 'filename', None) or store.folder}: {getattr(e, 'strerror', None) or e}"
                except Exception as e:  # a bug must not kill the writer or drop the edit: report it, keep it dirty
                    traceback.print_exc()
                    reason = f"{entry.name}: unexpected error while saving ({type(e).__name__}: {e})"
                if reason:
                    break
                written.append(entry.name)
            unwritten = [e.name for e, _ in items[len(written):]]
            with self._cond:
                self._results.append((store, written, unwritten, reason))
                self._pending -= 1
                self._cond.notify_all()
            try:
                self.written.emit()
            except RuntimeError:  # the session is gone (never shut down): its results are moot
                pass
