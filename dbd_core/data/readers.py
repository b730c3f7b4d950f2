"""Readers for the two dataset formats (see dbd_core.data.formats for the layouts).

Both open lazily: the folder reader parses dataset.json only; the HDF5 reader keeps one h5py handle
and reads one sample per call. An HDF5 reader can be pickled into DataLoader workers: each process
reopens the file on first use (h5py handles must not cross a fork).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from dbd_core.data.formats import (FORMAT, FORMAT_VERSION, POLARITIES, SPLITS, Sample, check_mask01,
                                   decode_image_bytes, is_h5_path)
from dbd_core.errors import InputError
from dbd_core.images import read_mask


class DatasetReader:
    """``len(r)``, ``r.names``, ``iter(r)`` -> Sample (mask loaded, image decoded only on demand),
    ``r.sample(name)``, ``r.get(name) -> (rgb uint8 HxWx3, mask01 or None, meta dict)``."""

    path: Path
    gt_polarity: str
    created_by: str
    names: list[str]

    def __len__(self) -> int:
        return len(self.names)

    def __iter__(self) -> Iterator[Sample]:
        for name in self.names:
            yield self.sample(name)

    def __contains__(self, name) -> bool:
        return name in self._index

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def close(self) -> None:
        pass

    def split_of(self, name: str) -> str | None:
        raise NotImplementedError

    def sample(self, name: str) -> Sample:
        raise NotImplementedError

    def size_of(self, name: str) -> tuple[int, int] | None:
        """(height, width) of the photo as stored in the index, or None if not recorded."""
        raise NotImplementedError

    def get(self, name: str, reduce: int = 1) -> tuple[np.ndarray, np.ndarray | None, dict]:
        """Photo, mask and metadata. ``reduce`` (2/4/8) decodes the photo smaller (fast path for
        training at a working size); the mask is then resized to it by nearest neighbour."""
        s = self.sample(name)
        full = self.size_of(name) if reduce > 1 else None
        rgb = s.decode(reduce if full else 1)
        mask = s.mask
        if mask is not None:
            check_mask01(mask, f"{self.path}: sample {name}", full or rgb.shape[:2])
            if mask.shape != rgb.shape[:2]:
                mask = cv2.resize(mask, (rgb.shape[1], rgb.shape[0]), interpolation=cv2.INTER_NEAREST)
        h, w = full or rgb.shape[:2]
        meta = {"name": name, "split": s.split, "provenance": s.provenance, "has_mask": mask is not None,
                "width": w, "height": h, "image_file": None if s.image_path is None else str(s.image_path)}
        return rgb, mask, meta

    def _missing(self, name):
        raise InputError(self.path, f"no sample named {name!r}")


def _check_header(path, fmt, version, polarity) -> None:
    if fmt != FORMAT:
        raise InputError(path, f"not a dbd dataset (format is {fmt!r}, expected {FORMAT!r})")
    if version != FORMAT_VERSION:
        raise InputError(path, f"unsupported format_version {version!r} (this dbd reads {FORMAT_VERSION})")
    if polarity in (None, ""):
        raise InputError(path, "gt_polarity missing: a dataset must state which mask value means blurred "
                         f"({' or '.join(POLARITIES)})")
    if polarity not in POLARITIES:
        raise InputError(path, f"unknown gt_polarity {polarity!r}; expected one of {', '.join(POLARITIES)}")


class FolderReader(DatasetReader):
    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        jpath = self.path / "dataset.json"
        if not self.path.is_dir():
            raise InputError(self.path, "no such dataset folder")
        try:
            doc = json.loads(jpath.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise InputError(jpath, "missing: not a dbd dataset folder (import one with `dbd dataset import`)") from None
        except (OSError, ValueError) as e:
            raise InputError(jpath, f"unreadable dataset.json ({e})") from None
        if not isinstance(doc, dict):
            raise InputError(jpath, "dataset.json must hold a JSON object")
        _check_header(jpath, doc.get("format"), doc.get("format_version"), doc.get("gt_polarity"))
        self.gt_polarity = doc["gt_polarity"]
        self.created_by = str(doc.get("created_by") or "unknown")
        self._index: dict[str, dict] = {}
        for i, e in enumerate(doc.get("samples") or []):
            if not isinstance(e, dict) or not e.get("name") or not e.get("image"):
                raise InputError(jpath, f"sample #{i} lacks a name or an image path")
            if e["name"] in self._index:
                raise InputError(jpath, f"duplicate sample name {e['name']!r}")
            if e.get("split") not in (None, *SPLITS):
                raise InputError(jpath, f"sample {e['name']}: unknown split {e['split']!r}")
            self._index[e["name"]] = e
        self.names = list(self._index)

    def split_of(self, name):
        return self._index[name].get("split")

    def size_of(self, name):
        e = self._index.get(name) or self._missing(name)
        return (int(e["height"]), int(e["width"])) if e.get("height") and e.get("width") else None

    def sample(self, name):
        e = self._index.get(name) or self._missing(name)
        mask = None
        if e.get("gt"):
            mask, _ = read_mask(self.path / e["gt"], self.gt_polarity)
        return Sample(name, image_path=self.path / e["image"], mask=mask, split=e.get("split"),
                      provenance=dict(e.get("provenance") or {}), image_ext=Path(e["image"]).suffix.lower())

    def mask_is_binary(self, name) -> bool | None:
        """False when the stored gt has grey levels (they are thresholded at 128 on read)."""
        e = self._index[name]
        return read_mask(self.path / e["gt"], self.gt_polarity)[1] if e.get("gt") else None


class H5Reader(DatasetReader):
    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._f = None
        self._pid = None
        f = self._file()
        a = f.attrs
        _check_header(self.path, _s(a.get("format")), _int(a.get("format_version")), _s(a.get("gt_polarity")))
        self.gt_polarity = _s(a["gt_polarity"])
        self.created_by = _s(a.get("created_by")) or "unknown"
        try:
            self.names = list(f["samples"].keys()) if "samples" in f else []
        except (OSError, RuntimeError, KeyError) as e:
            raise InputError(self.path, f"corrupt sample index ({e})") from None
        self._index = dict.fromkeys(self.names)

    def _file(self):
        import h5py

        if self._f is None or self._pid != os.getpid():
            if not self.path.is_file():
                raise InputError(self.path, "no such file")
            try:
                self._f = h5py.File(self.path, "r")
            except OSError as e:
                raise InputError(self.path, f"not a readable HDF5 dataset (truncated or corrupt: {_short(e)})") from None
            self._pid = os.getpid()
        return self._f

    def __getstate__(self):  # DataLoader workers reopen the file themselves
        state = dict(self.__dict__)
        state["_f"] = None
        state["_pid"] = None
        return state

    def close(self):
        if self._f is not None and self._pid == os.getpid():
            self._f.close()
        self._f = None

    def split_of(self, name):
        try:
            return _s(self._file()["samples"][name].attrs.get("split")) or None
        except KeyError:
            self._missing(name)

    def size_of(self, name):
        try:
            a = self._file()["samples"][name].attrs
            return (int(a["height"]), int(a["width"]))
        except (KeyError, OSError, ValueError, TypeError):
            return None

    def sample(self, name):
        if name not in self._index:
            self._missing(name)
        try:
            g = self._file()["samples"][name]
            data = g["image"][()].tobytes()
            mask = np.asarray(g["mask"][()], dtype=np.uint8) if "mask" in g else None
            a = g.attrs
            prov = json.loads(_s(a.get("provenance")) or "{}")
            split, ext = _s(a.get("split")) or None, _s(a.get("image_ext")) or None
        except (OSError, RuntimeError, KeyError, ValueError) as e:
            raise InputError(self.path, f"sample {name}: cannot read ({_short(e)})") from None
        if mask is not None and mask.size and mask.max() > 1:
            raise InputError(self.path, f"sample {name}: mask holds values other than 0/1")
        if mask is not None and self.gt_polarity == "sharp-white":  # the file says 1 = in focus: read as 1 = blurred
            mask = 1 - mask
        return Sample(name, image_bytes=data, mask=mask, split=split, provenance=prov, image_ext=ext)

    def get(self, name, reduce=1):
        rgb, mask, meta = super().get(name, reduce)
        meta["image_file"] = f"{self.path}:/samples/{name}/image"
        return rgb, mask, meta


def _s(v) -> str | None:
    if v is None:
        return None
    return v.decode() if isinstance(v, bytes) else str(v)


def _int(v):
    try:
        return int(v)
    except (TypeError, ValueError):
        return v


def _short(e: Exception) -> str:
    return str(e).splitlines()[0][:160] if str(e) else type(e).__name__


def open_dataset_reader(path: str | os.PathLike) -> DatasetReader:
    """Reader for a dataset folder (with dataset.json) or an .h5/.hdf5 file. Raises InputError."""
    p = Path(path)
    if is_h5_path(p):
        return H5Reader(p)
    if p.is_file() and p.name == "dataset.json":
        return FolderReader(p.parent)
    if p.is_file():
        raise InputError(p, "not a dataset (expected a folder with dataset.json or an .h5 file)")
    return FolderReader(p)
