"""An annotation project on disk: ``project.json`` plus ``masks/NAME.png``.

project.json holds the photo list (path, unique name, status, threshold, mask source and the models
used, a read error if the photo could not be opened, the stamp of the mask file it describes) and the view
state (current photo). Masks are 8-bit PNGs with 255 = blurred (polarity "blur-white"). Every write is atomic
(temp file + rename), so a crash or kill at any moment leaves the previous or the new version of each file,
never a torn one.

The index is written after the masks it describes. A crash between the two (or a power
loss that keeps the index's rename but not a mask's) leaves them one save apart; each photo's ``saved_mask``
stamp (size, mtime and SHA-1 of the file as written) lets :meth:`ProjectStore.open` see that and reconcile:
a mask file the index does not know is kept and protected as a hand edit, and a photo whose recorded mask is
gone is no longer done (``ProjectStore.reconciled`` says which).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np

from dbd_core.atomic import atomic_path, write_bytes, write_json
from dbd_core.errors import InputError
from dbd_core.image_header import header_size
from dbd_core.images import read_mask

STATUSES = ("new", "in progress", "done")
FORMAT = "dbd-studio-project"
VERSION = 1
MODELS_DIR = "models"  # the project's adopted fine-tuned versions (annotate.versions)


@dataclass
class PhotoEntry:
    path: str
    name: str  # unique, file-system safe; the mask is masks/<name>.png
    status: str = "new"
    threshold: float = 0.5
    source: str = "mean"  # teacher | student | mean
    models: dict = field(default_factory=dict)  # role -> model name used for the seed
    hand_edited: bool = False
    error: str | None = None  # why the photo could not be read (it is listed, and skipped)
    # the source and threshold the current mask was last seeded with: after a hand edit, moving the threshold
    # no longer changes the mask, so ``threshold`` alone would misstate where an exported mask came from
    seeded_with: dict | None = None
    # {"sha1", "bytes", "mtime_ns"} of masks/<name>.png as last written (None: no mask saved). Set by save_mask
    # only after the rename (in the studio, on the writer thread), so an index written at any moment names a
    # mask that was on disk then; a crash before the next index write is what open() reconciles.
    saved_mask: dict | None = None


def _safe_name(stem: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._") or "photo"


def auto_project_name(paths) -> str:
    """A stable folder name for the photo set the user opened (files and folders as given), so
    opening the same set again finds its masks: ``<first item>-<hash of the sorted full paths>``.
    Folders are hashed as folders, so photos added to them later keep the same project."""
    keys = sorted({str(Path(p).resolve()) for p in paths})
    if not keys:
        return time.strftime("untitled-%Y%m%d-%H%M%S")
    digest = hashlib.sha1("\n".join(keys).encode("utf-8")).hexdigest()[:10]
    return f"{_safe_name(Path(keys[0]).stem)[:40]}-{digest}"


def find_project_holding(root: str | os.PathLike, photos) -> Path | None:
    """The automatic project under ``root`` that already lists every photo in ``photos`` (the most recently
    saved one if several do), or None. Opening the files of a folder one by one names a different photo set
    than opening the folder, so its hash differs; without this the work done on the folder would seem lost."""
    wanted = {str(Path(p).resolve()) for p in photos}
    if not wanted:
        return None
    best: tuple[float, Path] | None = None
    for index in Path(root).glob("*/project.json"):
        try:
            store = ProjectStore.open(index.parent, check_masks=False)  # only its photo list is wanted
            held = {str(store.resolve(e).resolve()) for e in store.photos}
            mtime = index.stat().st_mtime
        except (InputError, OSError):
            continue  # a damaged project is somebody else's to look at, not a match
        if wanted <= held and (best is None or mtime > best[0]):
            best = (mtime, index.parent)
    return None if best is None else best[1]


def refuse_other_project(folder: str | os.PathLike) -> None:
    """Saving a project into a folder that holds another one would replace its photo list and orphan its
    masks: refused, naming the folder."""
    index = Path(folder) / "project.json"
    if index.exists():
        raise InputError(folder, "already holds another dbd-studio project; choose an empty folder "
                                 "(or open that project instead)")


def _parse_index(index: Path, data) -> tuple[list[PhotoEntry], dict, dict, set[str]]:
    """(photos, view, models, names whose entry has a ``saved_mask`` key) of a project.json, every field
    checked: a damaged or hand-edited file is one InputError naming it and what is wrong, never a crash later
    (a photo name is also a mask file name). An index written before the stamps existed has no such key: its
    masks cannot be told apart from ones it missed, so they are taken as they are."""
    def bad(why: str):
        return InputError(index, why)

    if not isinstance(data, dict) or data.get("format") != FORMAT:
        got = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise bad(f"not a dbd-studio project (format {got!r})")
    if data.get("mask_polarity", "blur-white") != "blur-white":
        raise bad(f"mask_polarity {data['mask_polarity']!r}: this studio's masks are blur-white (255 = blurred)")
    photos, names, stamped = [], set(), set()
    raw = data.get("photos", [])
    if not isinstance(raw, list):
        raise bad(f"'photos' must be a list, not {type(raw).__name__}")
    known = set(PhotoEntry.__dataclass_fields__)
    for i, p in enumerate(raw):
        if not isinstance(p, dict):
            raise bad(f"photos[{i}] must be an object, not {type(p).__name__}")
        name, path = p.get("name"), p.get("path")
        if not isinstance(path, str) or not path:
            raise bad(f"photos[{i}] has no 'path'")
        if not isinstance(name, str) or _safe_name(name) != name or name in names:
            raise bad(f"photos[{i}] ({path}): 'name' {name!r} is missing, repeated or not a safe file name")
        names.add(name)
        fields = {k: v for k, v in p.items() if k in known}
        if fields.get("status", "new") not in STATUSES:
            raise bad(f"photos[{i}] ({name}): status {fields['status']!r} is not one of {', '.join(STATUSES)}")
        t = fields.get("threshold", 0.5)
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not 0.0 <= t <= 1.0:
            raise bad(f"photos[{i}] ({name}): threshold {t!r} is not a number in [0, 1]")
        for key, kind in (("source", str), ("models", dict), ("seeded_with", (dict, type(None))),
                          ("error", (str, type(None))), ("hand_edited", bool)):
            if key in fields and not isinstance(fields[key], kind):
                raise bad(f"photos[{i}] ({name}): '{key}' has the wrong type ({type(fields[key]).__name__})")
        stamp = fields.get("saved_mask")
        if stamp is not None and not _valid_stamp(stamp):
            raise bad(f"photos[{i}] ({name}): 'saved_mask' must be null or {{'sha1', 'bytes', 'mtime_ns'}}")
        if "saved_mask" in fields:
            stamped.add(name)
        photos.append(PhotoEntry(**fields))
    view, models = data.get("view", {"current": 0}), data.get("models", {})
    for key, val in (("view", view), ("models", models)):
        if not isinstance(val, dict):
            raise bad(f"'{key}' must be an object, not {type(val).__name__}")
    view = dict(view)
    if isinstance(view.get("current"), bool) or not isinstance(view.get("current", 0), int):
        view["current"] = 0  # only which photo was shown last: not worth refusing the project for
    for role, entry in models.items():
        versions = entry.get("versions", []) if isinstance(entry, dict) else None
        if not isinstance(versions, list) or not all(
                isinstance(r, dict) and isinstance(r.get("name"), str) and isinstance(r.get("file"), str)
                for r in versions):
            raise bad(f"models.{role}: expected {{'active', 'versions': [{{'name', 'file', ...}}]}}")
    return photos, view, dict(models), stamped


def _valid_stamp(stamp) -> bool:
    return (isinstance(stamp, dict) and isinstance(stamp.get("sha1"), str)
            and all(isinstance(stamp.get(k), int) and not isinstance(stamp.get(k), bool)
                    for k in ("bytes", "mtime_ns")))


def _sha1_of(path: Path) -> tuple[str, bytes]:
    """(SHA-1 of the file, its first bytes)."""
    h, head = hashlib.sha1(), b""
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            head = head or chunk[:64]
            h.update(chunk)
    return h.hexdigest(), head


def _stamp(path: Path, sha1: str) -> dict:
    st = path.stat()
    return {"sha1": sha1, "bytes": st.st_size, "mtime_ns": st.st_mtime_ns}


class ProjectStore:
    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        self.photos: list[PhotoEntry] = []
        self.view: dict = {"current": 0}
        self.models: dict = {}  # role -> {"active": version name | None, "versions": [...]} (annotate.versions)
        # What open() found the index and the masks disagreeing on: [(photo name, what was done)], in photo order.
        # Only in memory: the caller says so and saves the index (a read-only user such as an export does not).
        self.reconciled: list[tuple[str, str]] = []

    # ---------------------------------------------------------------- open / save
    @classmethod
    def open(cls, folder: str | os.PathLike, check_masks: bool = True) -> "ProjectStore":
        """Open the project in ``folder``, or create an empty one there. ``check_masks``: reconcile the index
        with the mask files on disk (:meth:`_reconcile`); off only for a look at the photo list."""
        store = cls(folder)
        index = store.folder / "project.json"
        if index.exists():
            try:
                data = json.loads(index.read_text("utf-8"))
            except (OSError, ValueError) as e:
                raise InputError(index, f"not a readable project file ({e})") from None
            store.photos, store.view, store.models, stamped = _parse_index(index, data)
            if check_masks:
                store._reconcile(stamped)
        else:
            try:
                store.folder.mkdir(parents=True, exist_ok=True)
                store.save_index()
            except OSError as e:
                raise InputError(store.folder, f"cannot create a project here ({e.strerror or e})") from None
        return store

    def _reconcile(self, stamped: set[str]) -> None:
        """Make the index agree with the mask files after an interrupted save (see the module docstring).

        A mask whose file matches its stamp (size and mtime, or failing those its SHA-1: a copy has a new mtime)
        is the one the index describes. Otherwise the file on disk wins, since it is the newest work the user
        can still have: a file the index does not know, or not in this version, is adopted as a hand edit (so no
        threshold step re-seeds it silently) and is not "done" (nobody has confirmed this version); a recorded
        mask that is gone leaves the photo not done, to be seeded and looked at again."""
        for e in self.photos:
            path, stamp = self.mask_path(e), e.saved_mask
            try:
                exists = path.is_file()
                if e.name not in stamped:  # an index from before the stamps: taken as it is, stamped from now on
                    e.saved_mask = _stamp(path, _sha1_of(path)[0]) if exists else None
                    continue
                if not exists:
                    if stamp is not None:
                        e.saved_mask, e.hand_edited, e.seeded_with = None, False, None
                        self._note(e, "its recorded mask is missing", "")
                    continue
                st = path.stat()
                if stamp is not None and (st.st_size, st.st_mtime_ns) == (stamp["bytes"], stamp["mtime_ns"]):
                    continue
                sha1, head = _sha1_of(path)
                if stamp is not None and sha1 == stamp["sha1"]:
                    e.saved_mask = _stamp(path, sha1)  # the same mask, copied or touched
                    continue
                if header_size(head) is None:
                    # Not a PNG at all: writes are atomic, so no save of ours left this. It is damage, met when
                    # the mask is loaded (named, set aside, the photo out of "done"), not a save to adopt.
                    continue
            except OSError:
                continue  # an unreadable mask is met (named, set aside) when it is loaded
            what = "its mask on disk is unknown to the index" if stamp is None else \
                "its mask on disk is not the one the index recorded"
            e.saved_mask, e.hand_edited = _stamp(path, sha1), True
            self._note(e, what, "kept as a hand edit")

    def _note(self, e: PhotoEntry, what: str, kept: str) -> None:
        """Take a reconciled photo out of "done" (or "new", when it has a mask now) and say what was done."""
        if e.status == "done":
            e.status = "in progress"
            kept = ", ".join(x for x in (kept, "no longer done") if x)
        elif e.status == "new" and e.saved_mask is not None:
            e.status = "in progress"
        self.reconciled.append((e.name, f"{what}{': ' + kept if kept else ''}"))

    def save_index(self) -> None:
        photos = []
        for p in self.photos:
            d = asdict(p)
            d["path"] = self._portable(p.path)
            photos.append(d)
        write_json(self.folder / "project.json", {"format": FORMAT, "version": VERSION, "mask_polarity": "blur-white",
                                                  "photos": photos, "view": self.view,
                                                  "models": self.models})

    def _portable(self, path: str) -> str:
        """Store paths inside the project folder relative to it, so the project can be moved."""
        p = Path(path).resolve()
        try:
            return str(p.relative_to(self.folder.resolve()))
        except ValueError:
            return str(p)

    def resolve(self, entry: PhotoEntry) -> Path:
        p = Path(entry.path)
        return p if p.is_absolute() else self.folder / p

    def move_to(self, folder: str | os.PathLike, remove_old: bool = False) -> "ProjectStore":
        """The same project in ``folder``: every saved mask copied over (atomically), the index
        written there last (so a crash leaves no index naming missing masks). ``remove_old``
        deletes this folder afterwards (an automatic project that the user has now named)."""
        if Path(folder).resolve() == self.folder.resolve():
            return self
        refuse_other_project(folder)
        new = ProjectStore.open(folder)
        for e in self.photos:
            src = self.mask_path(e)
            if src.exists():
                data = src.read_bytes()
                write_bytes(new.mask_path(e), data)
                # The copy's own size and mtime: the old ones would send the next open to hash every mask.
                e.saved_mask = _stamp(new.mask_path(e), hashlib.sha1(data).hexdigest())
            for aside in src.parent.glob(f"{src.name}.unreadable-*"):  # set aside for recovery: they move too
                write_bytes(new.mask_path(e).with_name(aside.name), aside.read_bytes())
        # Adopted fine-tuned versions (weights and cards) belong to the project: without them its "models"
        # would name files that are not there, and removing the old folder would delete them.
        models = self.folder / MODELS_DIR
        for src in sorted(models.rglob("*")) if models.is_dir() else ():
            if src.is_file() and not src.name.startswith("."):
                write_bytes(new.folder / src.relative_to(self.folder), src.read_bytes())
        # Photo paths relative to the old folder must keep pointing at the same files. The entry
        # objects themselves move along (the studio holds references to them).
        for e in self.photos:
            e.path = str(self.resolve(e).resolve())
        new.photos, new.view, new.models = self.photos, self.view, self.models
        new.save_index()
        if remove_old and self.folder.resolve() not in new.folder.resolve().parents:
            shutil.rmtree(self.folder, ignore_errors=True)
        return new

    # ---------------------------------------------------------------- photos
    def add_photos(self, paths) -> list[PhotoEntry]:
        """Add photo paths not already in the project; returns the new entries."""
        have = {str(self.resolve(p).resolve()) for p in self.photos}
        names = {p.name for p in self.photos}
        added = []
        for path in map(Path, paths):
            key = str(path.resolve())
            if key in have:
                continue
            base = name = _safe_name(path.stem)
            i = 2
            while name in names:
                name, i = f"{base}_{i}", i + 1
            entry = PhotoEntry(path=key, name=name)
            self.photos.append(entry)
            have.add(key)
            names.add(name)
            added.append(entry)
        return added

    # ---------------------------------------------------------------- masks
    def mask_path(self, entry: PhotoEntry) -> Path:
        return self.folder / "masks" / f"{entry.name}.png"

    def save_mask(self, entry: PhotoEntry, mask01: np.ndarray) -> None:
        """Write ``entry``'s mask (atomically) and record its stamp on the entry, for the next index."""
        path = self.mask_path(entry)
        ok, buf = cv2.imencode(".png", (np.asarray(mask01) != 0).astype(np.uint8) * 255)
        if not ok:
            raise InputError(path, "could not encode the mask")
        with atomic_path(path) as tmp:
            buf.tofile(str(tmp))
        entry.saved_mask = _stamp(path, hashlib.sha1(buf).hexdigest())

    def set_aside_mask(self, entry: PhotoEntry) -> Path | None:
        """Rename ``entry``'s (unreadable) mask file out of the way, so the next save cannot overwrite what
        may still be recovered by hand; returns where it went (None if there was no file)."""
        path = self.mask_path(entry)
        if not path.exists():
            return None
        stamp = time.strftime("%Y%m%d-%H%M%S")
        aside = path.with_name(f"{path.name}.unreadable-{stamp}")
        n = 1
        while aside.exists():
            aside, n = path.with_name(f"{path.name}.unreadable-{stamp}-{n}"), n + 1
        os.replace(path, aside)
        entry.saved_mask = None
        return aside

    def load_mask(self, entry: PhotoEntry, shape: tuple[int, int] | None = None) -> np.ndarray | None:
        """The saved mask (uint8 {0,1}) or None if there is none yet."""
        path = self.mask_path(entry)
        if not path.exists():
            return None
        mask, _ = read_mask(path, "blur-white", expect_shape=shape)
        return mask
