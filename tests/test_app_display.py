"""Display levels (app/display.py): views draw a capped copy, masks and tools stay full resolution."""

import numpy as np
import pytest
from PySide6.QtCore import QPointF

import app.display as display
from app.display import colorize, display_factor, display_shape, lookup_table, reduce, reduce_rect
from dbd_core.annotate.mask_model import MaskModel
from studio_fixtures import drag, open_window, studio_home, write_photos  # noqa: F401


def test_factor_caps_the_long_side():
    assert display_factor((3024, 4032)) == 2 and display_shape((3024, 4032), 2) == (1512, 2016)
    assert display_factor((4000, 6000)) == 3 and max(display_shape((4000, 6000), 3)) <= display.MAX_SIDE
    assert display_factor((80, 120)) == 1


def test_reduce_is_block_mean_and_local_equals_global():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (37, 53, 3), np.uint8)
    out = reduce(img, 4)
    assert out.shape == (10, 14, 3)
    assert np.abs(out[2, 3].astype(float) - img[8:12, 12:16].reshape(-1, 3).mean(0)).max() <= 0.5
    # edge blocks replicate the last row/column: a partial block of one value stays that value
    flat = np.full((5, 5), 200, np.uint8)
    assert (reduce(flat, 4) == 200).all()
    for rect in [(0, 0, 37, 53), (5, 7, 9, 30), (33, 50, 37, 53), (0, 49, 3, 53)]:
        (dy0, dx0, dy1, dx1), part = reduce_rect(img, rect, 4)
        assert np.array_equal(part, out[dy0:dy1, dx0:dx1])
    assert reduce(img, 1) is img


def test_colorize_ends_of_the_colormap():
    lut = lookup_table("viridis")
    rgb = colorize(np.array([[0.0, 1.0, 0.5]], np.float32), lut)
    assert rgb.shape == (1, 3, 3) and rgb.dtype == np.uint8
    assert np.array_equal(rgb[0, 0], lut[0, 0]) and np.array_equal(rgb[0, 1], lut[255, 0])


@pytest.mark.parametrize("outline", [False, True])
def test_overlay_after_edits_equals_full_recompute(qtbot, monkeypatch, outline):
    from app.overlay import MaskOverlayItem

    monkeypatch.setattr(display, "MAX_SIDE", 40)
    model = MaskModel((90, 130))  # k = 4: display 23 x 33
    item, fresh = MaskOverlayItem(), MaskOverlayItem()
    item.set_model(model)
    item.set_outline(outline)
    assert item.k == 4 and item._rgba.shape == (23, 33, 4)
    model.begin("hand")
    model.paint_segment((10, 10), (70, 50), 6, 1)
    model.fill_polygon([(100, 60), (129, 60), (129, 89)], 1)
    model.paint_segment((30, 30), (31, 31), 3, 0)
    model.end()
    fresh.set_model(model)
    fresh.set_outline(outline)
    assert item._rgba.any()
    assert np.array_equal(item._rgba, fresh._rgba)  # the dirty-rectangle updates lost nothing
    if not outline:  # alpha is the blurred share of each 4 x 4 block
        assert np.array_equal(item._rgba[..., 3], reduce(model.mask * np.uint8(255), 4))


def test_capped_display_and_full_resolution_painting(qtbot, tmp_path, chelsea, monkeypatch):
    monkeypatch.setattr(display, "MAX_SIDE", 64)
    photos = write_photos(tmp_path / "photos", {"cat": chelsea}, size=(200, 120))  # k = 4
    win = open_window(qtbot, photos)
    vb = win.views.photo.vb
    shown = win.views.photo.image
    assert shown.image.shape[:2] == (30, 50)  # capped: 1/4 of 120 x 200
    assert shown.boundingRect().width() == 50 and shown.mapRectToParent(shown.boundingRect()).width() == 200
    assert win.views.maps["teacher"].values.shape == (30, 50)
    assert win.maps.get((win.path_of(0), "teacher")).shape == (120, 200)  # the model keeps full maps
    s = win.session
    assert s.model.shape == (120, 200)
    s.model.set_mask(np.zeros((120, 200), np.uint8), kind="seed")
    win.tools.set_tool("brush")
    win.tools.set_radius(3)
    # A stroke in full-resolution coordinates lands on those full-resolution pixels.
    drag(win.views.photo.glw, [vb.mapViewToScene(QPointF(x, 90)) for x in (150, 160, 170, 180)])
    m = s.model.mask
    assert m[90, 152:178].all() and not m[:84].any() and not m[97:].any() and not m[:, :145].any()
    # ... and shows at once in the display-level overlay, where it equals a full recompute.
    alpha = win.views.overlay._rgba[..., 3]
    assert np.array_equal(alpha, reduce(m * np.uint8(255), 4))
    assert alpha[90 // 4, 160 // 4] == 255
