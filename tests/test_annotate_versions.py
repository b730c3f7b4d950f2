"""Project model versions and the project fine-tune driver, without Qt."""

import json
import threading

import numpy as np
import pytest
import torch

from dbd_core.annotate import ProjectStore
from dbd_core.annotate.finetune import NotEnoughPhotos, check_ready, done_entries, project_finetune
from dbd_core.annotate.versions import ModelVersions
from dbd_core.errors import InputError
from dbd_core.images import write_png
from dbd_core.nets import build_model
from dbd_core.weights import save_model


@pytest.fixture
def store(tmp_path):
    return ProjectStore.open(tmp_path / "proj")


def candidate(store, name, seed=0):
    torch.manual_seed(seed)
    card = {"parent": {"version": "base"}, "metrics": {"before": {"mae": 0.3}, "after": {"mae": 0.2}}}
    return save_model(store.folder / "models" / f"{name}.pt", build_model("tiny", width=4), card)


def test_adopt_switch_and_persist(store):
    vs = ModelVersions(store)
    assert vs.list("student") == [] and vs.active("student") is None
    v1 = vs.adopt("student", candidate(store, "base-ft1"))
    v2 = vs.adopt("student", candidate(store, "base-ft2", seed=1))
    assert [v.name for v in vs.list("student")] == ["base-ft1", "base-ft2"]
    assert vs.active("student").name == "base-ft2" and v1.parent == "base"
    assert v2.metrics["after"]["mae"] == 0.2 and v2.card_path.is_file()
    vs.set_active("student", "base-ft1")
    reopened = ModelVersions(ProjectStore.open(store.folder))  # lives in project.json
    assert reopened.active("student").name == "base-ft1"
    index = json.loads((store.folder / "project.json").read_text())
    assert index["models"]["student"]["versions"][1]["file"] == "models/base-ft2.pt"
    vs.set_active("student", None)
    assert ModelVersions(ProjectStore.open(store.folder)).active("student") is None
    with pytest.raises(KeyError):
        vs.set_active("student", "nope")


def test_save_as_moves_adopted_versions_and_refuses_another_project(store, tmp_path):
    from dbd_core.weights import load_model_file, sha256_file

    vs = ModelVersions(store)
    kept = vs.adopt("student", candidate(store, "base-ft1"))
    digest = sha256_file(kept.path)
    moved = store.move_to(tmp_path / "named", remove_old=True)  # an automatic project the user names
    assert not store.folder.exists()
    active = ModelVersions(ProjectStore.open(moved.folder)).active("student")
    assert active is not None and active.name == "base-ft1" and active.path.parent == (moved.folder / "models").resolve()
    assert sha256_file(active.path) == digest and active.card_path.is_file()
    load_model_file(active.path)  # whole, loadable weights, not only a name in project.json
    # Another project's folder is never taken over: its photo list and masks would be lost.
    other = ProjectStore.open(tmp_path / "other")
    other.add_photos([tmp_path / "theirs.jpg"])
    other.save_index()
    with pytest.raises(InputError, match="already holds another dbd-studio project"):
        moved.move_to(other.folder)
    assert [e.name for e in ProjectStore.open(other.folder).photos] == ["theirs"]
    assert moved.move_to(moved.folder) is moved  # the same folder: nothing to do


