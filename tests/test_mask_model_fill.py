"""Flood fill and the tile history of dbd_core.annotate.mask_model: the fill flips exactly its region,
undo / redo restore every state exactly, and a tile of one value is kept as that value (no bytes)."""

import cv2
import numpy as np

from dbd_core.annotate import MaskModel
from dbd_core.annotate.mask_model import TILE


def _region(mask, x, y):
    """The 4-connected region of equal pixels around (x, y), by connected components (not a flood fill)."""
    same = (mask == mask[y, x]).astype(np.uint8)
    _, labels = cv2.connectedComponents(same, connectivity=4)
    return labels == labels[y, x]


def test_whole_photo_fill_keeps_its_tiles_as_values_and_undoes_exactly():
    h, w = 3 * TILE + 40, 4 * TILE + 17  # partial tiles at the right and bottom
    m = MaskModel((h, w))
    m.begin("hand"); m.flood_fill(5, 5, 1); m.end()
    assert m.mask.all()
    # Every tile was wholly sharp and is wholly blurred: the step stores values, not 2 x h x w bytes.
    assert m.history_bytes() == 0
    m.begin("hand"); m.paint_segment((100, 100), (300, 120), 20, 0); m.end()  # a stroke across tiles
    stroked = m.mask.copy()
    assert 0 < m.history_bytes() < 2 * 4 * TILE * TILE
    m.undo()
    assert m.mask.all()
    m.undo()
    assert not m.mask.any()
    m.redo()
    assert m.mask.all()
    m.redo()
    assert np.array_equal(m.mask, stroked)


def test_history_keeps_pixels_only_of_tiles_holding_both_values():
    h, w = 5 * TILE, 6 * TILE + 100
    mask = np.zeros((h, w), np.uint8)
    cv2.circle(mask, (800, 600), 300, 1, -1)  # the fill goes around it
    m = MaskModel((h, w), mask)
    m.begin("hand"); m.flood_fill(3, 3, 1); m.end()
    assert m.mask.all()
    expect = 0
    for y in range(0, h, TILE):
        for x in range(0, w, TILE):
            old, new = mask[y:y + TILE, x:x + TILE], m.mask[y:y + TILE, x:x + TILE]
            if not np.array_equal(old, new):
                expect += sum(t.nbytes for t in (old, new) if t.min() != t.max())
    assert 0 < expect < mask.nbytes / 2  # storing every changed tile twice: ~2 x mask.nbytes
    assert m.history_bytes() == expect  # the tiles around the circle, not every tile the fill changed
    m.undo()
    assert np.array_equal(m.mask, mask)
    m.redo()
    assert m.mask.all()


def test_fills_strokes_and_seeds_in_any_order_undo_and_redo_exactly(rng):
    h, w = 2 * TILE + 30, 3 * TILE + 5
    field = cv2.resize(rng.normal(size=(5, 7)).astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
    m = MaskModel((h, w), (field > 0).astype(np.uint8))
    states = [m.mask.copy()]
    for i in range(60):
        op = i % 5
        if op == 3:  # a threshold seed (consecutive seeds would merge: one in five never does)
            m.set_mask((field > rng.uniform(-0.5, 0.5)).astype(np.uint8))
        else:
            m.begin("hand")
            if op == 1:  # a stroke and a fill in one block: the fill meets tiles the stroke already saved
                x, y = rng.uniform(0, w), rng.uniform(0, h)
                m.paint_segment((x, y), (x + 80, y + 30), rng.uniform(2, 30), int(rng.integers(0, 2)))
            x, y = int(rng.integers(0, w)), int(rng.integers(0, h))
            if op == 4:
                m.paint_segment((x, y), (w - x, h - y), rng.uniform(1, 12), int(rng.integers(0, 2)))
            else:
                before = m.mask.copy()
                value = 1 - int(m.mask[y, x])
                region = _region(before, x, y)
                rect = m.flood_fill(x, y, value)
                expect = before.copy()
                expect[region] = value
                assert np.array_equal(m.mask, expect)
                ys, xs = np.nonzero(region)
                assert rect == (ys.min(), xs.min(), ys.max() + 1, xs.max() + 1)
            m.end()
        if not np.array_equal(m.mask, states[-1]):
            states.append(m.mask.copy())
        assert set(np.unique(m.mask)) <= {0, 1}
        if i % 7 == 6:  # undo two, redo one: later edits must not disturb kept tiles
            m.undo(); m.undo()
            assert np.array_equal(m.mask, states[-3])
            m.redo()
            states = states[:-1]
            assert np.array_equal(m.mask, states[-1])
    for k in range(len(states) - 1):
        m.undo()
        assert np.array_equal(m.mask, states[-2 - k])
    assert not m.can_undo()
    for _ in range(len(states) - 1):
        m.redo()
    assert np.array_equal(m.mask, states[-1])


def test_edits_after_a_fill_in_the_same_block_reach_the_history():
    m = MaskModel((3 * TILE, 3 * TILE + 50))
    m.begin("hand")
    m.flood_fill(5, 5, 1)  # every tile wholly blurred
    m.paint_segment((100, 100), (700, 140), 20, 0)  # then a cut through some of them, in the same block
    m.flood_fill(400, 120, 1)  # the cut is one region: filled again, blurred everywhere but ...
    m.paint_segment((300, 500), (320, 520), 8, 0)  # ... a spot
    m.end()
    after = m.mask.copy()
    assert not after[500, 310] and after[120, 400] and after[0, 0] and 0 < (after == 0).sum() < 1000
    m.undo()
    assert not m.mask.any()
    m.redo()
    assert np.array_equal(m.mask, after)
