"""torch Datasets over labelled dataset folders and HDF5 files, with augmentation and splits.

Items follow the contract in docs/ARCHITECTURE.md: ``dict(image=float32 3xHxW in [0,1],
mask=float32 1xHxW in {0,1} (zeros when unlabelled), has_mask=bool, name=str)``.

Augmentation is deterministic given (seed, epoch, index): call ``set_epoch`` before each epoch.
(With DataLoader workers, use persistent_workers=False so the workers see the new epoch.)
"""

from __future__ import annotations

import hashlib
import math
import os
from typing import Sequence

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from dbd_core.data.formats import open_dataset_reader


def _unit_hash(name: str, seed: int) -> float:
    """A stable number in [0, 1) per (seed, name): independent of the other names in the set."""
    h = hashlib.sha1(f"{seed}\0{name}".encode("utf-8")).hexdigest()
    return int(h[:15], 16) / 16**15


def split_names(names: Sequence[str], val_fraction: float, seed: int = 0) -> tuple[list[str], list[str]]:
    """Deterministic train/val split by hashing each name.

    A name's side depends only on (name, seed, val_fraction), so adding photos never moves existing
    ones. The val share is therefore about, not exactly, ``val_fraction``; when it would be empty
    for a set of two or more names, the name with the smallest hash goes to val.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    u = {n: _unit_hash(n, seed) for n in names}
    val = [n for n in names if u[n] < val_fraction]
    if not val and val_fraction > 0 and len(names) >= 2:
        val = [min(names, key=u.__getitem__)]
    vs = set(val)
    return [n for n in names if n not in vs], val


def names_for_split(reader, split: str, val_fraction: float = 0.1, seed: int = 0) -> list[str]:
    """Names of one split. A split stored with the sample wins; samples without one are divided
    between train and val by ``split_names``; "test" is only ever what the dataset marks as test."""
    if split not in ("train", "val", "test"):
        raise ValueError(f"unknown split {split!r}")
    stored = {n: reader.split_of(n) for n in reader.names}
    free = [n for n, s in stored.items() if s is None]
    train, val = split_names(free, val_fraction, seed) if split != "test" else ([], [])
    hashed = set(train if split == "train" else val if split == "val" else [])
    return [n for n, s in stored.items() if s == split or n in hashed]


def _size_hw(size) -> tuple[int, int] | None:
    if size is None:
        return None
    if isinstance(size, int):
        return (size, size)
    h, w = size
    return (int(h), int(w))


def resize_pair(rgb: np.ndarray, mask: np.ndarray | None, hw: tuple[int, int]):
    """Image by area (down) / bilinear (up); mask by nearest, so it stays binary."""
    h, w = hw
    if rgb.shape[:2] == (h, w):
        return rgb, mask
    interp = cv2.INTER_AREA if h * w < rgb.shape[0] * rgb.shape[1] else cv2.INTER_LINEAR
    rgb = cv2.resize(rgb, (w, h), interpolation=interp)
    if mask is not None:
        mask = cv2.resize(mask, (w, h), interpolation=cv2.INTER_NEAREST)
    return rgb, mask


def random_resized_crop_box(rng: np.random.Generator, h: int, w: int, scale=(0.35, 1.0),
                            ratio=(3 / 4, 4 / 3)) -> tuple[int, int, int, int]:
    """(y0, x0, ch, cw) covering a random share ``scale`` of the area at a random aspect ratio."""
    area = h * w * rng.uniform(*scale)
    r = math.exp(rng.uniform(math.log(ratio[0]), math.log(ratio[1])))
    cw = int(round(min(w, max(2, math.sqrt(area * r)))))
    ch = int(round(min(h, max(2, math.sqrt(area / r)))))
    y0 = int(rng.integers(0, h - ch + 1))
    x0 = int(rng.integers(0, w - cw + 1))
    return y0, x0, ch, cw


def colour_jitter(img: np.ndarray, rng: np.random.Generator, strength: float) -> np.ndarray:
    """Small brightness / contrast / saturation change on float RGB in [0,1] (the mask is unaffected:
    focus does not depend on colour)."""
    if strength <= 0:
        return img
    b, c, s = rng.uniform(1 - strength, 1 + strength, size=3)
    img = img * b
    mean = img.mean()
    img = (img - mean) * c + mean
    grey = img @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    img = grey[..., None] + (img - grey[..., None]) * s
    return np.clip(img, 0.0, 1.0).astype(np.float32)


def to_item(rgb: np.ndarray, mask: np.ndarray | None, name: str) -> dict:
    image = torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1)))
    if image.dtype == torch.uint8:
        image = image.float().div_(255.0)
    if mask is None:
        m = torch.zeros((1, *rgb.shape[:2]), dtype=torch.float32)
    else:
        m = torch.from_numpy((np.asarray(mask) > 0).astype(np.float32))[None]
    return {"image": image.float(), "mask": m, "has_mask": mask is not None, "name": name}


class LabelledDataset(Dataset):
    """Items from a dataset folder or .h5 file (see dbd_core.data.formats).

    ``size``: working resolution (int or (h, w)); None keeps each photo's size (batch size 1).
    ``augment``: random resized crop (to ``size``), horizontal flip, small colour jitter; the same
    geometry is applied to image and mask. ``split`` ("train"/"val"/"test") or ``names`` select samples.
    """

    def __init__(self, path: str | os.PathLike, size=320, augment: bool = False, split: str | None = None,
                 names: Sequence[str] | None = None, val_fraction: float = 0.1, seed: int = 0,
                 crop_scale: tuple[float, float] = (0.35, 1.0), jitter: float = 0.1, flip: bool = True):
        self.reader = open_dataset_reader(path)
        self.path = self.reader.path
        if names is not None:
            missing = [n for n in names if n not in self.reader]
            if missing:
                self.reader._missing(missing[0])
            self.names = list(names)
        elif split is not None:
            self.names = names_for_split(self.reader, split, val_fraction, seed)
        else:
            self.names = list(self.reader.names)
        self.size = _size_hw(size)
        self.augment = augment
        self.seed = seed
        self.epoch = 0
        self.crop_scale = crop_scale
        self.jitter = jitter
        self.flip = flip

    def _reduce_for(self, name: str) -> int:
        """Largest JPEG decode reduction (8/4/2) that still leaves at least the working resolution,
        also for the smallest random crop: decoding a 12 MP photo at 1/8 is several times faster."""
        if self.size is None:
            return 1
        hw = self.reader.size_of(name)
        if hw is None:
            return 1
        room = min(hw[0] / self.size[0], hw[1] / self.size[1])
        if self.augment:  # smallest crop side ~ sqrt(min area share / max aspect change) of the photo's
            room *= math.sqrt(self.crop_scale[0] * 3 / 4)
        return next((k for k in (8, 4, 2) if k <= room), 1)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, index: int) -> dict:
        name = self.names[index]
        rgb, mask, _ = self.reader.get(name, reduce=self._reduce_for(name))
        if not self.augment:
            if self.size is not None:
                rgb, mask = resize_pair(rgb, mask, self.size)
            return to_item(rgb, mask, name)
        rng = np.random.default_rng([self.seed, self.epoch, index])
        y0, x0, ch, cw = random_resized_crop_box(rng, *rgb.shape[:2], scale=self.crop_scale)
        rgb = rgb[y0:y0 + ch, x0:x0 + cw]
        mask = None if mask is None else mask[y0:y0 + ch, x0:x0 + cw]
        if self.size is not None:
            rgb, mask = resize_pair(rgb, mask, self.size)
        if self.flip and rng.random() < 0.5:
            rgb = rgb[:, ::-1]
            mask = None if mask is None else mask[:, ::-1]
        img = colour_jitter(rgb.astype(np.float32) / 255.0, rng, self.jitter)
        return to_item(img, mask, name)


# Both formats go through the same class; the names say which one a caller expects.
FolderDataset = LabelledDataset
H5Dataset = LabelledDataset
