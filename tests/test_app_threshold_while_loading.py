"""A threshold chosen while the next photo is still loading (its photo, its saved mask or its maps not in yet)
is the one its mask is seeded with when they arrive: shown in the panel, no extra undo step, and never over
a mask the user edited by hand. The models are gated, so "still computing" is a state the test holds, not a
race it hopes to win."""

import threading

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

import app.workers as workers
from app.models import FunctionPredictor, ModelProvider
from dbd_core.annotate import ProjectStore, combine_maps, threshold_map
from studio_fixtures import open_window, photos, studio_home, wait_settled  # noqa: F401

GATE_S = 20  # a gate never released (a failing test) stops blocking the worker after this long


def ramp_x(rgb):
    h, w = rgb.shape[:2]
    return np.broadcast_to(np.linspace(0, 1, w, dtype=np.float32), (h, w)).copy()


def ramp_y(rgb):
    h, w = rgb.shape[:2]
    return np.broadcast_to(np.linspace(0, 1, h, dtype=np.float32)[:, None], (h, w)).copy()


class Gate:
    """Holds a model (or a read) on the worker thread once armed, until released; says when it is held."""

    def __init__(self):
        self.armed, self.entered, self.release = False, threading.Event(), threading.Event()

    def __call__(self):
        if self.armed:
            self.entered.set()
            self.release.wait(GATE_S)


def gated_provider(teacher_gate, student_gate):
    def teacher(rgb):
        teacher_gate()
        return ramp_x(rgb)

    def student(rgb):
        student_gate()
        return ramp_y(rgb)

    # Diagonal ramps: every threshold, and the mean against either map alone, give a different mask.
    return ModelProvider({"teacher": FunctionPredictor("ramp-x", teacher),
                          "student": FunctionPredictor("ramp-y", student)})


def mean_seed(win, row, t):
    path = win.path_of(row)
    return threshold_map(combine_maps([win.maps.get((path, "teacher")), win.maps.get((path, "student"))]), t)


def thumbnails_in(qtbot, win):
    # A thumbnail decodes with the same read_image the test gates: let them all finish first.
    qtbot.waitUntil(lambda: all(not win.list.item(r).icon().isNull() for r in range(len(win.entries))),
                    timeout=10000)


def test_a_threshold_typed_while_the_next_photo_loads_seeds_it_when_its_maps_arrive(qtbot, photos, monkeypatch):
    teacher, student = Gate(), Gate()
    win = open_window(qtbot, photos, provider=gated_provider(teacher, student))
    thumbnails_in(qtbot, win)
    image = Gate()
    real_read = workers.read_image
    monkeypatch.setattr(workers, "read_image", lambda path: (image(), real_read(path))[1])
    image.armed = teacher.armed = student.armed = True
    win.select(1)
    qtbot.waitUntil(image.entered.is_set, timeout=10000)  # the photo itself is still being read
    s, cup = win.session, win.entries[1]
    assert s.current is None and win.views.overlay.model is None
    win.activateWindow()
    qtbot.waitUntil(win.isActiveWindow, timeout=3000)
    win.panel.spin.setFocus()
    qtbot.waitUntil(win.panel.spin.hasFocus, timeout=3000)
    win.panel.spin.lineEdit().selectAll()
    QTest.keyClicks(win.panel.spin.lineEdit(), "0.35")
    QTest.keyClick(win.panel.spin, Qt.Key.Key_Return)
    QApplication.processEvents()
    assert cup.threshold == pytest.approx(0.35)  # taken for the photo shown, not dropped for want of a mask
    win.panel.status.setCurrentText("in progress")  # the panel is re-shown from the entry: it keeps the choice
    assert win.panel.spin.value() == pytest.approx(0.35) and win.panel.slider.value() == 35
    image.release.set()
    qtbot.waitUntil(teacher.entered.is_set, timeout=10000)
    teacher.release.set()
    student.release.set()
    wait_settled(qtbot, win)
    assert s.current is cup
    assert np.array_equal(s.model.mask, mean_seed(win, 1, 0.35))  # not the 0.5 it had when it was opened
    assert not s.model.can_undo() and not win.panel.undo.isEnabled()  # the photo's starting mask
    assert win.panel.spin.value() == pytest.approx(0.35) and win.panel.slider.value() == 35
    assert cup.seeded_with == {"source": "mean", "threshold": 0.35}
    qtbot.waitUntil(lambda: not s.save_pending, timeout=10000)
    saved = ProjectStore.open(s.store.folder)
    assert saved.photos[1].threshold == pytest.approx(0.35)
    assert np.array_equal(saved.load_mask(saved.photos[1]), mean_seed(win, 1, 0.35))


