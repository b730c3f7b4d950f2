"""The GUI thread never decodes a saved mask or colours a full map, and the cyclic GC does not
walk the start-up objects (each of these froze the window for 70-250 ms on 12 MP photos,
benchmarks/finetune_gui.md)."""

import gc
import threading

import numpy as np
import pytest

import app.display as display
import app.session as session_mod
import dbd_core.annotate.project as project_mod
from dbd_core.annotate import ProjectStore
from studio_fixtures import fake_provider, open_window, photos, studio_home, wait_settled  # noqa: F401


@pytest.fixture
def gui_thread_reads(monkeypatch):
    """Every saved-mask read, by thread: the GUI thread must have none."""
    calls = []
    real = project_mod.read_mask

    def spy(*a, **k):
        calls.append(threading.current_thread() is threading.main_thread())
        return real(*a, **k)

    monkeypatch.setattr(project_mod, "read_mask", spy)
    import app.workers as workers

    real_worker = workers.read_mask

    def worker_spy(*a, **k):
        calls.append(threading.current_thread() is threading.main_thread())
        return real_worker(*a, **k)

    monkeypatch.setattr(workers, "read_mask", worker_spy)
    return calls


def _project_with_masks(tmp_path, photos):
    store = ProjectStore.open(tmp_path / "proj")
    entries = store.add_photos(sorted(photos.glob("*.jpg")))
    saved = {}
    for i, e in enumerate(entries):
        m = np.zeros((80, 120), np.uint8)
        m[10 + 10 * i:40 + 10 * i, 20:70 + 20 * i] = 1  # a different rectangle per photo
        store.save_mask(e, m)
        saved[e.name] = m
    store.save_index()
    return store.folder, saved


def test_saved_masks_are_read_by_the_worker_and_bound_exactly(qtbot, tmp_path, photos, gui_thread_reads,
                                                              monkeypatch):
    monkeypatch.setattr(session_mod, "RESIDENT_MASKS", 1)  # photo switches evict: revisits reload
    import app.overlay as overlay_mod

    gui_recolours = []
    real_colour = overlay_mod.coverage_rgba

    def colour_spy(cover):
        if threading.current_thread() is threading.main_thread():
            gui_recolours.append(cover.shape)
        return real_colour(cover)

    monkeypatch.setattr(overlay_mod, "coverage_rgba", colour_spy)
    folder, saved = _project_with_masks(tmp_path, photos)
    win = open_window(qtbot, project=folder)
    wait_settled(qtbot, win)
    for row in (0, 1, 0, 1):  # first visits, then revisits of evicted masks (image still cached)
        win.select(row)
        wait_settled(qtbot, win)
        name = win.entries[row].name
        model = win.session.model
        assert np.array_equal(model.mask, saved[name])
        assert win.views.overlay.model is model and win.tools.model is model
        # The overlay shows the worker's pixels of the saved mask: the same as recolouring it here.
        k = display.display_factor(model.shape)
        assert np.array_equal(win.views.overlay._rgba, display.mask_rgba(model.mask, k))
    assert len(gui_thread_reads) >= 3 and not any(gui_thread_reads)  # all off the GUI thread
    assert gui_recolours == []  # no whole-mask recolour on the GUI thread
    win.close()


def test_unreadable_saved_mask_of_a_done_photo_is_set_aside_and_the_photo_leaves_done(qtbot, tmp_path, photos,
                                                                                       gui_thread_reads, monkeypatch):
    from PySide6.QtWidgets import QMessageBox

    folder, saved = _project_with_masks(tmp_path, photos)
    store = ProjectStore.open(folder)
    first = store.photos[0]
    first.status, first.hand_edited = "done", True
    store.save_index()
    store.mask_path(first).write_bytes(b"not a png")
    warned = []
    monkeypatch.setattr(QMessageBox, "warning", lambda *a, **k: warned.append(a[2]))
    win = open_window(qtbot, project=folder)
    wait_settled(qtbot, win)
    if win.row != 0:
        win.select(0)
        wait_settled(qtbot, win)
    entry, model = win.session.current, win.session.model
    assert entry.name == first.name and model.shape == (80, 120)
    # said in a dialog, not a passing status line; the photo is no longer "done", so no export takes it unseen
    assert len(warned) == 1 and "saved mask is unreadable" in warned[0] and "no longer marked done" in warned[0]
    assert entry.status == "in progress" and not entry.hand_edited and win.list.status(0) == "in progress"
    # the bad file is kept aside, untouched, where the next autosave cannot overwrite it
    aside = list((folder / "masks").glob(f"{first.name}.png.unreadable-*"))
    assert len(aside) == 1 and aside[0].read_bytes() == b"not a png" and aside[0].name in warned[0]
    from app.export_dialog import export_samples

    assert first.name not in [smp.name for smp in export_samples(win.session, only_done=True)]
    assert not any(gui_thread_reads)
    win.close()


def test_maps_are_coloured_by_the_worker(qtbot, photos, monkeypatch):
    on_gui = []
    real = display.colorize

    def spy(prob, lut):
        if threading.current_thread() is threading.main_thread():
            on_gui.append(prob.shape)
        return real(prob, lut)

    monkeypatch.setattr(display, "colorize", spy)
    import app.views as views
    import app.workers as workers

    monkeypatch.setattr(workers, "colorize", spy)
    monkeypatch.setattr(views, "colorize", spy)
    win = open_window(qtbot, photos)
    wait_settled(qtbot, win)
    panel = win.views.maps["teacher"]
    shown = panel.image.image
    expected = real(panel.values, panel.lut)
    assert shown.dtype == np.uint8 and np.array_equal(shown, expected)  # same colours as before
    # The disagreement map comes coloured from the worker too, made from the two maps' display levels.
    diff = win.views.diff
    t_shown = win._display_level((win.path_of(win.row), "teacher"), win.maps_for(win.entries[win.row])["teacher"])
    s_shown = win._display_level((win.path_of(win.row), "student"), win.maps_for(win.entries[win.row])["student"])
    assert np.array_equal(diff.values, display.difference(t_shown, s_shown))
    assert np.array_equal(diff.image.image, real(diff.values, diff.lut))
    assert on_gui == []
    win.close()


