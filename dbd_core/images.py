"""Reading photos and masks, and writing maps, with one-line errors for bad input.

Photos come back as HxWx3 uint8 RGB at full size, EXIF orientation applied; 16-bit, grayscale
and RGBA inputs are converted. Maps are float32 HxW in [0, 1], 1 = blurred.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import cv2
import numpy as np

from dbd_core.atomic import atomic_path
from dbd_core.errors import InputError
from dbd_core.image_header import header_size

# OpenCV logs its own line for every unreadable file ("[ERROR:0@0.07] global grfmt_png.cpp ..."), before the
# one-line error that names the file: silenced, unless the user asks for its logs with OPENCV_LOG_LEVEL.
if "OPENCV_LOG_LEVEL" not in os.environ:
    try:
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    except AttributeError:  # an OpenCV build without the logging module
        pass

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".jp2")
# A photo beyond this is refused rather than risking the machine's memory (a 50 MP photo is fine).
MAX_PIXELS = int(os.environ.get("DBD_MAX_PIXELS", 200_000_000))

Polarity = Literal["blur-white", "sharp-white"]
POLARITIES = ("blur-white", "sharp-white")


def is_image_file(path: str | os.PathLike) -> bool:
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def expand_paths(paths, recursive: bool = False, problems: list | None = None,
                 extensions: tuple[str, ...] = IMAGE_EXTENSIONS, noun: str = "photos") -> list[Path]:
    """Files as given, folders expanded to their files with ``extensions`` (sorted; hidden names left out).
    Missing paths are kept so the caller reports them by name.

    With a ``problems`` list, what cannot be taken is named there as ``(path, reason)`` and left out: a
    folder that cannot be read (its listing refused), a link inside a folder that leads nowhere (dangling,
    or a loop), a folder given by name that holds no ``noun``. Without one, those are passed over silently,
    except a folder given by name that cannot be read: InputError (for callers that stop there)."""
    out: list[Path] = []
    for p in map(Path, paths):
        if not p.is_dir():
            out.append(p)
            continue
        found: list[Path] = []
        refused: list[tuple[Path, str]] = []

        def unreadable(e: OSError, top: Path = p) -> None:
            where = Path(e.filename) if e.filename else top
            if problems is None and where == top:
                raise InputError(top, f"cannot read ({e.strerror})")
            refused.append((where, f"cannot read ({e.strerror})"))

        for folder, dirs, files in os.walk(p, onerror=unreadable):
            if not recursive:
                dirs.clear()
            for name in files:  # os.walk lists links to folders under dirs, every other entry under files
                q = Path(folder) / name
                if name.startswith(".") or q.suffix.lower() not in extensions:
                    continue
                if q.is_file():
                    found.append(q)
                elif q.is_symlink():  # dangling, or a loop: is_file() says False for both
                    try:
                        q.stat()
                    except OSError as e:
                        refused.append((q, f"cannot read ({e.strerror})"))
        if problems is not None:
            problems.extend(refused)
            if not found and not refused:
                problems.append((p, f"is a folder with no {noun}"))
        out.extend(sorted(found))
    return out


def decode_file(path: Path, flags: int) -> np.ndarray:
    """Decode an image file with OpenCV ``flags``; InputError naming the file for every failure."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise InputError(path, "no such file") from None
    except OSError as e:
        raise InputError(path, f"cannot read ({e.strerror})") from None
    if path.is_dir():
        raise InputError(path, "is a folder, not an image")
    if size == 0:
        raise InputError(path, "empty file (0 bytes)")
    try:
        buf = np.fromfile(str(path), dtype=np.uint8)
    except OSError as e:
        raise InputError(path, f"cannot read ({e.strerror or e})") from None
    return checked_imdecode(buf, flags, path)


def checked_imdecode(buf: np.ndarray, flags: int, name) -> np.ndarray:
    """``cv2.imdecode`` with every failure an InputError naming ``name``: a photo too large is refused from
    its header before any decoding, and OpenCV's exceptions (past its own pixel limit, some corrupt files)
    become one line. Every photo decoder in dbd goes through here (files, dataset bytes, thumbnails)."""
    dims = header_size(buf)  # first: a header naming a huge image says more than "truncated" would
    if dims is not None and dims[0] * dims[1] > MAX_PIXELS:
        raise InputError(name, f"image too large ({dims[0]}x{dims[1]} > {MAX_PIXELS / 1e6:.0f} MP limit)")
    truncated = png_truncation(buf)
    if truncated:
        raise InputError(name, f"not a readable image (truncated PNG: {truncated})")
    try:
        img = cv2.imdecode(buf, flags)
    except cv2.error as e:
        raise InputError(name, _decoder_refusal(str(e))) from None
    if img is None or img.size == 0:
        raise InputError(name, "not a readable image (corrupt, truncated or unsupported format)")
    return img


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_truncation(buf) -> str | None:
    """For PNG bytes, why they stop short (a chunk cut off, or no IEND chunk), else None; None for other
    formats. Checked before decoding because libpng prints its own stderr line ("libpng error: PNG input
    buffer is incomplete") on such a file, which OpenCV cannot silence: this walks the chunk headers only
    (no data copied, no CRC computed), a few microseconds per chunk, and holds no state (thread-safe)."""
    data = memoryview(np.ascontiguousarray(buf, dtype=np.uint8).reshape(-1)).cast("B")
    if data[:8] != PNG_SIGNATURE:
        return None
    n, i = len(data), 8
    while i + 8 <= n:
        length = int.from_bytes(data[i:i + 4], "big")
        end = i + 12 + length  # length, type, data, CRC
        ctype = bytes(data[i + 4:i + 8])
        if end > n:
            return f"the file ends inside its {ctype.decode('latin-1')!r} chunk"
        if ctype == b"IEND":
            return None
        i = end
    return "the file ends before its IEND chunk"