def test_the_mean_seed_waits_for_both_maps_and_steps_before_them_are_no_undo_steps(qtbot, photos):
    teacher, student = Gate(), Gate()
    win = open_window(qtbot, photos, provider=gated_provider(teacher, student))
    s, cat = win.session, win.entries[0]
    assert np.array_equal(s.model.mask, mean_seed(win, 0, 0.5))  # the mean of both maps, not the first alone
    teacher.armed = student.armed = True
    win.select(1)
    qtbot.waitUntil(lambda: s.current is win.entries[1] and teacher.entered.is_set(), timeout=10000)
    cup = s.current
    win.panel.slider.setValue(40)  # photo shown, no map yet
    teacher.release.set()
    qtbot.waitUntil(lambda: (win.path_of(1), "teacher") in win.maps and student.entered.is_set(), timeout=10000)
    # Only the teacher's map so far: its seed stands in for the mean, and a step on it is no edit either.
    assert np.array_equal(s.model.mask, threshold_map(win.maps.get((win.path_of(1), "teacher")), 0.4))
    win.panel.slider.setValue(30)
    assert not s.model.can_undo()
    student.release.set()
    wait_settled(qtbot, win)
    assert np.array_equal(s.model.mask, mean_seed(win, 1, 0.3))
    assert not s.model.can_undo() and cup.threshold == pytest.approx(0.3) and win.panel.spin.value() == 0.3
    # Once the seed is complete, a threshold step is an edit again: one undo step back to that seed.
    win.panel.slider.setValue(60)
    assert np.array_equal(s.model.mask, mean_seed(win, 1, 0.6)) and s.model.can_undo()
    s.undo()
    assert np.array_equal(s.model.mask, mean_seed(win, 1, 0.3))
    assert cat.threshold == 0.5  # the steps reached only the photo shown


def test_a_threshold_typed_while_a_hand_edited_mask_loads_never_replaces_it(qtbot, tmp_path, photos, monkeypatch):
    store = ProjectStore.open(tmp_path / "proj")
    entries = store.add_photos(sorted(photos.glob("*.jpg")))
    edited = np.zeros((80, 120), np.uint8)
    edited[20:50, 30:90] = 1
    store.save_mask(entries[1], edited)
    entries[1].hand_edited, entries[1].status = True, "in progress"
    store.save_index()
    teacher, student = Gate(), Gate()
    win = open_window(qtbot, project=store.folder, provider=gated_provider(teacher, student))
    wait_settled(qtbot, win)
    thumbnails_in(qtbot, win)
    read = Gate()
    real_read = workers.read_mask
    monkeypatch.setattr(workers, "read_mask", lambda *a, **k: (read(), real_read(*a, **k))[1])
    read.armed = True
    win.select(1)
    qtbot.waitUntil(read.entered.is_set, timeout=10000)  # its saved mask is being read
    s = win.session
    assert s.current is None and win.panel.reseed.isEnabled()  # the panel already says it is hand-edited
    win.panel.spin.setValue(0.2)
    read.release.set()
    wait_settled(qtbot, win)
    cup = s.current
    assert cup is win.entries[1] and cup.threshold == pytest.approx(0.2) and win.panel.spin.value() == 0.2
    assert np.array_equal(s.model.mask, edited) and s.model.hand_edited and not s.model.can_undo()
    assert "edited by hand" in win.panel.note.text()
    win.panel.spin.setValue(0.25)  # and after it is bound: still the user's word only (Re-seed)
    assert np.array_equal(s.model.mask, edited)
    s.save_now()
    assert np.array_equal(ProjectStore.open(store.folder).load_mask(cup), edited)
