"""An annotation project on disk: ``project.json`` plus ``masks/NAME.png``.

project.json holds the photo list (path, unique name, status, threshold, mask source and the models
used, a read error if the photo could not be opened) and the view state (current photo). Masks are
8-bit PNGs with 255 = blurred (polarity "blur-white"). Every write is atomic (temp file + rename),
so a crash or kill at any moment leaves the previous or the new version of each file, never a torn one.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from dbd_core.atomic import write_json
from dbd_core.errors import InputError
from dbd_core.images import read_mask, write_png

STATUSES = ("new", "in progress", "done")
FORMAT = "dbd-studio-project"
VERSION = 1


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


def _safe_name(stem: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._") or "photo"


class ProjectStore:
    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        self.photos: list[PhotoEntry] = []
        self.view: dict = {"current": 0}

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
            if data.get("format") != FORMAT:
                raise InputError(index, f"not a dbd-studio project (format {data.get('format')!r})")
            known = set(PhotoEntry.__dataclass_fields__)
            store.photos = [PhotoEntry(**{k: v for k, v in p.items() if k in known}) for p in data.get("photos", [])]
            store.view = dict(data.get("view", {"current": 0}))
        else:
            store.folder.mkdir(parents=True, exist_ok=True)
            store.save_index()
        return store

    def save_index(self) -> None:
        photos = []
        for p in self.photos:
            d = asdict(p)
            d["path"] = self._portable(p.path)
            photos.append(d)
        write_json(self.folder / "project.json", {"format": FORMAT, "version": VERSION, "mask_polarity": "blur-white",
                                                  "photos": photos, "view": self.view})

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

    def load_mask(self, entry: PhotoEntry, shape: tuple[int, int] | None = None) -> np.ndarray | None:
        """The saved mask (uint8 {0,1}) or None if there is none yet."""
        path = self.mask_path(entry)
        if not path.exists():
            return None
        mask, _ = read_mask(path, "blur-white", expect_shape=shape)
        return mask