def test_adopt_refuses_outside_files_and_damaged_weights(store, tmp_path):
    vs = ModelVersions(store)
    outside = save_model(tmp_path / "elsewhere.pt", build_model("tiny", width=4), {})
    with pytest.raises(InputError, match="models/ folder"):
        vs.adopt("student", outside)
    damaged = candidate(store, "base-ft1")
    damaged.write_bytes(damaged.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(InputError, match="cannot adopt"):
        vs.adopt("student", damaged)
    assert vs.list("student") == []


def test_discard_deletes_a_candidate_but_never_an_adopted_version(store):
    vs = ModelVersions(store)
    kept = candidate(store, "base-ft1")
    vs.adopt("student", kept)
    with pytest.raises(InputError, match="adopted"):
        vs.discard(kept)
    gone = candidate(store, "base-ft2")
    (store.folder / "models" / "runs" / "base-ft2").mkdir(parents=True)
    vs.discard(gone)
    assert not gone.exists() and not gone.with_suffix(".json").exists()
    assert not (store.folder / "models" / "runs" / "base-ft2").exists() and kept.exists()


def test_active_version_with_missing_file_falls_back_to_base(store):
    vs = ModelVersions(store)
    p = candidate(store, "base-ft1")
    vs.adopt("student", p)
    p.unlink()
    assert vs.active("student") is None


def _photos(store, tmp_path, n, done):
    for i in range(n):
        img = np.full((24, 32, 3), 40 * i % 255, np.uint8)
        write_png(tmp_path / f"p{i}.png", img)
    store.add_photos([tmp_path / f"p{i}.png" for i in range(n)])
    for i, e in enumerate(store.photos):
        if i < done:
            store.save_mask(e, np.eye(24, 32, dtype=np.uint8))
            e.status = "done"
    store.save_index()


def test_too_few_done_photos(store, tmp_path):
    _photos(store, tmp_path, 6, done=3)
    store.photos[4].status = "done"  # done but without a saved mask: does not count
    assert len(done_entries(store)) == 3
    with pytest.raises(NotEnoughPhotos, match="at least 5 .* has 3"):
        check_ready(store)
    events = list(project_finetune(store, "student", tmp_path / "none.pt"))
    assert [e["type"] for e in events] == ["error"] and "at least 5" in events[0]["message"]


def test_cancel_before_training_writes_no_version(store, tmp_path):
    _photos(store, tmp_path, 5, done=5)
    parent = save_model(tmp_path / "base.pt", build_model("tiny", width=4), {})
    cancel = threading.Event()
    cancel.set()
    events = list(project_finetune(store, "student", parent, cancel))
    assert events[-1]["type"] == "cancelled"
    assert not (store.folder / "models").exists() or not list((store.folder / "models").glob("*.pt"))


def _tiny_recipe():
    from train_fixtures import tiny_config

    return tiny_config("finetune", steps=2, val={"fraction": 0.34}, data={"batch_size": 2, "size": 16})


def test_an_unreadable_saved_mask_is_named_and_left_out_and_the_rest_trains(store, tmp_path):
    import h5py

    _photos(store, tmp_path, 7, done=7)
    store.photos[0].seeded_with = {"source": "teacher", "threshold": 0.42}  # what the export records
    store.photos[0].threshold, store.photos[0].source = 0.9, "student"     # later view settings: not provenance
    store.save_index()
    bad = store.mask_path(store.photos[3])
    bad.write_bytes(b"not a png")
    parent = save_model(tmp_path / "base.pt", build_model("tiny", width=4), {})
    events = list(project_finetune(store, "student", parent, config=_tiny_recipe(), threads=1))
    assert events[-1]["type"] == "done", events[-1]
    skipped = [e["message"] for e in events if e["type"] == "skipped"]
    assert len(skipped) == 1 and str(bad) in skipped[0] and "p3" in skipped[0]
    s = events[-1]["summary"]
    assert s["n_train"] + s["n_val"] == 6
    with h5py.File(store.folder / "work" / "finetune-data.h5", "r") as f:
        assert "p3" not in f["samples"] and len(f["samples"]) == 6
        prov = json.loads(f["samples"]["p0"].attrs["provenance"])
    assert prov["threshold"] == 0.42 and prov["mask_source"] == "teacher" and prov["status"] == "done"


def test_too_few_readable_masks_left_gives_the_not_enough_photos_message(store, tmp_path):
    _photos(store, tmp_path, 5, done=5)
    store.mask_path(store.photos[1]).write_bytes(b"")
    parent = save_model(tmp_path / "base.pt", build_model("tiny", width=4), {})
    events = list(project_finetune(store, "student", parent, config=_tiny_recipe(), threads=1))
    assert [e["type"] for e in events if e["type"] in ("skipped", "error")] == ["skipped", "error"]
    msg = events[-1]["message"]
    assert "at least 5 photos" in msg and "has 5, of which 1 could not be read" in msg and "p1" in msg
    assert not (store.folder / "models").exists() or not list((store.folder / "models").glob("*.pt"))
