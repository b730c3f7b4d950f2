"""Turning blur maps into masks: fixed or Otsu threshold, on one map or the mean of several."""

from __future__ import annotations

import numpy as np


def combine_maps(maps: list[np.ndarray]) -> np.ndarray:
    """Mean of same-size maps (the "mean" mask source)."""
    if not maps:
        raise ValueError("no maps to combine")
    if len(maps) == 1:
        return maps[0]
    out = np.zeros_like(maps[0], dtype=np.float32)
    for m in maps:
        out += m
    return out / np.float32(len(maps))


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
