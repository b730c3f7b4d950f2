"""`dbd dataset export`: a studio project's saved masks as a dataset, without the GUI."""

from __future__ import annotations

import json

import cv2
import numpy as np

from dbd_core.annotate import ProjectStore
from dbd_core.cli.main import main
from dbd_core.data.formats import open_dataset_reader


def _project(tmp_path, chelsea, coffee):
    photos = tmp_path / "photos"
    photos.mkdir()
    for name, img in (("cat", chelsea), ("cup", coffee), ("fresh", chelsea)):
        cv2.imwrite(str(photos / f"{name}.jpg"), img[:48, :64, ::-1].copy())
    store = ProjectStore.open(tmp_path / "proj")
    store.add_photos(sorted(photos.glob("*.jpg")))
    masks = {}
    for e in store.photos:
        if e.name == "fresh":
            continue  # never opened: no mask, never exported
        m = np.zeros((48, 64), np.uint8)
        m[:, : 20 if e.name == "cat" else 40] = 1
        store.save_mask(e, m)
        masks[e.name] = m
    store.photos[0].status = "done"
    store.photos[0].hand_edited = True
    store.photos[0].seeded_with = {"source": "teacher", "threshold": 0.42}
    store.save_index()
    return store, masks, photos


def test_export_only_done_then_all_with_provenance(tmp_path, chelsea, coffee, capsys):
    store, masks, photos = _project(tmp_path, chelsea, coffee)
    assert main(["dataset", "export", str(store.folder), "--out", str(tmp_path / "done")]) == 0
    assert "exported 1 photo(s)" in capsys.readouterr().out
    with open_dataset_reader(tmp_path / "done") as r:
        assert r.names == ["cat"] and r.gt_polarity == "blur-white"
        rgb, mask, meta = r.get("cat")
        assert np.array_equal(mask, masks["cat"])
        assert r.sample("cat").read_bytes() == (photos / "cat.jpg").read_bytes()  # the original photo bytes
        prov = meta["provenance"]
        assert prov["threshold"] == 0.42 and prov["mask_source"] == "teacher" and prov["hand_edited"]
    gt = cv2.imread(str(tmp_path / "done" / "gt" / "cat.png"), cv2.IMREAD_UNCHANGED)
    assert set(np.unique(gt)) == {0, 255} and (gt == 255).sum() == masks["cat"].sum()  # 255 = blurred
    assert main(["dataset", "export", str(store.folder), "--out", str(tmp_path / "all.h5"), "--all"]) == 0
    with open_dataset_reader(tmp_path / "all.h5") as r:
        assert sorted(r.names) == ["cat", "cup"]  # "fresh" has no mask


def test_export_refuses_what_it_cannot_do_in_one_line(tmp_path, chelsea, coffee, capsys):
    store, _, _ = _project(tmp_path, chelsea, coffee)
    (tmp_path / "not_a_project").mkdir()
    assert main(["dataset", "export", str(tmp_path / "not_a_project"), "--out", str(tmp_path / "x")]) == 1
    err = capsys.readouterr().err.strip()
    assert "not a dbd-studio project (no project.json)" in err and "\n" not in err
    assert not (tmp_path / "not_a_project" / "project.json").exists()  # nothing created there either
    index = json.loads((store.folder / "project.json").read_text())
    for p in index["photos"]:
        p["status"] = "new"
    (store.folder / "project.json").write_text(json.dumps(index))
    assert main(["dataset", "export", str(store.folder), "--out", str(tmp_path / "none")]) == 1
    assert "nothing to export: no photo is marked done" in capsys.readouterr().err
    assert not (tmp_path / "none").exists()
    assert main(["dataset", "export", str(store.folder), "--out", str(tmp_path / "a"), "--all"]) == 0
    assert main(["dataset", "export", str(store.folder), "--out", str(tmp_path / "a"), "--all"]) == 1
    assert "already exists" in capsys.readouterr().err
    assert main(["dataset", "export", str(store.folder), "--out", str(tmp_path / "a"), "--all", "--overwrite"]) == 0
    # --overwrite replaces an earlier dataset or an empty folder, never anything else a mistyped --out names:
    # not the project being exported, not a folder of the user's own files.
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.txt").write_text("keep")
    for target in (tmp_path / "mine", store.folder):
        assert main(["dataset", "export", str(store.folder), "--out", str(target), "--all", "--overwrite"]) == 1
        err = capsys.readouterr().err.strip()
        assert "neither a dbd dataset nor an empty folder" in err and str(target) in err and "\n" not in err
    assert (tmp_path / "mine" / "thesis.txt").read_text() == "keep"
    assert ProjectStore.open(store.folder).photos and not (store.folder / "dataset.json").exists()
    (tmp_path / "empty").mkdir()
    assert main(["dataset", "export", str(store.folder), "--out", str(tmp_path / "empty"), "--all", "--overwrite"]) == 0
    assert (tmp_path / "empty" / "dataset.json").is_file()


def test_an_unreadable_saved_mask_is_named_and_left_out_the_rest_exported(tmp_path, chelsea, coffee, capsys):
    store, masks, _ = _project(tmp_path, chelsea, coffee)
    for e in store.photos:
        e.status = "done"
    store.save_index()
    store.mask_path(store.photos[1]).write_bytes(b"\x89PNG\r\n\x1a\ngarbage")  # cup's mask
    assert main(["dataset", "export", str(store.folder), "--out", str(tmp_path / "out")]) == 1
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "cup.png" in lines[0] and "photo cup left out" in lines[0]  # one line, no OpenCV log
    assert "exported 1 photo(s)" in captured.out and "1 left out" in captured.out
    with open_dataset_reader(tmp_path / "out") as r:
        assert r.names == ["cat"]  # "fresh" has no mask; cup's cannot be read


def test_a_missing_photo_is_named_and_left_out_and_set_aside_masks_survive_a_move(tmp_path, chelsea, coffee, capsys):
    store, masks, photos = _project(tmp_path, chelsea, coffee)
    for e in store.photos:
        e.status = "done"
    store.save_index()
    (photos / "cup.jpg").unlink()  # moved away after it was annotated
    assert main(["dataset", "export", str(store.folder), "--out", str(tmp_path / "out")]) == 1
    captured = capsys.readouterr()
    assert "sample cup left out" in captured.err and "exported 1 photo(s)" in captured.out
    with open_dataset_reader(tmp_path / "out") as r:
        assert r.names == ["cat"]
    cat = store.photos[0]
    aside = store.mask_path(cat).with_name("cat.png.unreadable-20261203-120000")
    aside.write_bytes(b"what was there")
    moved = store.move_to(tmp_path / "moved", remove_old=True)
    assert not store.folder.exists()
    assert (moved.folder / "masks" / aside.name).read_bytes() == b"what was there"  # kept for recovery
