"""Qt-free tests of the mask model, its history, thresholding and the project store."""

import json

import numpy as np
import pytest

from dbd_core.annotate import MaskModel, ProjectStore, combine_maps, otsu_threshold, threshold_map
from dbd_core.annotate.mask_model import TILE


def test_stroke_paints_interpolated_line_and_is_one_undo_step():
    m = MaskModel((100, 200))
    m.begin()
    m.paint_segment((10, 50), (60, 50), 3, 1)
    m.paint_segment((60, 50), (150, 50), 3, 1)
    m.end()
    # Continuous band between the points (no gaps between mouse events), radius 3 around the line.
    assert m.mask[50, 10:151].all()
    assert m.mask[47:54, 100].all() and not m.mask[45, 100] and not m.mask[55, 100]
    assert m.mask.sum() > 0 and m.hand_edited
    m.undo()
    assert m.mask.sum() == 0 and not m.hand_edited
    m.redo()
    assert m.mask[50, 10:151].all()


def test_eraser_flood_and_polygon():
    m = MaskModel((64, 64))
    m.begin(); m.fill_polygon([(10, 10), (40, 10), (40, 40), (10, 40)], 1); m.end()
    assert m.mask[10:41, 10:41].all() and m.mask.sum() == 31 * 31
    m.begin(); m.paint_segment((25, 0), (25, 63), 0.5, 0); m.end()  # a 1-px eraser cut
    assert m.mask[:, 25].sum() == 0
    m.begin(); m.flood_fill(12, 12, 0); m.end()  # left half of the square only: the cut separates it
    assert m.mask[10:41, 10:25].sum() == 0 and m.mask[10:41, 26:41].all()
    before = m.mask.copy()
    m.begin(); m.flood_fill(0, 0, 1); m.end()  # the cleared half now joins the background: all of it fills
    assert m.mask.all()
    m.undo()
    assert np.array_equal(m.mask, before)


def test_undo_redo_exact_over_many_steps_and_history_is_bounded(rng):
    m = MaskModel((300, 300), max_steps=120)
    states = [m.mask.copy()]
    for _ in range(150):
        m.begin()
        x, y = rng.uniform(0, 300, 2)
        m.paint_segment((x, y), (x + rng.uniform(-30, 30), y + rng.uniform(-30, 30)), rng.uniform(1, 8), int(rng.integers(0, 2)))
        if m.end() is not None:
            states.append(m.mask.copy())
    n = len(m._undo)
    assert 100 <= n <= 120
    for k in range(n):
        m.undo()
        assert np.array_equal(m.mask, states[-2 - k])
    assert not m.can_undo()
    for k in range(n):
        m.redo()
    assert np.array_equal(m.mask, states[-1])


def test_history_stores_only_changed_tiles():
    m = MaskModel((4000, 6000))
    m.begin(); m.paint_segment((100, 100), (120, 100), 5, 1); m.end()
    assert m.history_bytes() <= 2 * TILE * TILE * 2  # at most a couple of tiles, not 24 MB


def test_seed_merges_and_hand_edit_flag():
    mp = np.tile(np.linspace(0, 1, 50, dtype=np.float32), (20, 1))
    m = MaskModel(mp.shape)
    for t in (0.3, 0.4, 0.5):
        m.set_mask(threshold_map(mp, t))
    assert len(m._undo) == 1  # a dragged slider is one undo step
    assert np.array_equal(m.mask, threshold_map(mp, 0.5)) and not m.hand_edited
    m.begin(); m.paint_segment((0, 0), (5, 0), 2, 1); m.end()
    assert m.hand_edited
    m.set_mask(threshold_map(mp, 0.7))
    assert not m.hand_edited
    m.undo()
    assert m.hand_edited
    m.undo()
    assert np.array_equal(m.mask, threshold_map(mp, 0.5))
    m.undo()
    assert m.mask.sum() == 0


