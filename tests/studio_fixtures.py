"""Shared helpers for the studio GUI tests: a fast deterministic fake predictor, small photos,
opening a window and synthetic mouse input sent to the view's viewport (as pyqtgraph's own tests do)."""

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

pg.setConfigOptions(mouseRateLimit=0)  # else fast synthetic moves are dropped


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


@pytest.fixture(autouse=True)
def studio_home(tmp_path, monkeypatch):
    """Automatic projects go to tmp_path, never to the user's real data folder."""
    home = tmp_path / "studio-home"
    monkeypatch.setenv("DBD_STUDIO_HOME", str(home))
    return home


def write_photos(folder, images, size=(120, 80)):
    folder.mkdir(parents=True, exist_ok=True)
    for name, img in images.items():
        small = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
        cv2.imwrite(str(folder / f"{name}.jpg"), small[..., ::-1])
    return folder


@pytest.fixture
def photos(tmp_path, chelsea, coffee):
    return write_photos(tmp_path / "photos", {"cat": chelsea, "cup": coffee})


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


def _send(view, kind, p, buttons, modifiers):
    vp = view.viewport()
    ev = QMouseEvent(kind, QPointF(p), QPointF(vp.mapToGlobal(p.toPoint())), Qt.MouseButton.LeftButton,
                     buttons, modifiers)
    QApplication.sendEvent(vp, ev)


def drag(view, points, modifiers=Qt.KeyboardModifier.NoModifier):
    """Press at points[0] (scene coordinates), move through the rest, release."""
    pts = [QPointF(view.mapFromScene(p)) for p in points]
    _send(view, QEvent.Type.MouseButtonPress, pts[0], Qt.MouseButton.LeftButton, modifiers)
    for p in pts[1:]:
        _send(view, QEvent.Type.MouseMove, p, Qt.MouseButton.LeftButton, modifiers)
    _send(view, QEvent.Type.MouseButtonRelease, pts[-1], Qt.MouseButton.NoButton, modifiers)


def click(view, point, modifiers=Qt.KeyboardModifier.NoModifier):
    """A left click (press + release at the same place) at a scene point."""
    p = QPointF(view.mapFromScene(point))
    _send(view, QEvent.Type.MouseButtonPress, p, Qt.MouseButton.LeftButton, modifiers)
    _send(view, QEvent.Type.MouseButtonRelease, p, Qt.MouseButton.NoButton, modifiers)


def image_point(win, x, y):
    """Scene point of photo pixel coordinates (x, y) in the photo view."""
    return win.views.photo.vb.mapViewToScene(QPointF(x, y))


@pytest.fixture(scope="session")
def astronaut():
    from skimage import data

    return data.astronaut()