def _decoder_refusal(message: str) -> str:
    """OpenCV's multi-part exception text -> the reason a user can act on."""
    if "MAX_IMAGE_PIXELS" in message:
        return "image too large for the decoder (over OpenCV's 1 gigapixel limit)"
    lines = message.split("error:", 1)[-1].strip().splitlines()
    detail = lines[0] if lines else ""
    return f"not a readable image (the decoder refused it: {detail[:120]})" if detail else "not a readable image"


def to_rgb8(img: np.ndarray, channel_order: Literal["rgb", "bgr"] = "rgb", name: str | None = None) -> np.ndarray:
    """Any photo array (uint8/uint16/float, gray/RGB/RGBA/BGR) -> HxWx3 uint8 RGB."""
    img = np.asarray(img)
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[..., 0]
    if img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[2] not in (3, 4)):
        raise InputError(name, f"unsupported image shape {img.shape}")
    if img.shape[0] < 2 or img.shape[1] < 2:
        raise InputError(name, f"image too small ({img.shape[1]}x{img.shape[0]})")
    if img.shape[0] * img.shape[1] > MAX_PIXELS:
        raise InputError(name, f"image too large ({img.shape[1]}x{img.shape[0]} > {MAX_PIXELS / 1e6:.0f} MP limit)")
    if img.dtype == np.uint8:
        pass
    elif img.dtype == np.uint16:
        img = (img.astype(np.uint32) * 255 + 32767) // 65535
        img = img.astype(np.uint8)
    elif img.dtype == np.bool_:
        img = img.astype(np.uint8) * 255
    elif np.issubdtype(img.dtype, np.floating):
        if not np.isfinite(img).all():
            raise InputError(name, "image contains NaN or Inf")
        img = np.clip(np.rint(img * 255.0), 0, 255).astype(np.uint8)
    elif np.issubdtype(img.dtype, np.integer):
        img = np.clip(img, 0, 255).astype(np.uint8)
    else:
        raise InputError(name, f"unsupported image dtype {img.dtype}")
    if img.ndim == 2:
        return np.ascontiguousarray(np.repeat(img[..., None], 3, axis=2))
    if img.shape[2] == 4:
        img = img[..., :3]  # alpha carries no focus information; drop it
    if channel_order == "bgr":
        img = img[..., ::-1]
    return np.ascontiguousarray(img)


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Photo file -> HxWx3 uint8 RGB, EXIF orientation applied. Raises InputError."""
    path = Path(path)
    # ANYDEPTH keeps 16-bit samples (scaled down here, not clipped); ANYCOLOR keeps gray as gray;
    # both still apply the EXIF orientation (IMREAD_UNCHANGED would not).
    img = decode_file(path, cv2.IMREAD_ANYDEPTH | cv2.IMREAD_ANYCOLOR)
    if img.ndim == 3:
        img = img[..., ::-1]  # OpenCV decodes BGR
    return to_rgb8(img, "rgb", name=str(path))


def read_mask(path: str | os.PathLike, polarity: Polarity, expect_shape: tuple[int, int] | None = None,
              ) -> tuple[np.ndarray, bool]:
    """Mask file -> (HxW uint8 in {0,1} with 1 = blurred, was_binary).

    A mask is 0/255 (or 0/65535), or 0/1: one whose values are all 0 or 1 is read as such (1 = white,
    the positive class of its polarity), never thresholded to empty. Other masks (resized copies have
    grey edges) are thresholded at 128; ``was_binary`` is False then, so the caller can say so.
    ``polarity`` is the file's: blur-white (white = blurred) or sharp-white (white = in focus).
    """
    if polarity not in POLARITIES:
        raise InputError(path, f"unknown polarity {polarity!r}; use one of {', '.join(POLARITIES)}")
    path = Path(path)
    m = decode_file(path, cv2.IMREAD_GRAYSCALE | cv2.IMREAD_ANYDEPTH)
    if expect_shape is not None and m.shape[:2] != tuple(expect_shape[:2]):
        raise InputError(path, f"mask is {m.shape[1]}x{m.shape[0]} but its image is {expect_shape[1]}x{expect_shape[0]}")
    if m.size and m.max() <= 1:  # a 0/1 mask (of any depth): 1 is white
        white, was_binary = m == 1, True
    else:
        if m.dtype == np.uint16:
            m = (m // 257).astype(np.uint8)
        was_binary = not bool(((m > 0) & (m < 255)).any())  # cheaper than np.isin on full-size masks
        white = m >= 128
    blurred = white if polarity == "blur-white" else ~white
    return blurred.astype(np.uint8), was_binary


def map_to_uint8(blur_map: np.ndarray) -> np.ndarray:
    """[0,1] map (1 = blurred) -> uint8 with 255 = blurred."""
    return np.clip(np.rint(np.asarray(blur_map, dtype=np.float32) * 255.0), 0, 255).astype(np.uint8)


def write_png(path: str | os.PathLike, img: np.ndarray) -> None:
    """Atomic PNG (or any OpenCV format by extension) write; RGB input is stored as RGB."""
    path = Path(path)
    arr = np.asarray(img)
    if arr.ndim == 3:
        arr = np.ascontiguousarray(arr[..., ::-1])
    ok, buf = cv2.imencode(path.suffix or ".png", arr)
    if not ok:
        raise InputError(path, "could not encode image")
    with atomic_path(path) as tmp:
        buf.tofile(str(tmp))


def write_map_png(path: str | os.PathLike, blur_map: np.ndarray) -> None:
    """Blur map -> 8-bit grayscale PNG, 255 = blurred (polarity blur-white)."""
    write_png(path, map_to_uint8(blur_map))
