"""Studio behaviour that matters on big photos: threshold steps reuse what one photo's maps allow
(the mean map, Otsu), masks are written off the GUI thread, closing does not freeze the window."""

import numpy as np
import pytest
from PySide6.QtCore import QTimer

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


def _edit(s, value=1, x=10):
    s.model.begin("hand"); s.model.fill_polygon([(x, 10), (x + 300, 10), (x + 300, 250)], value); s.model.end()
    s.hand_edit_done()


def test_autosave_writes_masks_off_the_gui_thread_and_later_edits_stay_dirty_until_written(
        qtbot, big_photos, tmp_path, monkeypatch):
    import threading

    from dbd_core.annotate import ProjectStore

    win = open_window(qtbot, big_photos, project=tmp_path / "proj", provider=ramp_provider())
    s = win.session
    qtbot.waitUntil(lambda: not s.save_pending, timeout=10000)
    real_mask, real_index = ProjectStore.save_mask, ProjectStore.save_index
    gui, threads, order, release = threading.get_ident(), [], [], threading.Event()

    def slow_mask(self, entry, mask):
        threads.append(threading.get_ident())
        release.wait(10)  # an encode that takes long: the GUI must keep running meanwhile
        real_mask(self, entry, mask)
        order.append(("mask", entry.name, int(np.asarray(mask).sum())))

    def index(self):
        assert not s._in_flight and not s._dirty_masks  # an index never describes a mask not yet on disk
        order.append(("index",))
        real_index(self)

    monkeypatch.setattr(ProjectStore, "save_mask", slow_mask)
    monkeypatch.setattr(ProjectStore, "save_index", index)
    _edit(s)
    first = s.model.mask.copy()
    qtbot.waitUntil(lambda: bool(threads), timeout=10000)  # the autosave started: its write waits on `release`
    assert threads[0] != gui and s.save_pending
    ticks = []
    QTimer.singleShot(0, lambda: ticks.append(1))
    qtbot.waitUntil(lambda: bool(ticks), timeout=2000)  # the event loop runs while the mask is being written
    _edit(s, value=0, x=100)  # an edit during the write: the write has the old copy, this one stays dirty
    second = s.model.mask.copy()
    assert s.current.name in s._dirty_masks and not np.array_equal(first, second)
    release.set()
    qtbot.waitUntil(lambda: not s.save_pending and len(threads) == 2, timeout=10000)
    assert all(t != gui for t in threads)
    assert [o[0] for o in order] == ["mask", "mask", "index"]  # the first round's index waited for the second mask
    assert order[0][2] == int(first.sum()) and order[1][2] == int(second.sum())
    assert np.array_equal(ProjectStore.open(tmp_path / "proj").load_mask(s.current), second)


def test_a_refused_background_write_keeps_the_edit_says_not_saved_and_the_next_save_writes_it(
        qtbot, big_photos, tmp_path, monkeypatch):
    import threading

    from PySide6.QtWidgets import QMessageBox

    from dbd_core.annotate import ProjectStore

    win = open_window(qtbot, big_photos, project=tmp_path / "proj", provider=ramp_provider())
    s = win.session
    qtbot.waitUntil(lambda: not s.save_pending, timeout=10000)
    real_mask = ProjectStore.save_mask
    gui, threads = threading.get_ident(), []

    def refuse(self, entry, mask):
        threads.append(threading.get_ident())
        raise PermissionError(13, "Permission denied", str(self.mask_path(entry)))

    monkeypatch.setattr(ProjectStore, "save_mask", refuse)
    warned = []
    monkeypatch.setattr(QMessageBox, "warning", lambda *a, **k: warned.append(a[2]))
    _edit(s)
    edited = s.model.mask.copy()
    with qtbot.waitSignal(s.save_failed, timeout=10000):
        pass  # the debounced autosave, on the writer thread
    assert threads and threads[0] != gui
    assert len(warned) == 1 and "Permission denied" in warned[0] and "NOT SAVED" in win.windowTitle()
    assert s.current.name in s._dirty_masks and np.array_equal(s.model.mask, edited) and s.save_pending  # retries
    monkeypatch.setattr(ProjectStore, "save_mask", real_mask)
    with qtbot.waitSignal(s.save_recovered, timeout=10000):
        assert s.save_now()
    assert np.array_equal(ProjectStore.open(tmp_path / "proj").load_mask(s.current), edited)
    assert "NOT SAVED" not in win.windowTitle() and s.save_error is None and not s._dirty_masks


def test_closing_waits_for_a_mask_being_written(qtbot, big_photos, tmp_path, monkeypatch):
    import time

    from dbd_core.annotate import ProjectStore

    win = open_window(qtbot, big_photos, project=tmp_path / "proj", provider=ramp_provider())
    s = win.session
    qtbot.waitUntil(lambda: not s.save_pending, timeout=10000)
    real_mask = ProjectStore.save_mask
    monkeypatch.setattr(ProjectStore, "save_mask", lambda self, e, m: (time.sleep(0.4), real_mask(self, e, m)))
    _edit(s)
    edited = s.model.mask.copy()
    qtbot.waitUntil(lambda: s._writer.busy, timeout=10000)  # the autosave is writing
    _edit(s, value=0, x=200)  # and one more edit inside the debounce
    edited = s.model.mask.copy()
    win.close()
    assert not win.isVisible() and not s.save_pending
    assert np.array_equal(ProjectStore.open(tmp_path / "proj").load_mask(s.current), edited)


def test_closing_while_a_map_computes_hides_the_window_first_and_keeps_the_edit(qtbot, big_photos, tmp_path,
                                                                              monkeypatch, capfd):
    import threading
    import time

    from PySide6.QtCore import QThread

    from dbd_core.annotate import ProjectStore

    slow, entered = threading.Event(), threading.Event()

    def teacher(rgb):
        if slow.is_set():
            entered.set()
            time.sleep(1.0)  # a 48 MP teacher map takes seconds and cannot be interrupted
        return ramp_x(rgb)

    provider = ModelProvider({"teacher": FunctionPredictor("slow-teacher", teacher),
                              "student": FunctionPredictor("ramp-y", ramp_y)})
    win = open_window(qtbot, big_photos, project=tmp_path / "proj", provider=provider)
    s = win.session
    slow.set()
    win.select(1)  # its maps are computed now: the teacher's takes a second
    qtbot.waitUntil(lambda: entered.is_set() and s.current is not None and s.current.name == "b"
                    and s.model is not None, timeout=10000)
    _edit(s)  # an edit inside the autosave's debounce
    edited = s.model.mask.copy()
    seen = []
    monkeypatch.setattr(win.worker, "wait", lambda *a: (seen.append(win.isVisible()), QThread.wait(win.worker, *a))[1])
    t0 = time.perf_counter()
    win.close()
    assert seen == [False]  # the window was gone before waiting for the map in hand
    assert not win.worker.isRunning() and time.perf_counter() - t0 < 5
    qtbot.wait(50)  # whatever the worker sent before it stopped is not taken in after the close
    assert not s.save_pending and not s._dirty_masks
    assert np.array_equal(ProjectStore.open(tmp_path / "proj").load_mask(s.current), edited)
    assert "Traceback" not in capfd.readouterr().err