def test_startup_objects_are_frozen_out_of_the_cyclic_gc(qtbot, photos):
    # Tests never gc.unfreeze(): collecting the frozen objects of closed windows later (in another order)
    # hits a refcount bug in a C extension at interpreter exit. The app itself never unfreezes.
    before = gc.get_freeze_count()
    win = open_window(qtbot, photos)
    qtbot.waitUntil(lambda: gc.get_freeze_count() > before, timeout=10000)
    win.close()


def test_stall_profiler_credits_a_stall_to_garbage_collection(qtbot):
    from app.stall_profiler import StallProfiler

    prof = StallProfiler(late_ms=30, sample_ms=10)
    prof.start()
    qtbot.wait(50)
    junk = [[i, [i]] for i in range(300_000)]  # ~600k tracked objects: a full collection takes a while
    gc.collect()
    qtbot.wait(50)
    prof.stop()
    del junk
    gc_stalls = [s for s in prof.stalls if any(gen == 2 for gen, _ in s["gc"])]
    assert gc_stalls, prof.report()
    assert "garbage collection of generation 2" in prof.report()


def test_collection_pause_nests_and_always_resumes():
    from app import gc_policy

    assert gc.isenabled()
    with gc_policy.collection_paused():
        assert not gc.isenabled()
        with gc_policy.collection_paused():  # e.g. a model load while a run sets up
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()

    def run():
        yield {"type": "export"}
        assert not gc.isenabled()  # set-up: paused
        yield {"type": "start"}
        assert gc.isenabled()  # steps: collecting again, set-up frozen
        yield {"type": "step"}

    assert [e["type"] for e in gc_policy.paused_until(run(), ("start",))] == ["export", "start", "step"]
    stream = gc_policy.paused_until(run(), ("start",))
    next(stream)
    assert not gc.isenabled()
    stream.close()  # a consumer that stops early (cancel, error) must not leave the GC off
    assert gc.isenabled()


def test_while_a_mask_loads_edits_never_reach_the_previous_photo(qtbot, tmp_path, photos, monkeypatch):
    import time

    import app.workers as workers

    monkeypatch.setattr(session_mod, "RESIDENT_MASKS", 1)
    folder, saved = _project_with_masks(tmp_path, photos)
    win = open_window(qtbot, project=folder)
    wait_settled(qtbot, win)
    for row in (1, 0):  # photo 1's image is cached now, its mask evicted: a revisit reloads only the mask
        win.select(row)
        wait_settled(qtbot, win)
    first = win.entries[0]
    first_mask = win.session.model.mask.copy()
    real = workers.read_mask
    monkeypatch.setattr(workers, "read_mask", lambda *a, **k: (time.sleep(0.4), real(*a, **k))[1])
    second = win.entries[1]
    assert second.name not in win.session.masks and win.images.get(win.path_of(1)) is not None
    win.select(1)  # the photo shows at once; its saved mask is read on the worker, slowly
    assert win.session.current is None and win.tools.model is None  # nothing to edit yet
    win.panel.spin.setValue(0.99)  # a threshold change meanwhile...
    win._set_status("done")  # ...and a status change
    assert second.status == "done" and first.status != "done"
    assert np.array_equal(win.session.masks[first.name].mask, first_mask)  # the first photo is untouched
    wait_settled(qtbot, win)
    # The threshold chosen while the mask loaded is the one the user sees applied (the saved mask holds no hand
    # edits, so it is a seed like any other), as one undo step back to the saved mask.
    assert win.session.current is second and second.threshold == pytest.approx(0.99)
    assert not win.session.model.mask.any()  # no map of the fake models reaches 0.99
    win.session.undo()
    assert np.array_equal(win.session.model.mask, saved[second.name])
    win.close()


def test_overlay_colour_choice_recolours_and_reaches_the_worker_made_pixels(qtbot, tmp_path, photos):
    from app.display import MASK_COLORS

    folder, saved = _project_with_masks(tmp_path, photos)
    win = open_window(qtbot, project=folder)
    wait_settled(qtbot, win)
    overlay, cyan = win.views.overlay, MASK_COLORS["cyan"]
    win.panel.color.setCurrentText("cyan")
    model = win.session.model
    assert np.array_equal(overlay._rgba, display.mask_rgba(model.mask, overlay.k, cyan))
    assert win.worker.mask_color == cyan and win.views.photo.footer.swatch == cyan
    other = 1 - win.row
    win.select(other)  # its saved mask is read, and coloured, by the worker: in cyan now
    wait_settled(qtbot, win)
    model = win.session.model
    assert np.array_equal(model.mask, saved[win.entries[other].name])
    assert np.array_equal(overlay._rgba, display.mask_rgba(model.mask, overlay.k, cyan))
    red = display.mask_rgba(model.mask, overlay.k, MASK_COLORS["red"])
    overlay.set_model(None)
    overlay.set_model(model, red, MASK_COLORS["red"])  # pixels made before the switch are not adopted
    assert np.array_equal(overlay._rgba, display.mask_rgba(model.mask, overlay.k, cyan))
    win.close()
