"""Turning blur maps into masks: fixed or Otsu threshold, on one map or the mean of several."""

from __future__ import annotations

import numpy as np

from dbd_core.annotate.mask_model import TILE


def combine_maps(maps: list[np.ndarray]) -> np.ndarray:
    """Mean of same-size maps (the "mean" mask source)."""
    if not maps:
        raise ValueError("no maps to combine")
    if len(maps) == 1:
        return maps[0]
    out = np.array(maps[0], dtype=np.float32)  # one full-size array, summed and divided in place
    for m in maps[1:]:
        out += m
    out /= np.float32(len(maps))
    return out


def threshold_map(blur_map: np.ndarray, t: float, out: np.ndarray | None = None) -> np.ndarray:
    """Map (1 = blurred) -> uint8 {0,1} mask, 1 where the map is >= t. ``out``: a bool array of the map's
    shape to reuse (a live slider re-thresholds a 12 MP map many times a second; a fresh array costs
    4 ms of page faults each time)."""
    # The bool result viewed as uint8 is the {0,1} mask already: no second pass (12 MP: 4 ms, not 13).
    return np.greater_equal(np.asarray(blur_map), np.float32(t), out=out).view(np.uint8)


def otsu_threshold(blur_map: np.ndarray, max_samples: int = 1_000_000) -> float:
    """Otsu's threshold of a map. Large maps are subsampled on a regular grid: the histogram of a
    24 MP map is the same to three decimals from a million samples, at a fraction of the time."""
    from skimage.filters import threshold_otsu

    m = np.asarray(blur_map, dtype=np.float32)
    step = max(1, int(np.sqrt(m.size / max_samples)))
    sample = m[::step, ::step]
    if float(sample.max()) - float(sample.min()) < 1e-6:
        return 0.5  # a flat map has no two classes; fall back to the neutral threshold
    return float(threshold_otsu(sample, nbins=256))


class SeedSource:
    """One photo's mask source (one map, or the mean of its maps) with what every threshold step reuses.

    Computed once per (photo, maps) pair, never per step: the mean of the maps (a full-size float pass over
    each: 110 ms at 48 MP), Otsu's threshold, and each tile's lowest and highest value. The last make a
    step cheap: going from threshold ``t0`` to ``t1`` can change only pixels with ``t0 <= v < t1`` (or the
    other way round), so only tiles whose value range meets that interval need thresholding again
    (:meth:`update`). A slider step on a smooth map touches the tiles its boundary crosses, not 48 MP.

    The maps are held, so :meth:`matches` can tell by identity whether the caller's maps are still these.
    """

    def __init__(self, maps: list[np.ndarray], tile: int = TILE):  # MaskModel's grid: set_mask(tiles=) speaks it
        if not maps:
            raise ValueError("no maps to combine")
        self.maps = tuple(maps)
        self.tile = int(tile)
        self._map: np.ndarray | None = None
        self._otsu: float | None = None
        self._lo: np.ndarray | None = None  # per tile: lowest value (NaN ignored)
        self._hi: np.ndarray | None = None  # per tile: highest value

    def matches(self, maps: list[np.ndarray]) -> bool:
        return len(maps) == len(self.maps) and all(a is b for a, b in zip(maps, self.maps))

    @property
    def map(self) -> np.ndarray:
        if self._map is None:
            self._map = combine_maps(list(self.maps))
        return self._map

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.maps[0].shape[:2])

    def otsu(self) -> float:
        if self._otsu is None:
            self._otsu = otsu_threshold(self.map)
        return self._otsu

    def _ranges(self) -> tuple[np.ndarray, np.ndarray]:
        if self._lo is None:
            m = np.asarray(self.map, np.float32)
            rows, cols = np.arange(0, m.shape[0], self.tile), np.arange(0, m.shape[1], self.tile)
            # fmin/fmax skip NaN: a NaN pixel is never >= t, so it never changes with the threshold.
            self._lo = np.fmin.reduceat(np.fmin.reduceat(m, cols, axis=1), rows, axis=0)
            self._hi = np.fmax.reduceat(np.fmax.reduceat(m, cols, axis=1), rows, axis=0)
        return self._lo, self._hi

    def threshold(self, t: float, out: np.ndarray | None = None) -> np.ndarray:
        """The whole mask at ``t`` (as :func:`threshold_map`)."""
        return threshold_map(self.map, t, out=out)

    def tiles_between(self, t0: float, t1: float) -> np.ndarray:
        """Tile grid (bool): the tiles holding a pixel whose mask differs between thresholds t0 and t1."""
        lo_t, hi_t = sorted((np.float32(t0), np.float32(t1)))
        lo, hi = self._ranges()
        if lo_t == hi_t:
            return np.zeros(lo.shape, bool)
        # Some pixel v with lo_t <= v < hi_t can lie in the tile only if its max >= lo_t and its min < hi_t.
        return (hi >= lo_t) & (lo < hi_t)

    def update(self, mask: np.ndarray, t0: float, t1: float) -> np.ndarray:
        """``mask`` (a uint8 or bool view holding exactly the mask at ``t0``) becomes the mask at ``t1``, in
        place, re-thresholding only the tiles that can change. Returns those tiles (bool grid)."""
        tiles = self.tiles_between(t0, t1)
        m, k, t = self.map, self.tile, np.float32(t1)
        out = mask.view(bool) if mask.dtype == np.uint8 else mask
        if tiles.mean() > 0.5:  # most of the photo: one whole pass is cheaper than a loop of tiles
            np.greater_equal(m, t, out=out)
            return tiles
        for ty, tx in zip(*np.nonzero(tiles)):
            sl = (slice(ty * k, (ty + 1) * k), slice(tx * k, (tx + 1) * k))
            np.greater_equal(m[sl], t, out=out[sl])
        return tiles
