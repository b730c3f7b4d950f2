"""End-to-end studio tests (offscreen, pytest-qt) with a fast, deterministic fake predictor."""

import cv2
import numpy as np
import pyqtgraph as pg
import pytest
from PySide6.QtCore import QEvent, QPointF, Qt
from PySide6.QtGui import QMouseEvent
from PySide6.QtWidgets import QApplication

import app  # noqa: F401
from app.main_window import MainWindow
from app.models import FunctionPredictor, ModelProvider
from dbd_core.annotate import ProjectStore
from dbd_core.errors import WeightsMissingError

pg.setConfigOptions(mouseRateLimit=0)  # else fast synthetic moves are dropped


@pytest.fixture(autouse=True)
def studio_home(tmp_path, monkeypatch):
    """Automatic projects go to tmp_path, never to the user's real data folder."""
    home = tmp_path / "studio-home"
    monkeypatch.setenv("DBD_STUDIO_HOME", str(home))
    return home


def left_half(rgb):
    m = np.full(rgb.shape[:2], 0.2, np.float32)
    m[:, : rgb.shape[1] // 2] = 0.8
    return m


def left_third(rgb):
    m = np.full(rgb.shape[:2], 0.1, np.float32)
    m[:, : rgb.shape[1] // 3] = 0.9
    return m


def fake_provider():
    return ModelProvider({"teacher": FunctionPredictor("fake-teacher", left_half),
                          "student": FunctionPredictor("fake-student", left_third)})


@pytest.fixture
def photos(tmp_path, chelsea, coffee):
    d = tmp_path / "photos"
    d.mkdir()
    for name, img in (("cat", chelsea), ("cup", coffee)):
        small = cv2.resize(img, (120, 80), interpolation=cv2.INTER_AREA)
        cv2.imwrite(str(d / f"{name}.jpg"), small[..., ::-1])
    return d


def open_window(qtbot, photos=None, project=None, provider=None):
    win = MainWindow(provider or fake_provider(), project=project)
    qtbot.addWidget(win)
    win.resize(1200, 800)
    win.show()
    qtbot.waitExposed(win)
    if photos is not None:
        with qtbot.waitSignal(win.maps_settled, timeout=10000):
            win.add_paths([photos])
    return win


def wait_settled(qtbot, win):
    qtbot.waitUntil(lambda: win.row >= 0 and all((win.path_of(win.row), r) in win.maps or
                                                 (win.path_of(win.row), r) in win.failures for r in ("teacher", "student"))
                    and win.session.model is not None, timeout=10000)


def test_launch_loads_photos_and_maps_arrive(qtbot, photos):
    win = open_window(qtbot, photos)
    assert [e.name for e in win.entries] == ["cat", "cup"]
    path = win.path_of(0)
    t = win.maps.get((path, "teacher"))
    assert t.shape == (80, 120) and np.allclose(t, left_half(np.zeros((80, 120, 3))))
    assert not win.views.maps["teacher"].message.isVisible()
    diff = win.views.diff.image.image
    assert np.allclose(diff, np.abs(left_half(diff[..., None]) - left_third(diff[..., None])))
    # Seeded from the mean at 0.5: columns < 40 (both say blurred) and 40..59 (mean 0.5) are blurred.
    assert win.session.model.mask[:, :60].all() and not win.session.model.mask[:, 60:].any()
    qtbot.waitUntil(lambda: win.list.item(1).icon().isNull() is False, timeout=5000)  # thumbnails arrive
    win.select(1)  # switching photos
    wait_settled(qtbot, win)
    assert win.session.current.name == "cup"
    assert "s" in win.status_time.text() and "120×80" in win.status_size.text()


def test_threshold_changes_mask_and_hand_edits_are_protected(qtbot, photos):
    win = open_window(qtbot, photos)
    s = win.session
    win.panel.source.setCurrentText("student")
    win.panel.spin.setValue(0.95)
    assert s.model.mask.sum() == 0
    win.panel.spin.setValue(0.5)
    assert s.model.mask[:, :40].all() and not s.model.mask[:, 40:].any()
    win.panel.otsu.click()
    assert 0.1 <= s.current.threshold < 0.9 and s.model.mask[:, :40].all()
    # A hand edit, then a threshold change: the mask keeps the edit until the user re-seeds.
    s.model.begin("hand"); s.model.paint_segment((100, 40), (110, 40), 3, 1); s.model.end(); s.hand_edit_done()
    edited = s.model.mask.copy()
    win.panel.spin.setValue(0.95)
    assert np.array_equal(s.model.mask, edited) and win.panel.reseed.isEnabled()
    s.confirm = lambda text: False
    win.panel.reseed.click()
    assert np.array_equal(s.model.mask, edited)
    s.confirm = lambda text: True
    win.panel.reseed.click()
    assert s.model.mask.sum() == 0 and not s.model.hand_edited


def drag(view, points, modifiers=Qt.KeyboardModifier.NoModifier):
    """Press at points[0], move through the rest, release: synthetic events to the viewport."""
    vp = view.viewport()

    def send(kind, p, buttons):
        ev = QMouseEvent(kind, QPointF(p), QPointF(vp.mapToGlobal(p.toPoint())), Qt.MouseButton.LeftButton,
                         buttons, modifiers)
        QApplication.sendEvent(vp, ev)

    pts = [view.mapFromScene(p) for p in points]
    send(QEvent.Type.MouseButtonPress, QPointF(pts[0]), Qt.MouseButton.LeftButton)
    for p in pts[1:]:
        send(QEvent.Type.MouseMove, QPointF(p), Qt.MouseButton.LeftButton)
    send(QEvent.Type.MouseButtonRelease, QPointF(pts[-1]), Qt.MouseButton.NoButton)


def test_synthetic_drag_paints_and_undo_redo_restore_exactly(qtbot, photos):
    win = open_window(qtbot, photos)
    qtbot.wait(50)
    s, vb = win.session, win.views.photo.vb
    win.panel.spin.setValue(0.99)  # empty mask to start
    assert s.model.mask.sum() == 0
    before = s.model.mask.copy()
    win.tools.set_tool("brush")
    win.tools.set_radius(3)
    scene_pts = [vb.mapViewToScene(QPointF(x, 40)) for x in (20, 30, 45, 60, 80, 100)]
    drag(win.views.photo.glw, scene_pts)
    m = s.model.mask
    # Every column the stroke crossed is painted on row 40 (interpolated between events), and
    # nothing far from the stroke; the radius is in image pixels.
    assert m[40, 22:99].all()
    assert not m[:30].any() and not m[51:].any()
    assert s.current.status == "in progress" and s.model.hand_edited
    painted = m.copy()
    win.tools.set_tool("eraser")
    drag(win.views.photo.glw, [vb.mapViewToScene(QPointF(x, 40)) for x in (50, 55, 60)])
    assert not s.model.mask[40, 52:58].any()
    win.panel.undo.click()
    assert np.array_equal(s.model.mask, painted)
    win.panel.undo.click()
    assert np.array_equal(s.model.mask, before)
    win.panel.redo.click()
    assert np.array_equal(s.model.mask, painted)
    # The overlay buffer follows the model (only the changed rectangle is recoloured).
    assert np.array_equal(win.views.overlay._rgba[..., 3] > 0, s.model.mask > 0)


def test_autosave_then_reopen_restores_state(qtbot, photos, tmp_path):
    proj = tmp_path / "proj"
    win = open_window(qtbot, photos, project=proj)
    s = win.session
    s.model.begin("hand"); s.model.fill_polygon([(70, 10), (110, 10), (110, 60)], 1); s.model.end(); s.hand_edit_done()
    s.set_status(s.current, "done")
    win.panel.spin.setValue(0.3)  # stored threshold even though the edited mask is kept
    mask = s.model.mask.copy()
    qtbot.waitUntil(lambda: (proj / "masks" / "cat.png").exists(), timeout=3000)  # debounced autosave
    qtbot.wait(900)
    win.select(1)
    wait_settled(qtbot, win)
    win.close()
    assert not list(proj.rglob("*.tmp*"))

    again = open_window(qtbot, project=proj)
    wait_settled(qtbot, again)
    assert again.session.current.name == "cup"  # the view (current photo) is restored
    again.select(0)
    wait_settled(qtbot, again)
    e = again.session.current
    assert (e.status, e.threshold, e.hand_edited) == ("done", 0.3, True)
    assert np.array_equal(again.session.model.mask, mask)
    assert again.list.status(0) == "done"
    again.close()


def test_export_round_trip(qtbot, photos, tmp_path):
    from app.export_dialog import export_project
    from dbd_core.data.formats import open_dataset_reader

    win = open_window(qtbot, photos)
    s = win.session
    s.set_status(s.current, "done")
    cat_mask = s.model.mask.copy()
    for target in (tmp_path / "ds", tmp_path / "ds.h5"):
        assert export_project(s, target, only_done=True) == 1
        with open_dataset_reader(target) as r:
            rgb, mask, meta = r.get("cat")
            assert np.array_equal(mask, cat_mask)
            assert r.sample("cat").read_bytes() == (photos / "cat.jpg").read_bytes()  # original bytes
            assert len(r) == 1
    assert export_project(s, tmp_path / "cancelled", only_done=False, cancel=lambda: True) == 0
    assert not (tmp_path / "cancelled").exists()


def test_corrupt_photo_is_listed_as_failed_and_rest_load(qtbot, photos):
    (photos / "broken.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    win = open_window(qtbot)
    win.add_paths([photos])
    names = [e.name for e in win.entries]
    row = names.index("broken")
    qtbot.waitUntil(lambda: win.list.status(row) == "failed", timeout=10000)
    assert "broken.jpg" in win.entries[row].error and "not a readable image" in win.entries[row].error
    assert win.row == row  # it was selected first (sorted): the view shows the reason, no crash
    qtbot.waitUntil(lambda: win.views.photo.message.isVisible(), timeout=5000)
    assert "not a readable image" in win.views.photo.message.text()
    good = [i for i, e in enumerate(win.entries) if not e.error]
    assert len(good) == 2
    for i in good:  # the rest load, with their maps
        win.select(i)
        wait_settled(qtbot, win)
        assert win.maps.get((win.path_of(i), "student")) is not None
    win.select(win._step(1))  # next/previous skip the failed photo
    assert not win.entries[win.row].error


def test_missing_weights_message_is_shown_and_other_map_works(qtbot, photos):
    class Missing:
        name = "teacher"

        def predict(self, rgb):
            raise WeightsMissingError("teacher weights not installed: run `dbd fetch-weights` (example)")

    provider = ModelProvider({"teacher": Missing(), "student": FunctionPredictor("fake", left_third)})
    win = open_window(qtbot, photos, provider=provider)
    panel = win.views.maps["teacher"]
    assert panel.message.isVisible() and "weights not installed" in panel.message.text()
    assert panel.image.image is None  # never a random map
    assert win.maps.get((win.path_of(0), "student")) is not None
    assert win.session.model.mask[:, :40].all()  # the mean seeds from the map that exists