def test_seed_on_a_multi_tile_mask_touches_only_changed_tiles_and_keeps_no_alias():
    """set_mask finds changed tiles in one vectorised pass; edge tiles (the shape is not a multiple of
    TILE) count, the caller's reused buffer is never aliased, and non-{0,1} values mean 1."""
    h, w = 2 * TILE + 37, 3 * TILE + 5
    m = MaskModel((h, w))
    buf = np.zeros((h, w), bool)
    mp = np.zeros((h, w), np.float32)
    mp[h - 3:, w - 2:] = 0.9  # only the bottom-right edge tile changes
    rect = m.set_mask(threshold_map(mp, 0.5, out=buf))
    assert rect == (2 * TILE, 3 * TILE, h, w)
    assert list(m._undo[-1].tiles) == [(2, 3)] and m.mask.sum() == 6
    buf[:] = True  # the session reuses its buffer for the next seed: the mask must not follow
    assert m.mask.sum() == 6
    seed = np.zeros((h, w), np.uint8)
    seed[:10, :10] = 255
    m.set_mask(seed, merge=False)
    assert m.mask.max() == 1 and m.mask.sum() == 100 and seed.max() == 255
    assert set(m._undo[-1].tiles) == {(0, 0), (2, 3)}
    m.undo()
    assert m.mask.sum() == 6 and m.mask[h - 3:, w - 2:].all()


def test_threshold_and_otsu():
    mp = np.zeros((40, 40), np.float32)
    mp[:, 20:] = 0.8
    mp[:, :20] = 0.1
    t = otsu_threshold(mp)
    assert 0.1 <= t < 0.8
    assert threshold_map(mp, t).sum() == 40 * 20
    assert np.allclose(combine_maps([mp, 1 - mp]), 0.5)
    assert otsu_threshold(np.full((5, 5), 0.3, np.float32)) == 0.5


def test_project_roundtrip(tmp_path):
    photo = tmp_path / "a photo.jpg"
    photo.write_bytes(b"x")
    store = ProjectStore.open(tmp_path / "proj")
    e, = store.add_photos([photo, photo])
    assert e.name == "a_photo"
    e.status, e.threshold, e.hand_edited = "done", 0.42, True
    mask = (np.arange(30 * 20).reshape(20, 30) % 3 == 0).astype(np.uint8)
    store.save_mask(e, mask)
    store.view["current"] = 0
    store.save_index()
    again = ProjectStore.open(tmp_path / "proj")
    assert again.photos[0] == e or again.photos[0].status == "done"
    assert again.photos[0].threshold == 0.42 and again.photos[0].hand_edited
    assert np.array_equal(again.load_mask(again.photos[0], (20, 30)), mask)
    assert json.loads((tmp_path / "proj" / "project.json").read_text())["mask_polarity"] == "blur-white"
    assert not list((tmp_path / "proj").rglob("*.tmp*"))  # atomic writes leave no temp files


def test_bad_project_file_is_input_error(tmp_path):
    (tmp_path / "project.json").write_text("{broken")
    from dbd_core.errors import InputError
    with pytest.raises(InputError, match="project.json"):
        ProjectStore.open(tmp_path)


@pytest.mark.parametrize("index, why", [
    ([], "not a dbd-studio project"),
    ({"format": "dbd-studio-project", "photos": 5}, "'photos' must be a list"),
    ({"format": "dbd-studio-project", "photos": ["a.jpg"]}, r"photos\[0\] must be an object"),
    ({"format": "dbd-studio-project", "photos": [{"path": "a.jpg"}]}, r"photos\[0\] \(a.jpg\): 'name' None"),
    ({"format": "dbd-studio-project", "photos": [{"path": "a.jpg", "name": "../../etc/x"}]}, "not a safe file name"),
    ({"format": "dbd-studio-project", "photos": [{"path": "a.jpg", "name": "a"}, {"path": "b.jpg", "name": "a"}]},
     "repeated"),
    ({"format": "dbd-studio-project", "photos": [{"path": "a.jpg", "name": "a", "status": "finished"}]}, "status"),
    ({"format": "dbd-studio-project", "photos": [{"path": "a.jpg", "name": "a", "threshold": "high"}]}, "threshold"),
    ({"format": "dbd-studio-project", "view": 3}, "'view' must be an object"),
    ({"format": "dbd-studio-project", "models": {"student": {"versions": [{"name": "x"}]}}}, "models.student"),
    ({"format": "dbd-studio-project", "mask_polarity": "sharp-white"}, "mask_polarity"),
])
def test_a_damaged_project_index_is_one_input_error_naming_it(tmp_path, index, why):
    from dbd_core.errors import InputError

    (tmp_path / "project.json").write_text(json.dumps(index))
    with pytest.raises(InputError, match=why) as e:
        ProjectStore.open(tmp_path)
    assert "project.json" in str(e.value) and "\n" not in str(e.value)


