"""The mask overlay's two pictures (app/overlay.py): filled and outline. Whatever the order of edits,
toggles, colour changes and rebinding, the shown pixels equal those made from scratch from the whole
mask; and a toggle, or a redraw of tiles of one value, reduces no more of the mask than changed."""

import cv2
import numpy as np
import pytest

import app.display as display
import app.overlay as overlay_mod
from app.display import MASK_COLORS
from dbd_core.annotate import MaskModel

SHAPE = (1000, 2900)  # k = 3 with MAX_SIDE 1000: partial display blocks and tiles at the right and bottom


def outline_from_scratch(mask, k, color):
    """The outline as drawn before the overlay kept tiles: one morphological gradient of the whole mask."""
    width = max(2, int(max(mask.shape) / 700))
    edge = cv2.morphologyEx(mask, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8), iterations=max(1, width // 2))
    return display.mask_rgba(edge, k, color)


def fill_from_scratch(mask, k, color):
    return display.mask_rgba(mask, k, color)


def subject(shape=SHAPE):
    m = np.ones(shape, np.uint8)
    cv2.ellipse(m, (shape[1] // 2, shape[0] // 2), (shape[1] // 6, shape[0] // 4), 0, 0, 360, 0, -1)
    return m


@pytest.fixture
def overlay(qtbot, monkeypatch):
    monkeypatch.setattr(display, "MAX_SIDE", 1000)
    return overlay_mod.MaskOverlayItem()


@pytest.fixture
def reduced(monkeypatch):
    """Pixels of the full-resolution mask the overlay reduces to display level (its real work)."""
    seen = []
    real = overlay_mod.reduce

    def spy(arr, k):
        seen.append(arr.shape[0] * arr.shape[1])
        return real(arr, k)

    monkeypatch.setattr(overlay_mod, "reduce", spy)
    return seen


def check(ov, model, color=display.MASK_COLOR):
    make = outline_from_scratch if ov.outline else fill_from_scratch
    assert np.array_equal(ov._rgba, make(model.mask, ov.k, color))


def test_pixels_equal_the_picture_from_scratch_after_any_edits_and_toggles(overlay):
    ov = overlay
    mask = subject()
    cv2.circle(mask, (300, 200), 90, 0, -1)
    model = MaskModel(SHAPE, mask)
    ov.set_model(model)
    assert ov.k == 3
    check(ov, model)
    # Edits while filled: the outline catches up on them when shown.
    model.begin("hand")
    model.paint_segment((100, 900), (2800, 950), 30, 0)
    model.fill_polygon([(2000, 50), (2890, 80), (2600, 400)], 0)
    model.end()
    model.begin("hand"); model.flood_fill(300, 200, 1); model.end()
    model.set_mask(np.roll(model.mask, 40, axis=1))  # a threshold seed
    ov.set_outline(True)
    check(ov, model)
    # Edits while outlined (strokes, a fill, undo, redo): the filled picture catches up when shown.
    model.begin("hand")
    for x in range(400, 2400, 40):
        model.paint_segment((x, 500 + 200 * np.sin(x / 300)), (x + 40, 500 + 200 * np.sin((x + 40) / 300)), 12, 1)
    model.end()
    check(ov, model)
    model.begin("hand"); model.flood_fill(1450, 500, 0); model.end()
    check(ov, model)
    model.undo()
    check(ov, model)
    model.redo()
    check(ov, model)
    ov.set_outline(False)
    check(ov, model)
    # A colour change recolours both pictures.
    cyan = MASK_COLORS["cyan"]
    ov.set_color(cyan)
    check(ov, model, cyan)
    model.begin("hand"); model.paint_segment((50, 50), (60, 990), 5, 1); model.end()
    ov.set_outline(True)
    check(ov, model, cyan)
    # Rebinding with outline on, with the worker's filled pixels adopted.
    ov.set_model(None)
    ov.set_model(model, fill_from_scratch(model.mask, 3, cyan), cyan)
    check(ov, model, cyan)
    ov.set_outline(False)
    check(ov, model, cyan)


def test_toggles_reduce_only_what_changed(overlay, reduced):
    ov = overlay
    model = MaskModel(SHAPE, subject())
    area = SHAPE[0] * SHAPE[1]
    ov.set_model(model)
    reduced.clear()
    ov.set_outline(True)  # first outline: only the tiles near the ellipse's edge
    check(ov, model)
    assert 0 < sum(reduced) < 0.4 * area
    reduced.clear()
    for on in (False, True, False, True):
        ov.set_outline(on)
        check(ov, model)
    assert reduced == []  # nothing changed between toggles: nothing is recomputed
    # A short stroke while filled: the outline redoes only the tiles within reach of it.
    ov.set_outline(False)
    model.begin("hand"); model.paint_segment((600, 300), (640, 320), 10, 0); model.end()
    reduced.clear()
    ov.set_outline(True)
    check(ov, model)
    side = ov._side
    assert 0 < sum(reduced) <= 4 * side * side


@pytest.mark.parametrize("outline", [False, True])
def test_a_fill_over_the_whole_photo_reduces_nothing(overlay, reduced, outline):
    ov = overlay
    model = MaskModel(SHAPE)
    ov.set_model(model)
    ov.set_outline(outline)
    reduced.clear()
    model.begin("hand"); model.flood_fill(10, 10, 1); model.end()
    check(ov, model)  # every tile is one colour (or, outlined, empty): painted without a reduction
    model.undo()
    check(ov, model)
    assert reduced == []
    assert (ov._rgba[..., 3] == 0).all()
