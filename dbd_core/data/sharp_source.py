"""A folder of sharp photos for synthetic defocus, with BSDS500 human segmentations when present.

Split rule (the benchmark's integrity depends on it): photos under ``BSDS500/images/test`` are the
benchmark's. split="train" lists everything else, split="test" lists only those, "all" lists both.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Literal

import cv2
import numpy as np

from dbd_core.errors import InputError
from dbd_core.images import expand_paths, read_image

Split = Literal["train", "test", "all"]
SPLITS = ("train", "test", "all")
# Keep at most this many annotators' label maps per photo (the coarsest ones: fewest segments give the
# most object-like unions) so the in-memory cache stays ~0.3 MB per BSDS photo.
MAX_ANNOTATIONS = 2


def _bsds_parts(path: Path) -> tuple[int, str] | None:
    """If ``path`` is .../BSDS500/.../images/<split>/<id>.jpg return (index of 'images', split)."""
    parts = [p.lower() for p in path.parts]
    for i in range(len(parts) - 2, 0, -1):
        if parts[i] == "images" and any(p.startswith("bsds") for p in parts[:i]):
            return i, parts[i + 1]
    return None


def is_bsds_test(path: Path) -> bool:
    info = _bsds_parts(path)
    return info is not None and info[1] == "test"


def _find_groundtruth(path: Path) -> Path | None:
    info = _bsds_parts(path)
    if info is None:
        return None
    i, split = info
    gt = Path(*path.parts[:i]) / "groundTruth" / path.parts[i + 1] / (path.stem + ".mat")
    return gt if gt.is_file() else None


def load_bsds_segmentations(mat_path: Path) -> list[np.ndarray]:
    """Label maps (HxW, labels from 1) of a BSDS groundTruth .mat, coarsest first; [] if unreadable
    (the photo is then used with random shapes, which is still valid training data)."""
    import scipy.io

    try:
        gt = scipy.io.loadmat(str(mat_path))["groundTruth"]
        maps = [np.asarray(gt[0, k]["Segmentation"][0, 0]) for k in range(gt.shape[1])]
    except Exception:  # a broken annotation file must not stop data generation
        return []
    maps = [m for m in maps if m.ndim == 2]
    maps.sort(key=lambda m: len(np.unique(m)))
    out = []
    for m in maps[:MAX_ANNOTATIONS]:
        out.append(m.astype(np.uint8) if m.max() < 256 else m.astype(np.uint16))
    return out


def _orient_to_labels(img: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Some BSDS copies store portrait photos rotated by 90 degrees while their annotations stay
    upright. Rotate the photo the way that puts its strong edges on the segment boundaries."""
    grey = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY).astype(np.float32)
    boundary = np.zeros(labels.shape, bool)
    boundary[:, 1:] |= labels[:, 1:] != labels[:, :-1]
    boundary[1:, :] |= labels[1:, :] != labels[:-1, :]
    best, best_score = img, -1.0
    for k in (1, -1):
        g = np.rot90(grey, k)
        mag = np.abs(cv2.Sobel(g, cv2.CV_32F, 1, 0)) + np.abs(cv2.Sobel(g, cv2.CV_32F, 0, 1))
        score = float(mag[boundary].mean() / (mag.mean() + 1e-6))
        if score > best_score:
            best, best_score = np.ascontiguousarray(np.rot90(img, k)), score
    return best


def _relative(path: Path, base: Path) -> str:
    """``path`` relative to ``base`` with POSIX separators (the name screen files use), else as given."""
    try:
        return path.relative_to(base).as_posix()
    except ValueError:
        return str(path)


