"""Labelled dataset formats: a CTCUG-style folder and a single HDF5 file, with the same samples.

Folder::

    images/NAME.ext   the photo's ORIGINAL bytes (copied, never re-encoded)
    gt/NAME.png       8-bit mask, 0/255; which value means "blurred" is stated by dataset.json
    dataset.json      {"format": "dbd-dataset", "format_version": 1, "gt_polarity": "blur-white",
                       "created_by": "dbd-studio <version>", "samples": [{"name", "image", "gt",
                       "split", "provenance"}]}

HDF5 (h5py): root attributes format, format_version, gt_polarity, created_by; one group per sample
``/samples/<name>`` holding ``image`` (the original encoded bytes, uint8 1-D, so photos stay
byte-exact) and ``mask`` (uint8 HxW {0,1}, 1 = blurred, gzip + chunked), with attributes width,
height, split, image_ext and provenance (JSON). Readers open lazily and read one sample at a time.

Writers always write ``gt_polarity = "blur-white"``; readers honour whatever a folder declares.
In memory a mask is uint8 {0,1}, 1 = blurred, whatever the file's polarity.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

import cv2
import numpy as np

from dbd_core import __version__
from dbd_core.atomic import atomic_path, write_bytes, write_json
from dbd_core.errors import DBDError, InputError
from dbd_core.images import POLARITIES, checked_imdecode, read_mask, to_rgb8

FORMAT = "dbd-dataset"
FORMAT_VERSION = 1
SPLITS = ("train", "val", "test")
H5_SUFFIXES = (".h5", ".hdf5")
DEFAULT_CREATED_BY = f"dbd-studio {__version__}"
_NAME_RE = re.compile(r"^[^/\\\x00-\x1f.][^/\\\x00-\x1f]{0,199}$")

ProgressFn = Callable[[int, int], None]
CancelFn = Callable[[], bool]


class WriteCancelled(Exception):
    """Raised inside a writer to discard it; nothing is left on disk."""


@dataclass
class Sample:
    """One labelled (or unlabelled) photo. Exactly one of image_bytes / image_path is set."""

    name: str
    image_bytes: bytes | None = None
    image_path: Path | None = None
    mask: np.ndarray | None = None  # uint8 HxW {0,1}, 1 = blurred; None = unlabelled
    split: str | None = None
    provenance: dict = field(default_factory=dict)
    image_ext: str | None = None  # ".jpg" etc.; derived from the path or the bytes when None

    def read_bytes(self) -> bytes:
        if self.image_bytes is not None:
            return self.image_bytes
        try:
            return Path(self.image_path).read_bytes()
        except FileNotFoundError:
            raise InputError(self.image_path, f"sample {self.name}: image file missing") from None
        except OSError as e:
            raise InputError(self.image_path, f"sample {self.name}: cannot read ({e.strerror})") from None

    def suffix(self) -> str:
        if self.image_ext:
            return self.image_ext
        if self.image_path is not None:
            return Path(self.image_path).suffix.lower()
        return sniff_image_ext(self.read_bytes(), self.name)

    def decode(self, reduce: int = 1) -> np.ndarray:
        """The photo as HxWx3 uint8 RGB (EXIF orientation applied, like images.read_image);
        ``reduce`` 2/4/8 decodes at that fraction of the size (much faster for big JPEGs)."""
        return decode_image_bytes(self.read_bytes(), self.image_path or self.name, reduce)


# ---------------------------------------------------------------------------------------------
# helpers


def sniff_image_ext(data: bytes, name: str | os.PathLike | None = None) -> str:
    """File extension for encoded image bytes, from their magic number."""
    if data[:3] == b"\xff\xd8\xff":
        return ".jpg"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return ".png"
    if data[:2] == b"BM":
        return ".bmp"
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return ".tif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return ".webp"
    if data[:2] in (b"P5", b"P6"):
        return ".pgm" if data[:2] == b"P5" else ".ppm"
    if data[:12] == b"\x00\x00\x00\x0cjP  \r\n\x87\n":
        return ".jp2"
    raise InputError(name, "unknown image format (not JPEG, PNG, BMP, TIFF, WebP, PPM or JPEG 2000)")


_REDUCED = {2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4, 8: cv2.IMREAD_REDUCED_COLOR_8}


def decode_image_bytes(data: bytes, name: str | os.PathLike | None = None, reduce: int = 1) -> np.ndarray:
    if not data:
        raise InputError(name, "empty image (0 bytes)")
    # Same flags as images.read_image: keep 16-bit depth, apply the EXIF orientation. The reduced
    # flags let libjpeg decode at 1/2, 1/4, 1/8 scale directly (and still apply the orientation).
    flags = _REDUCED[reduce] if reduce in _REDUCED else cv2.IMREAD_ANYDEPTH | cv2.IMREAD_ANYCOLOR
    img = checked_imdecode(np.frombuffer(data, dtype=np.uint8), flags, name)
    if img.ndim == 3:
        img = img[..., ::-1]
    return to_rgb8(img, "rgb", name=None if name is None else str(name))


def encode_mask_png(mask01: np.ndarray) -> bytes:
    """{0,1} mask -> PNG bytes with 255 = blurred. Deterministic for a given OpenCV build."""
    ok, buf = cv2.imencode(".png", (mask01 > 0).astype(np.uint8) * 255)
    if not ok:
        raise InputError(None, "could not encode mask PNG")
    return buf.tobytes()


def check_mask01(mask, name: str, shape: tuple[int, int]) -> np.ndarray:
    m = np.asarray(mask)
    if m.ndim != 2:
        raise InputError(name, f"mask must be HxW, got shape {m.shape}")
    if m.shape != shape:
        raise InputError(name, f"mask is {m.shape[1]}x{m.shape[0]} but its image is {shape[1]}x{shape[0]}")
    if m.dtype == np.bool_:
        return m.astype(np.uint8)
    if not np.issubdtype(m.dtype, np.integer) or (m.size and (m.min() < 0 or m.max() > 1)):
        raise InputError(name, "mask must hold only 0 and 1 (1 = blurred)")
    return np.ascontiguousarray(m, dtype=np.uint8)


def check_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise InputError(None, f"bad sample name {name!r} (needs 1-200 chars, no slashes, not starting with '.')")
    return name


def _norm_split(split, name) -> str | None:
    if split in (None, ""):
        return None
    if split not in SPLITS:
        raise InputError(name, f"unknown split {split!r}; use one of {', '.join(SPLITS)} or none")
    return split


def _norm_provenance(prov: dict | None) -> dict:
    p = dict(prov or {})
    for key in ("source", "model", "threshold"):
        p.setdefault(key, None)
    json.dumps(p)  # refuses non-JSON values early, not at close time
    return p


def is_h5_path(path: str | os.PathLike) -> bool:
    return Path(path).suffix.lower() in H5_SUFFIXES


# ---------------------------------------------------------------------------------------------
# writers


def is_empty_folder(path: str | os.PathLike) -> bool:
    p = Path(path)
    return p.is_dir() and not any(p.iterdir())


def is_dataset(path: str | os.PathLike) -> bool:
    """An existing dbd dataset (folder or HDF5) that opens."""
    try:
        with open_dataset_reader(path):
            return True
    except (DBDError, OSError):
        return False


def replaceable(path: str | os.PathLike) -> bool:
    """What an overwrite may replace: an earlier dataset or an empty folder, never anything else (a photo
    folder, a studio project, a thesis) that a mistyped ``--out`` happens to name."""
    return is_empty_folder(path) or is_dataset(path)


class DatasetWriter:
    """Common interface of the folder and HDF5 writers.

    Use as a context manager: everything goes to a temp folder/file beside the target, renamed into
    place on a clean exit; an exception (or ``cancel()``) discards it, so nothing half-written remains.
    """

    def __init__(self, path: str | os.PathLike, created_by: str = DEFAULT_CREATED_BY, overwrite: bool = False):
        self.path = Path(path)
        self.created_by = created_by
        self._names: set[str] = set()
        self._open = True
        if self.path.exists():
            if not overwrite:
                raise InputError(self.path, "already exists (use overwrite)")
            if not replaceable(self.path):
                raise InputError(self.path, "exists and is neither a dbd dataset nor an empty folder: overwrite "
                                            "only replaces an earlier dataset; choose another destination")

    def __len__(self) -> int:
        return len(self._names)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
        else:
            self.cancel()
        return False

    def add(self, name: str, image, mask01: np.ndarray | None = None, split: str | None = None,
            provenance: dict | None = None, image_ext: str | None = None) -> None:
        """Add one sample. ``image``: a file path (its bytes are copied), encoded bytes, or an HxWx3
        uint8 RGB array (stored as lossless PNG). ``mask01``: uint8 {0,1} HxW (1 = blurred) or None."""
        if not self._open:
            raise RuntimeError("writer is closed")
        check_name(name)
        if name in self._names:
            raise InputError(name, "duplicate sample name")
        source = None
        if isinstance(image, (str, os.PathLike)):
            source = os.fspath(image)
            data = Sample(name, image_path=Path(image)).read_bytes()
            ext = image_ext or Path(image).suffix.lower() or sniff_image_ext(data, image)
        elif isinstance(image, (bytes, bytearray, memoryview)):
            data = bytes(image)
            ext = image_ext or sniff_image_ext(data, name)
        else:
            arr = to_rgb8(image, name=name)
            ok, buf = cv2.imencode(".png", np.ascontiguousarray(arr[..., ::-1]))
            if not ok:
                raise InputError(name, "could not encode image")
            data, ext = buf.tobytes(), ".png"
        rgb = decode_image_bytes(data, source or name)  # validates and gives the oriented size
        h, w = rgb.shape[:2]
        mask = None if mask01 is None else check_mask01(mask01, name, (h, w))
        prov = _norm_provenance(provenance)
        if prov["source"] is None and source is not None:
            prov["source"] = source
        self._add(name, data, ext.lower(), mask, _norm_split(split, name), prov, w, h)
        self._names.add(name)

    def _add(self, name, data, ext, mask, split, prov, w, h) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def cancel(self) -> None:
        raise NotImplementedError


class FolderWriter(DatasetWriter):
    def __init__(self, path, created_by=DEFAULT_CREATED_BY, overwrite=False):
        super().__init__(path, created_by, overwrite)
        if self.path.exists() and not self.path.is_dir():
            raise InputError(self.path, "exists and is not a folder")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = Path(tempfile.mkdtemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent))
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(self._tmp, 0o777 & ~umask)  # mkdtemp makes 0700; the final folder gets normal permissions
        (self._tmp / "images").mkdir()
        (self._tmp / "gt").mkdir()
        self._entries: list[dict] = []

    def _add(self, name, data, ext, mask, split, prov, w, h):
        image_rel = f"images/{name}{ext}"
        write_bytes(self._tmp / image_rel, data)
        gt_rel = None
        if mask is not None:
            gt_rel = f"gt/{name}.png"
            write_bytes(self._tmp / gt_rel, encode_mask_png(mask))
        self._entries.append({"name": name, "image": image_rel, "gt": gt_rel, "split": split,
                              "width": w, "height": h, "provenance": prov})

    def close(self):
        if not self._open:
            return
        self._open = False
        try:
            write_json(self._tmp / "dataset.json", {
                "format": FORMAT, "format_version": FORMAT_VERSION, "gt_polarity": "blur-white",
                "created_by": self.created_by, "samples": self._entries})
            old = None
            if self.path.exists():  # overwrite: move the old one aside, swap, then delete it
                old = Path(tempfile.mkdtemp(prefix=f".{self.path.name}.", suffix=".old", dir=self.path.parent))
                os.replace(self.path, old / "d")
            os.replace(self._tmp, self.path)
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
        except BaseException:
            shutil.rmtree(self._tmp, ignore_errors=True)
            raise

    def cancel(self):
        self._open = False
        shutil.rmtree(self._tmp, ignore_errors=True)


class H5Writer(DatasetWriter):
    def __init__(self, path, created_by=DEFAULT_CREATED_BY, overwrite=False):
        import h5py

        super().__init__(path, created_by, overwrite)
        self._cm = atomic_path(self.path)
        tmp = self._cm.__enter__()
        try:
            self._f = h5py.File(tmp, "w")
            for key, val in (("format", FORMAT), ("format_version", FORMAT_VERSION),
                             ("gt_polarity", "blur-white"), ("created_by", created_by)):
                self._f.attrs[key] = val
            self._samples = self._f.create_group("samples", track_order=True)  # keep insertion order
        except BaseException as e:
            self._cm.__exit__(type(e), e, e.__traceback__)
            raise

    def _add(self, name, data, ext, mask, split, prov, w, h):
        g = self._samples.create_group(name)
        g.create_dataset("image", data=np.frombuffer(data, dtype=np.uint8))
        if mask is not None:
            g.create_dataset("mask", data=mask, compression="gzip", compression_opts=4,
                             chunks=(min(h, 256), min(w, 256)))
        g.attrs.update({"width": w, "height": h, "split": split or "", "image_ext": ext,
                        "provenance": json.dumps(prov)})

    def close(self):
        if not self._open:
            return
        self._open = False
        try:
            self._f.close()
        except BaseException as e:
            self._cm.__exit__(type(e), e, e.__traceback__)
            raise
        self._cm.__exit__(None, None, None)  # fsync + rename into place

    def cancel(self):
        if not self._open:
            return
        self._open = False
        try:
            self._f.close()
        finally:
            err = WriteCancelled()
            self._cm.__exit__(WriteCancelled, err, None)  # deletes the temp file


def open_writer(path: str | os.PathLike, created_by: str = DEFAULT_CREATED_BY, overwrite: bool = False
                ) -> DatasetWriter:
    """A folder writer, or an HDF5 writer when ``path`` ends in .h5/.hdf5."""
    cls = H5Writer if is_h5_path(path) else FolderWriter
    return cls(path, created_by=created_by, overwrite=overwrite)


def write_samples(path, samples: Iterable[Sample], created_by: str = DEFAULT_CREATED_BY, overwrite=False,
                  total: int | None = None, progress: ProgressFn | None = None, cancel: CancelFn | None = None,
                  skipped: list[str] | None = None) -> bool:
    """Write samples (the GUI export). Returns False when ``cancel()`` turned true: nothing is written.
    With a ``skipped`` list, a sample that fails its checks (photo missing or unreadable, mask of another
    size) is named there and left out, and the rest is written; if none is left, nothing is (False)."""
    if total is None and hasattr(samples, "__len__"):
        total = len(samples)
    added = 0
    with open_writer(path, created_by, overwrite) as w:
        for i, s in enumerate(samples):
            if cancel is not None and cancel():
                w.cancel()
                return False
            # Bytes, not the path, so a converted sample's provenance is not re-pointed at the copy;
            # a fresh sample (no "source" yet) records where its photo came from.
            prov = dict(s.provenance or {})
            if "source" not in prov and s.image_path is not None:
                prov["source"] = str(s.image_path)
            try:  # add() checks everything before it writes: a refused sample leaves no trace
                w.add(s.name, s.read_bytes(), s.mask, split=s.split, provenance=prov, image_ext=s.suffix())
                added += 1
            except InputError as e:
                if skipped is None:
                    raise
                skipped.append(f"{e} (sample {s.name} left out)")
            if progress is not None:
                progress(i + 1, total or 0)
        if skipped is not None and not added:
            w.cancel()
            return False
    return True


def open_dataset_reader(path: str | os.PathLike):
    """A reader for a dataset folder or .h5 file (see dbd_core.data.readers). Raises InputError."""
    from dbd_core.data.readers import open_dataset_reader as _open  # readers import this module

    return _open(path)


def convert(src: str | os.PathLike, dst: str | os.PathLike, overwrite: bool = False,
            progress: ProgressFn | None = None, cancel: CancelFn | None = None,
            skipped: list[str] | None = None) -> int:
    """Folder <-> HDF5 (or folder -> folder, h5 -> h5), losslessly: original image bytes, masks
    pixel-equal, names, splits and provenance kept. Masks are stored canonically (blur-white).
    Returns how many samples were written. With a ``skipped`` list, an unreadable sample is named there
    and left out and the rest converted (as ``write_samples``); without one the first raises."""
    with open_dataset_reader(src) as r:
        before = len(skipped) if skipped is not None else 0

        def readable():
            for name in r.names:
                try:
                    yield r.sample(name)
                except InputError as e:
                    if skipped is None:
                        raise
                    skipped.append(f"{e} (sample {name} left out)")

        ok = write_samples(dst, readable(), created_by=r.created_by, overwrite=overwrite, total=len(r),
                           progress=progress, cancel=cancel, skipped=skipped)
        return len(r) - (len(skipped) - before if skipped is not None else 0) if ok else 0


__all__ = ["Sample", "DatasetWriter", "FolderWriter", "H5Writer", "open_writer", "write_samples",
           "open_dataset_reader", "convert", "FORMAT", "FORMAT_VERSION", "SPLITS",
           "POLARITIES", "WriteCancelled", "read_mask", "is_dataset", "is_empty_folder", "replaceable"]