def test_a_project_index_with_a_stray_view_still_opens(tmp_path):
    (tmp_path / "project.json").write_text(json.dumps({"format": "dbd-studio-project", "view": {"current": "x"},
                                                       "photos": [{"path": "a.jpg", "name": "a"}]}))
    store = ProjectStore.open(tmp_path)
    assert store.view["current"] == 0 and [e.name for e in store.photos] == ["a"]


def test_a_project_that_cannot_be_created_is_one_input_error(tmp_path):
    from dbd_core.errors import InputError

    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match="cannot create a project here"):
        ProjectStore.open(tmp_path / "file" / "proj")


def test_auto_project_name_is_stable_for_a_photo_set(tmp_path):
    from dbd_core.annotate.project import auto_project_name

    a, b = tmp_path / "a.jpg", tmp_path / "trip photos"
    assert auto_project_name([a, b]) == auto_project_name([str(b), a, a])  # order and repeats ignored
    assert auto_project_name([a]) != auto_project_name([a, b])
    assert auto_project_name([b]).startswith("trip_photos-")
    assert auto_project_name([]).startswith("untitled-")


def test_move_to_copies_masks_keeps_photo_paths_and_removes_old(tmp_path):
    old = ProjectStore.open(tmp_path / "auto")
    (tmp_path / "auto" / "inside.jpg").write_bytes(b"x")  # a photo stored relative to the old folder
    entries = old.add_photos([tmp_path / "auto" / "inside.jpg", tmp_path / "out.jpg"])
    old.save_mask(entries[0], np.eye(4, dtype=np.uint8))
    old.save_index()
    new = old.move_to(tmp_path / "named", remove_old=True)
    assert not (tmp_path / "auto").exists()
    again = ProjectStore.open(tmp_path / "named")
    assert [e.name for e in again.photos] == ["inside", "out"]
    assert again.resolve(again.photos[0]) == (tmp_path / "auto" / "inside.jpg").resolve()
    assert np.array_equal(again.load_mask(again.photos[0]), np.eye(4, dtype=np.uint8))
    assert again.load_mask(again.photos[1]) is None
    assert new.photos is old.photos and new.photos[0] is entries[0]  # the studio keeps its references
    # A target inside the old folder must not be deleted with it.
    inner = again.move_to(tmp_path / "named" / "sub", remove_old=True)
    assert (tmp_path / "named" / "sub" / "project.json").exists() and inner.folder.exists()


def test_find_project_holding_picks_the_project_listing_every_photo(tmp_path):
    import os
    import time as _time

    from dbd_core.annotate import ProjectStore
    from dbd_core.annotate.project import find_project_holding

    photos = []
    for n in ("a", "b", "c"):
        (tmp_path / f"{n}.png").write_bytes(b"x")
        photos.append(tmp_path / f"{n}.png")
    root = tmp_path / "projects"
    older = ProjectStore.open(root / "older")
    older.add_photos(photos)
    older.save_index()
    part = ProjectStore.open(root / "part")
    part.add_photos(photos[:1])
    part.save_index()
    (root / "broken").mkdir()
    (root / "broken" / "project.json").write_text("{ not json")
    assert find_project_holding(root, photos[:2]) == older.folder
    newer = ProjectStore.open(root / "newer")
    newer.add_photos(photos)
    newer.save_index()
    t = _time.time() + 5
    os.utime(newer.folder / "project.json", (t, t))
    assert find_project_holding(root, photos) == newer.folder  # several match: the most recently saved
    assert find_project_holding(root, [tmp_path / "elsewhere.png"]) is None
    assert find_project_holding(root, []) is None and find_project_holding(tmp_path / "none", photos) is None
