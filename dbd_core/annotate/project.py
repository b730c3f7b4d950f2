"""An annotation project on disk: ``project.json`` plus ``masks/NAME.png``.

project.json holds the photo list (path, unique name, status, threshold, mask source and the models
used, a read error if the photo could not be opened) and the view state (current photo). Masks are
8-bit PNGs with 255 = blurred (polarity "blur-white"). Every write is atomic (temp file + rename),
so a crash or kill at any moment leaves the previous or the new version of each file, never a torn one.
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

import numpy as np

from dbd_core.atomic import write_bytes, write_json
from dbd_core.errors import InputError
from dbd_core.images import read_mask, write_png

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
            store = ProjectStore.open(index.parent)
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


def _parse_index(index: Path, data) -> tuple[list[PhotoEntry], dict, dict]:
    """(photos, view, models) of a project.json, every field checked: a damaged or hand-edited file is one
    InputError naming it and what is wrong, never a crash later (a photo name is also a mask file name)."""
    def bad(why: str):
        return InputError(index, why)

    if not isinstance(data, dict) or data.get("format") != FORMAT:
        got = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise bad(f"not a dbd-studio project (format {got!r})")
    if data.get("mask_polarity", "blur-white") != "blur-white":
        raise bad(f"mask_polarity {data['mask_polarity']!r}: this studio's masks are blur-white (255 = blurred)")
    photos, names = [], set()
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
    return photos, view, dict(models)


class ProjectStore:
    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        self.photos: list[PhotoEntry] = []
        self.view: dict = {"current": 0}
        self.models: dict = {}  # role -> {"active": version name | None, "versions": [...]} (annotate.versions)

    # ---------------------------------------------------------------- open / save
    @classmethod
    def open(cls, folder: str | os.PathLike) -> "ProjectStore":
        """Open the project in ``folder``, or create an empty one there."""
        store = cls(folder)
        index = store.folder / "project.json"
        if index.exists():
            try:
                data = json.loads(index.read_text("utf-8"))
            except (OSError, ValueError) as e:
                raise InputError(index, f"not a readable project file ({e})") from None
            store.photos, store.view, store.models = _parse_index(index, data)
        else:
            try:
                store.folder.mkdir(parents=True, exist_ok=True)
                store.save_index()
            except OSError as e:
                raise InputError(store.folder, f"cannot create a project here ({e.strerror or e})") from None
        return store

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
                write_bytes(new.mask_path(e), src.read_bytes())
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
        write_png(self.mask_path(entry), (np.asarray(mask01) != 0).astype(np.uint8) * 255)

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
        return aside

    def load_mask(self, entry: PhotoEntry, shape: tuple[int, int] | None = None) -> np.ndarray | None:
        """The saved mask (uint8 {0,1}) or None if there is none yet."""
        path = self.mask_path(entry)
        if not path.exists():
            return None
        mask, _ = read_mask(path, "blur-white", expect_shape=shape)
        return mask
