"""Studio behaviour that matters on big photos: threshold steps reuse what one photo's maps allow
(the mean map, Otsu), masks are written off the GUI thread, closing does not freeze the window."""

import numpy as np
import pytest

from app.models import FunctionPredictor, ModelProvider
from dbd_core.annotate import combine_maps, otsu_threshold, threshold_map
from dbd_core.annotate import threshold as th
from studio_fixtures import open_window, studio_home, wait_settled, write_photos  # noqa: F401


def ramp_x(rgb):
    h, w = rgb.shape[:2]
    return np.broadcast_to(np.round(np.linspace(0, 1, w, dtype=np.float32) * 50) / 50, (h, w)).copy()


def ramp_y(rgb):
    h, w = rgb.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w]
    return (0.5 + 0.5 * np.sin(yy / 40.0) * np.cos(xx / 70.0)).astype(np.float32)


def ramp_provider():
    return ModelProvider({"teacher": FunctionPredictor("ramp-x", ramp_x),
                          "student": FunctionPredictor("ramp-y", ramp_y)})


@pytest.fixture
def big_photos(tmp_path, coffee, chelsea):
    return write_photos(tmp_path / "photos", {"a": coffee, "b": chelsea}, size=(900, 600))


def test_threshold_steps_compute_the_mean_once_and_seed_what_the_uncached_mean_seeds(qtbot, big_photos,
                                                                                      monkeypatch):
    means = []
    real = th.combine_maps
    def counted(maps):
        if len(maps) > 1:
            means.append(len(maps))
        return real(maps)

    import app.session

    monkeypatch.setattr(th, "combine_maps", counted)
    monkeypatch.setattr(app.session, "combine_maps", counted, raising=False)  # wherever the studio calls it
    win = open_window(qtbot, big_photos, provider=ramp_provider())
    s = win.session
    assert s.current.source == "mean"
    maps = [win.maps.get((win.path_of(win.row), r)) for r in ("teacher", "student")]
    uncached = real(maps)
    for v in (51, 52, 54, 53, 30, 31, 80, 0, 100, 50, 50, 49):
        win.panel.slider.setValue(v)
        assert np.array_equal(s.model.mask, threshold_map(uncached, v / 100)), v
    for _ in range(2):
        win.panel.otsu.click()
        assert s.current.threshold == round(otsu_threshold(uncached), 3)
        assert np.array_equal(s.model.mask, threshold_map(uncached, s.current.threshold))
    # a hand edit, undone: the mask is no longer the last seed, the next step must start from the full map
    s.model.begin("hand"); s.model.fill_polygon([(10, 10), (400, 10), (400, 300)], 1); s.model.end()
    s.hand_edit_done()
    s.undo()
    win.panel.slider.setValue(45)
    assert np.array_equal(s.model.mask, threshold_map(uncached, 0.45))
    s.model.begin("hand"); s.model.fill_polygon([(10, 10), (400, 10), (400, 300)], 0); s.model.end()
    s.hand_edit_done()
    s.confirm = lambda text: True
    win.panel.spin.setValue(0.6)  # hand-edited: the mask waits for Re-seed
    assert win.panel.reseed.isEnabled()
    win.panel.reseed.click()
    assert np.array_equal(s.model.mask, threshold_map(uncached, 0.6))
    win.panel.source.setCurrentText("teacher")  # another source: its own map, no mean
    assert np.array_equal(s.model.mask, threshold_map(maps[0], 0.6))
    win.panel.source.setCurrentText("mean")
    assert np.array_equal(s.model.mask, threshold_map(uncached, 0.6))
    # leaving the photo and coming back reuses its mean too
    win.select(1)
    wait_settled(qtbot, win)
    win.panel.slider.setValue(40)
    win.select(0)
    wait_settled(qtbot, win)
    win.panel.slider.setValue(42)
    assert np.array_equal(s.model.mask, threshold_map(uncached, 0.42))
    assert means == [2, 2]  # one mean of both maps per photo, for every step, Otsu and re-seed
    assert np.array_equal(combine_maps(maps), uncached)
