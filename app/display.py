"""What the views draw: a copy of each photo and map capped near screen resolution.

A 12 MP photo has four times the pixels of a 4K screen and a view shows it at a fraction of that,
so drawing it at full size only costs time on the GUI thread (uploads, format conversions, scaled
blits of 48 MB per repaint). The views show a *display level* instead: the photo reduced by an
integer factor ``k`` so that the long side is at most ``MAX_SIDE``. Each display pixel is the mean
of one k x k block of the full-resolution image (edge blocks padded by replicating the last
row/column), and a display item covers exactly ``k`` scene units per pixel, so scene coordinates
stay full-resolution pixel coordinates: tools and masks work at full resolution untouched.

Because a display pixel depends on its own block only, a changed rectangle of a full-resolution
mask can be brought to the display level on its own, and the result is bit-identical to reducing
the whole mask again (tests/test_app_display.py checks it).

These are plain numpy / OpenCV functions (OpenCV releases the GIL), safe on any thread: the map
worker prepares the display levels of photos and maps, the GUI thread only colours small arrays.
"""

from __future__ import annotations

import math

from functools import lru_cache

import cv2
import numpy as np

MAX_SIDE = 2048  # long side of a display level: about a 4K screen's width, sharp on any monitor


def display_factor(shape, max_side: int | None = None) -> int:
    """The integer reduction k of a photo of ``shape`` (h, w, ...): 1 up to ``max_side`` pixels."""
    cap = MAX_SIDE if max_side is None else max_side
    return max(1, math.ceil(max(shape[0], shape[1]) / cap))


def display_shape(shape, k: int) -> tuple[int, int]:
    return -(-shape[0] // k), -(-shape[1] // k)


def reduce(arr: np.ndarray, k: int) -> np.ndarray:
    """k x k block means of ``arr`` (HxW or HxWxC, uint8 or float32); the last partial blocks are
    padded by replicating the edge. k = 1 returns ``arr`` itself (no copy)."""
    if k <= 1:
        return arr
    h, w = arr.shape[:2]
    ph, pw = -h % k, -w % k
    if ph or pw:
        arr = cv2.copyMakeBorder(arr, 0, ph, 0, pw, cv2.BORDER_REPLICATE)
    hd, wd = (h + ph) // k, (w + pw) // k
    # With an integer factor INTER_AREA is exactly the block mean, computed per output pixel.
    return cv2.resize(arr, (wd, hd), interpolation=cv2.INTER_AREA)


def reduce_rect(full: np.ndarray, rect, k: int) -> tuple[tuple[int, int, int, int], np.ndarray]:
    """The display-level pixels that ``rect`` (y0, x0, y1, x1, full-resolution, end exclusive)
    touches: (display rect, their values), equal to ``reduce(full, k)`` over that display rect."""
    h, w = full.shape[:2]
    y0, x0, y1, x1 = rect
    dy0, dx0 = y0 // k, x0 // k
    dy1, dx1 = min(-(-y1 // k), -(-h // k)), min(-(-x1 // k), -(-w // k))
    block = full[dy0 * k:min(h, dy1 * k), dx0 * k:min(w, dx1 * k)]
    return (dy0, dx0, dy1, dx1), reduce(block, k)


# The mask overlay's "blurred" colours: warm red reads over most photos; on warm ones (a red cup, an orange
# suit) cyan or yellow tell blurred from sharp better.
MASK_COLORS = {"red": (255, 60, 40), "cyan": (0, 220, 255), "yellow": (255, 225, 0), "magenta": (255, 0, 200)}
MASK_COLOR = MASK_COLORS["red"]


@lru_cache(maxsize=8)
def _rgba_lut(color: tuple[int, int, int]) -> np.ndarray:
    """Block coverage (0..255) -> premultiplied RGBA, one cv2.LUT pass instead of four multiplies."""
    return np.array([[[round(a * v / 255) for v in color] + [a]] for a in range(256)], np.uint8)


def coverage_rgba(cover: np.ndarray, color: tuple[int, int, int] = MASK_COLOR) -> np.ndarray:
    """Block coverage (uint8, 255 = all blurred) -> the overlay's premultiplied RGBA pixels."""
    return cv2.LUT(cv2.merge([cover] * 4), _rgba_lut(tuple(color)))


def mask_rgba(mask: np.ndarray, k: int, color: tuple[int, int, int] = MASK_COLOR) -> np.ndarray:
    """The overlay's display level of a whole {0,1} mask: each pixel coloured by the blurred share of
    its k x k block. The map worker makes it for saved masks; app/overlay.py makes the same pixels."""
    return coverage_rgba(reduce(mask * np.uint8(255), k), color)


def lookup_table(cmap_name: str) -> np.ndarray:
    """256 x 1 x 3 uint8 RGB table of a pyqtgraph colormap, in the shape cv2.LUT takes."""
    import pyqtgraph as pg  # numpy-only use of pyqtgraph: fine off the GUI thread

    lut = pg.colormap.get(cmap_name).getLookupTable(0.0, 1.0, 256, alpha=False)
    return np.ascontiguousarray(lut.astype(np.uint8).reshape(256, 1, 3))


def colorize(prob: np.ndarray, lut: np.ndarray) -> np.ndarray:
    """HxW float map in [0, 1] -> HxWx3 uint8 RGB through ``lut`` (256 levels, 0 and 1 at the ends)."""
    idx = cv2.convertScaleAbs(np.asarray(prob, np.float32), alpha=255.0)  # round + saturate, no GIL
    return cv2.LUT(cv2.merge([idx, idx, idx]), lut)


def difference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """|a - b| of two float32 maps of one shape."""
    return cv2.absdiff(np.asarray(a, np.float32), np.asarray(b, np.float32))
