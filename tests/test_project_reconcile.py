"""A crash between a mask's write and the index's leaves project.json one save apart from masks/: opening the
project reconciles them from the stamp the index keeps of each mask, and nothing on disk is lost."""

import json
import os

import numpy as np
import pytest

from dbd_core.annotate import ProjectStore
from dbd_core.errors import InputError
from studio_fixtures import open_window, photos, studio_home, wait_settled  # noqa: F401


def _mask(i, shape=(24, 32)):
    m = np.zeros(shape, np.uint8)
    m[2 + i:12 + i, 3:20 + i] = 1
    return m


@pytest.fixture
def project(tmp_path):
    """A saved project: 'a' done with a mask, 'b' in progress with a mask, 'c' new without one."""
    store = ProjectStore.open(tmp_path / "proj")
    a, b, c = store.add_photos([tmp_path / f"{n}.jpg" for n in "abc"])
    store.save_mask(a, _mask(0))
    store.save_mask(b, _mask(1))
    a.status, b.status = "done", "in progress"
    store.save_index()
    return store


def test_an_index_that_agrees_with_its_masks_opens_as_it_was(project):
    again = ProjectStore.open(project.folder)
    assert again.reconciled == []
    assert [(e.status, e.hand_edited) for e in again.photos] == [("done", False), ("in progress", False), ("new", False)]
    assert again.photos[0].saved_mask == project.photos[0].saved_mask and again.photos[2].saved_mask is None


def test_a_mask_written_after_the_last_index_is_adopted_as_a_hand_edit_and_not_done(project):
    a, _, c = project.photos
    newer, first = _mask(5), _mask(7)
    project.save_mask(a, newer)  # the crash window: masks renamed into place, the index not written after them
    project.save_mask(c, first)
    again = ProjectStore.open(project.folder)
    ra, rb, rc = again.photos
    assert np.array_equal(again.load_mask(ra), newer) and np.array_equal(again.load_mask(rc), first)
    # Protected: no threshold step re-seeds what may be the user's hand edit; nobody has confirmed it as done.
    assert (ra.status, ra.hand_edited) == ("in progress", True) and (rc.status, rc.hand_edited) == ("in progress", True)
    assert (rb.status, rb.hand_edited) == ("in progress", False)  # untouched
    assert [n for n, _ in again.reconciled] == ["a", "c"]
    assert "no longer done" in dict(again.reconciled)["a"] and "unknown to the index" in dict(again.reconciled)["c"]
    assert ra.saved_mask == a.saved_mask and rc.saved_mask == c.saved_mask  # the stamps of the files on disk
    again.save_index()  # what the studio does next
    assert ProjectStore.open(project.folder).reconciled == []


def test_a_recorded_mask_that_is_gone_leaves_its_photo_not_done(project):
    a = project.photos[0]
    a.hand_edited = True
    project.save_index()
    os.unlink(project.mask_path(a))  # the index's rename reached the disk, the mask's did not
    again = ProjectStore.open(project.folder)
    ra = again.photos[0]
    assert (ra.status, ra.hand_edited, ra.saved_mask, ra.seeded_with) == ("in progress", False, None, None)
    assert again.load_mask(ra) is None
    assert again.reconciled == [("a", "its recorded mask is missing: no longer done")]


def test_the_same_mask_copied_or_touched_is_not_a_reconciliation(project, tmp_path):
    a = project.photos[0]
    st = project.mask_path(a).stat()
    os.utime(project.mask_path(a), ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    again = ProjectStore.open(project.folder)
    assert again.reconciled == [] and again.photos[0].status == "done"
    assert again.photos[0].saved_mask["mtime_ns"] == st.st_mtime_ns + 5_000_000_000  # no hash next time
    moved = again.move_to(tmp_path / "named")
    assert ProjectStore.open(moved.folder).reconciled == []
    assert np.array_equal(ProjectStore.open(moved.folder).load_mask(moved.photos[0]), _mask(0))


def test_an_index_from_before_the_stamps_is_taken_as_it_is(project):
    index = project.folder / "project.json"
    data = json.loads(index.read_text())
    for p in data["photos"]:
        del p["saved_mask"]
    index.write_text(json.dumps(data))
    project.save_mask(project.photos[0], _mask(3))  # cannot be told from one the old index knew
    again = ProjectStore.open(project.folder)
    assert again.reconciled == [] and again.photos[0].status == "done" and again.photos[0].saved_mask is not None
    assert again.photos[2].saved_mask is None


def test_a_mask_file_that_is_not_a_png_is_left_to_the_load_path(project):
    a = project.photos[0]
    project.mask_path(a).write_bytes(b"not a png")  # damage: no save of ours writes this
    again = ProjectStore.open(project.folder)
    assert again.reconciled == [] and again.photos[0].status == "done"
    with pytest.raises(InputError):
        again.load_mask(again.photos[0])


def test_a_damaged_stamp_is_one_input_error(project):
    index = project.folder / "project.json"
    data = json.loads(index.read_text())
    data["photos"][0]["saved_mask"] = {"sha1": 5}
    index.write_text(json.dumps(data))
    with pytest.raises(InputError, match=r"photos\[0\] \(a\): 'saved_mask'"):
        ProjectStore.open(project.folder)


@pytest.mark.parametrize("named", [True, False], ids=["named project", "automatic project"])
def test_studio_reopened_after_a_crash_between_mask_and_index_keeps_the_hand_edit(qtbot, photos, tmp_path,
                                                                                 monkeypatch, named):
    proj = tmp_path / "proj" if named else None
    win = open_window(qtbot, photos, project=proj)
    s = win.session
    qtbot.waitUntil(lambda: not s.save_pending, timeout=10000)  # the seed and the index are on disk
    cat, proj = s.current, s.store.folder
    assert not ProjectStore.open(proj).photos[0].hand_edited
    # The crash window: from here on the index write never happens, the masks still go out.
    real_save_index = ProjectStore.save_index
    monkeypatch.setattr(ProjectStore, "save_index", lambda self: None)
    s.model.begin("hand"); s.model.fill_polygon([(70, 5), (115, 5), (115, 70)], 1); s.model.end(); s.hand_edit_done()
    edited = s.model.mask.copy()
    qtbot.waitUntil(lambda: not s.save_pending, timeout=10000)
    assert np.array_equal(ProjectStore(proj).load_mask(cat), edited)
    win.close()
    monkeypatch.setattr(ProjectStore, "save_index", real_save_index)  # not undo(): that would drop studio_home

    again = open_window(qtbot, project=proj) if named else open_window(qtbot, photos)  # the same photos again
    wait_settled(qtbot, again)
    assert again.session.store.folder == proj
    s2 = again.session
    e = s2.current
    assert e.name == "cat" and np.array_equal(s2.model.mask, edited)  # the mask on disk, not a fresh seed
    assert e.hand_edited and s2.model.hand_edited and again.panel.reseed.isEnabled()
    again.panel.spin.setValue(0.9)  # a threshold step no longer re-seeds over the edit the index missed
    assert np.array_equal(s2.model.mask, edited)
    qtbot.waitUntil(lambda: "reconciled" in again.statusBar().currentMessage(), timeout=5000)
    assert "cat" in again.statusBar().currentMessage()
    qtbot.waitUntil(lambda: not s2.save_pending, timeout=10000)
    reopened = ProjectStore.open(proj)  # the reconciled index was saved: nothing left to reconcile
    assert reopened.reconciled == [] and reopened.photos[0].hand_edited
    assert np.array_equal(reopened.load_mask(reopened.photos[0]), edited)
    again.close()
