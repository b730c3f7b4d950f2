"""Qt-free: the cached mask source (dbd_core.annotate.threshold.SeedSource) and the tile-hinted
MaskModel.set_mask give exactly the masks, history and redraw notices of the uncached full path."""

import numpy as np
import pytest

from dbd_core.annotate import MaskModel, combine_maps, threshold_map
from dbd_core.annotate import threshold as th
from dbd_core.annotate.threshold import SeedSource


def _maps(rng, shape=(700, 1000), nan=True):
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    a = np.round((xx / w + 0.1 * np.sin(yy / 37)) * 40) / 40  # smooth, with many exact ties at k / 40
    b = np.clip(yy / h + rng.normal(0, 0.02, shape), 0, 1).astype(np.float32)
    a = np.clip(a, 0, 1).astype(np.float32)
    if nan:
        a[5:9, 600:610] = np.nan  # a NaN pixel is never blurred, whatever the threshold
    return [a, b]


def test_seed_source_steps_equal_full_thresholds_and_the_mean_is_made_once(rng, monkeypatch):
    calls = []
    real = th.combine_maps
    monkeypatch.setattr(th, "combine_maps", lambda maps: (calls.append(len(maps)), real(maps))[1])
    maps = _maps(rng)
    src = SeedSource(maps)
    uncached = combine_maps(maps)
    buf = src.threshold(0.5, out=np.empty(src.shape, bool)).view(bool)
    prev = 0.5
    for t in [0.5, 0.51, 0.525, 0.55, 0.3, 0.31, 0.9, 0.0, 1.0, 0.475, 0.475, 0.6]:
        src.update(buf, prev, t)
        assert np.array_equal(buf, threshold_map(uncached, t)), t
        prev = t
    assert calls == [2]  # one mean for every step
    clean = SeedSource(_maps(rng, nan=False))
    assert clean.otsu() == th.otsu_threshold(combine_maps(list(clean.maps))) and clean.otsu() == clean.otsu()
    assert src.matches(list(maps)) and not src.matches([maps[0], maps[1].copy()])


@pytest.mark.parametrize("steps", [[0.5, 0.52, 0.54, 0.53, 0.2, 0.21, 0.8], [0.3, 0.3, 0.31, 0.95, 0.0]])
def test_set_mask_with_a_tile_hint_equals_the_full_comparison(rng, steps):
    maps = _maps(rng)
    src = SeedSource(maps)
    full, hinted = MaskModel(src.shape), MaskModel(src.shape)
    painted = [np.zeros(src.shape, bool), np.zeros(src.shape, bool)]
    for model, seen in zip((full, hinted), painted):
        def heard(rect, seen=seen):
            y0, x0, y1, x1 = rect
            seen[y0:y1, x0:x1] = True
        model.listeners.append(heard)
    buf = np.empty(src.shape, bool)
    src.threshold(steps[0], out=buf)
    full.set_mask(buf.view(np.uint8))
    hinted.set_mask(buf.view(np.uint8))
    full.forget_history(), hinted.forget_history()  # the first seed is the start (as in the studio)
    prev = steps[0]
    for t in steps[1:]:
        before = hinted.mask.copy()
        painted[1][:] = False
        tiles = src.update(buf, prev, t)
        hinted.set_mask(buf.view(np.uint8), tiles=tiles)
        full.set_mask(threshold_map(src.map, t))
        assert np.array_equal(hinted.mask, full.mask) and np.array_equal(hinted.mask, threshold_map(src.map, t))
        assert painted[1][before != hinted.mask].all()  # every changed pixel was announced for redraw
        prev = t
    # one merged seed step each, undoing to the same first seed
    assert full.undo() == hinted.undo() and np.array_equal(full.mask, hinted.mask)
    assert np.array_equal(hinted.mask, threshold_map(src.map, steps[0]))
    assert full.redo() == hinted.redo() and np.array_equal(full.mask, hinted.mask)


def _reference_fill(mask, x, y, value):
    """The flood fill as the studio did it before: the region as a bool copy, a masked assignment."""
    import cv2

    out = mask.copy()
    region = np.zeros((mask.shape[0] + 2, mask.shape[1] + 2), np.uint8)
    cv2.floodFill(out, region, (x, y), 0, 0, 0, 4 | cv2.FLOODFILL_MASK_ONLY | (1 << 8))
    out[region[1:-1, 1:-1].astype(bool)] = value
    return out


def test_flood_fill_flips_exactly_the_clicked_region_and_undoes(rng):
    mask = (rng.random((300, 520)) < 0.45).astype(np.uint8)
    mask[100:200, :] = 0  # a band that joins many regions
    for x, y in [(10, 150), (3, 3), (511, 299), (260, 40)]:
        m = MaskModel(mask.shape, mask)
        value = 1 - int(mask[y, x])
        m.begin("hand"); rect = m.flood_fill(x, y, value); m.end()
        assert np.array_equal(m.mask, _reference_fill(mask, x, y, value))
        changed = np.argwhere(m.mask != mask)
        assert rect[0] <= changed[:, 0].min() and changed[:, 0].max() < rect[2]
        assert rect[1] <= changed[:, 1].min() and changed[:, 1].max() < rect[3]
        m.undo()
        assert np.array_equal(m.mask, mask)
    m = MaskModel(mask.shape, mask)
    m.begin("hand"); m.flood_fill(10, 150, 255); m.end()  # any true value means blurred: the mask stays {0, 1}
    assert m.mask.max() == 1 and np.array_equal(m.mask, _reference_fill(mask, 10, 150, 1))
    assert m.flood_fill(10, 150, 7) is None  # already blurred there