class SharpPhotoSource:
    """Photos found recursively under ``root`` (sorted, so indices are stable), filtered by split.

    ``load(i, short_side)`` returns the photo downscaled so its short side is at most
    ``short_side`` (never upscaled) and its segmentation label maps resized to match; results are
    cached in memory per process (decoding a JPEG costs more than rendering a sample).

    ``exclude`` names photos (relative to ``root``, POSIX separators, as in a screen file of
    dbd_core.data.screen) to leave out; ``excluded`` lists the ones that were found and left out.
    """

    def __init__(self, root: str | os.PathLike, split: Split = "train", exclude=()):
        self.root = Path(root)
        if split not in SPLITS:
            raise InputError(root, f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
        if not self.root.is_dir():
            raise InputError(root, "not a folder of sharp photos")
        self.split = split
        files = [p.resolve() for p in expand_paths([self.root], recursive=True)]
        if split == "train":
            files = [p for p in files if not is_bsds_test(p)]
        elif split == "test":
            files = [p for p in files if is_bsds_test(p)]
        self.excluded: list[str] = []
        if exclude:
            exclude = set(exclude)
            named = [(p, _relative(p, self.root.resolve())) for p in files]
            self.excluded = [n for _, n in named if n in exclude]
            files = [p for p, n in named if n not in exclude]
        if not files:
            what = "BSDS500/images/test photos" if split == "test" else "photos"
            raise InputError(root, f"no {what} found for split {split!r}")
        self.files: list[Path] = files
        self.groundtruth: list[Path | None] = [_find_groundtruth(p) for p in files]
        self._cache: dict[tuple[int, int], tuple[np.ndarray, list[np.ndarray]]] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.files)

    def relative_name(self, i: int) -> str:
        return _relative(self.files[i], self.root.resolve())

    def load(self, i: int, short_side: int) -> tuple[np.ndarray, list[np.ndarray]]:
        key = (i, int(short_side))
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        img = read_image(self.files[i])
        gt = self.groundtruth[i]
        full_segs = load_bsds_segmentations(gt) if gt is not None else []
        if full_segs and full_segs[0].shape == img.shape[1::-1] and img.shape[0] != img.shape[1]:
            img = _orient_to_labels(img, full_segs[0])
        h, w = img.shape[:2]
        scale = min(1.0, short_side / min(h, w))
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        if scale < 1.0:
            img = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
        segs = []
        if full_segs:
            for m in full_segs:
                if m.shape != (h, w):
                    continue  # annotation of another orientation/size: unusable
                segs.append(m if scale >= 1.0 else cv2.resize(m, size, interpolation=cv2.INTER_NEAREST))
        with self._lock:
            self._cache[key] = (img, segs)
        return img, segs

    def split_photos(self, fraction: float, seed: int) -> tuple["SharpPhotoSource", "SharpPhotoSource"]:
        """(training photos, held-out photos): about ``fraction`` of the photos, chosen by hashing each
        photo's relative name with ``seed`` (dbd_core.data.dataset.split_names), so a photo's side does not
        depend on which other photos are in the folder. At least one photo on each side."""
        from dbd_core.data.dataset import split_names

        if len(self) < 2:
            raise InputError(self.root, f"{len(self)} photo(s): too few to hold out validation photos")
        names = [self.relative_name(i) for i in range(len(self))]
        train, val = split_names(names, fraction, seed)
        if not train:  # a tiny folder and a big fraction: keep the first photo for training
            train, val = val[:1], val[1:]
        held = set(val)
        return (self._subset([i for i, n in enumerate(names) if n not in held]),
                self._subset([i for i, n in enumerate(names) if n in held]))

    def _subset(self, idx: list[int]) -> "SharpPhotoSource":
        import copy

        out = copy.copy(self)
        out.files = [self.files[i] for i in idx]
        out.groundtruth = [self.groundtruth[i] for i in idx]
        out._cache, out._lock = {}, threading.Lock()
        return out

    def __getstate__(self):
        # DataLoader workers get a copy without the parent's cache; each fills its own lazily.
        state = self.__dict__.copy()
        state["_cache"] = {}
        del state["_lock"]
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._lock = threading.Lock()
