"""val.holdout = "photos": synthetic validation renders come only from source photos training never sees."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from dbd_core.data.synth import SharpPhotoSource, SynthConfig, SyntheticDataset, render_sample
from dbd_core.train.config import ConfigError, validate
from dbd_core.train.data import split_holdout_photos
from dbd_core.train.loop import TrainJob, run_training
from train_fixtures import tiny_config, write_sharp_photos

torch.set_num_threads(1)
PHOTOS = ("astronaut", "coffee", "rocket", "chelsea", "camera", "coins", "moon", "page", "text", "horse")


@pytest.fixture(scope="module")
def photo_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("sharp_holdout")
    write_sharp_photos(root, PHOTOS)
    return root


def test_split_photos_is_disjoint_complete_and_stable_when_photos_are_added(photo_dir, tmp_path):
    src = SharpPhotoSource(photo_dir, "all")
    train, val = src.split_photos(0.3, seed=5)
    tn = {train.relative_name(i) for i in range(len(train))}
    vn = {val.relative_name(i) for i in range(len(val))}
    assert tn and vn and not tn & vn and tn | vn == {f"{n}.png" for n in PHOTOS}
    again = src.split_photos(0.3, seed=5)[1]
    assert {again.relative_name(i) for i in range(len(again))} == vn
    # a photo's side depends on its name alone: a smaller folder keeps the same photos held out
    small = tmp_path / "small"
    small.mkdir()
    write_sharp_photos(small, PHOTOS[:6])
    sv = SharpPhotoSource(small, "all").split_photos(0.3, seed=5)[1]
    assert {sv.relative_name(i) for i in range(len(sv))} == vn & {f"{n}.png" for n in PHOTOS[:6]}
    # each side loads its own photos, not the parent's by index (the photos all have one size: compare pixels)
    for side in (train, val):
        for i, f in enumerate(side.files):
            assert np.array_equal(side.load(i, 64)[0], src.load(src.files.index(f), 64)[0])
    assert [src.files.index(f) for f in val.files] != list(range(len(val)))  # so index i is not photo i


def test_held_out_photos_never_appear_in_training_renders(photo_dir):
    cfg = SynthConfig(size=48)
    ds = SyntheticDataset(SharpPhotoSource(photo_dir, "all"), length=40, seed=3, cfg=cfg)
    train, val = split_holdout_photos(ds, 0.3, seed=3)
    vn = {val.source.relative_name(i) for i in range(len(val.source))}
    seen_train = {render_sample(train.source, i, train.seed, cfg)[2]["source"] for i in range(len(train))}
    seen_val = {render_sample(val.source, i, val.seed, cfg)[2]["source"] for i in range(len(val))}
    assert len(train) == 40 and len(val) == max(len(vn), 12)
    assert seen_val == vn and not seen_train & vn
    assert seen_train == {f"{n}.png" for n in PHOTOS} - vn  # every training photo is still used
    assert val.seed != train.seed  # held-out renders are not the training renders' stream


def test_training_run_records_its_held_out_photos(photo_dir, tmp_path):
    cfg = tiny_config("teacher", steps=2, data={"kind": "synthetic", "sharp": str(photo_dir), "split": "all",
                                                "size": 32, "length": 16},
                      val={"fraction": 0.3, "holdout": "photos", "every": 2, "batches": 1})
    events = list(run_training(TrainJob(cfg, run_dir=tmp_path, output="")))
    assert events[-1]["type"] == "done", events[-1]
    start = events[0]
    assert start["type"] == "start" and start["val_photos"]
    assert start["n_train"] == 16 and start["n_val"] >= len(start["val_photos"])
    json.dumps(start)  # the CLI writes every event to events.jsonl: it must stay JSON-able
    held = set(start["val_photos"])
    assert held < {f"{n}.png" for n in PHOTOS}
    assert any(e["type"] == "val" for e in events)


def test_item_holdout_records_no_photos_and_unknown_holdout_is_refused(photo_dir, tmp_path):
    cfg = tiny_config("teacher", steps=1, data={"kind": "synthetic", "sharp": str(photo_dir), "split": "all",
                                                "size": 32, "length": 8},
                      val={"fraction": 0.25})
    start = next(iter(run_training(TrainJob(cfg, run_dir=tmp_path, output=""))))
    assert start["type"] == "start" and start["val_photos"] == [] and start["n_val"] == 2
    with pytest.raises(ConfigError, match="val.holdout"):
        validate({"val": {"holdout": "scenes"}}, "t.toml")


def test_bench_style_validation_renders_held_out_photos_as_the_benchmark_does(photo_dir, tmp_path):
    from dbd_core.train.loop import _datasets

    cfg = tiny_config("teacher", steps=2, data={"kind": "synthetic", "sharp": str(photo_dir), "split": "all",
                                                "size": 32, "length": 40, "crop": "centre"},
                      val={"fraction": 0.3, "holdout": "photos", "render": "bench", "size": 40, "every": 2,
                           "batches": 2})
    train, val = _datasets(cfg, TrainJob(cfg, run_dir=tmp_path, output=""))
    assert train.cfg.crop == "centre" and train.cfg.size == 32 and "all_sharp" in train.cfg.scene_probs
    assert val.cfg.size == 40 and val.cfg.crop == "centre"
    infos = [render_sample(val.source, i, val.seed, val.cfg)[2] for i in range(len(val))]
    assert not {"all_sharp", "all_blurred"} & {inf["scene"] for inf in infos}
    assert all(inf["crop"][2:] == [40, 40] for inf in infos)  # native scale: a 40 px window, not resized
    assert {inf["source"] for inf in infos} == {val.source.relative_name(i) for i in range(len(val.source))}
    assert val[0]["image"].shape == (3, 40, 40)
    events = list(run_training(TrainJob(cfg, run_dir=tmp_path / "run", output="")))
    assert events[-1]["type"] == "done", events[-1]
    assert any(e["type"] == "val" for e in events)


def test_bench_style_validation_needs_held_out_photos_and_val_size_needs_it():
    with pytest.raises(ConfigError, match="val.render"):
        validate({"val": {"fraction": 0.1, "render": "bench"}}, "t.toml")
    with pytest.raises(ConfigError, match="val.size"):
        validate({"val": {"fraction": 0.1, "holdout": "photos", "size": 320}}, "t.toml")
    with pytest.raises(ConfigError, match="data.crop"):
        validate({"data": {"crop": "center"}}, "t.toml")
    # options the renderer alone carries out are refused for photo datasets, never silently ignored
    with pytest.raises(ConfigError, match="data.crop"):
        validate({"data": {"kind": "folder", "crop": "centre"}}, "t.toml")
    with pytest.raises(ConfigError, match="val.render"):
        validate({"data": {"kind": "hdf5"}, "val": {"fraction": 0.1, "holdout": "photos", "render": "bench"}}, "t.toml")


def test_render_seed_gives_new_training_renders_and_the_same_held_out_ones(photo_dir):
    from dbd_core.train.data import build_dataset, train_and_validation

    def split(**data):
        cfg = tiny_config("teacher", steps=1, data={"kind": "synthetic", "sharp": str(photo_dir), "split": "all",
                                                    "size": 32, "length": 8, **data},
                          val={"fraction": 0.3, "holdout": "photos", "render": "bench", "size": 32, "batches": 1})
        return train_and_validation(cfg, build_dataset(cfg))

    (t0, v0), (t1, v1), (t7, v7) = split(), split(render_seed=cfg_seed()), split(render_seed=7)
    assert t1.seed == t0.seed and t7.seed == 7 != t0.seed  # -1 (default) means run.seed
    assert v0.seed == v7.seed and v0.source.files == v7.source.files  # held out: same photos, same stream
    for i in range(len(v0)):
        assert torch.equal(v0[i]["image"], v7[i]["image"])
    assert any(not torch.equal(t0[i]["image"], t7[i]["image"]) for i in range(len(t0)))


def cfg_seed() -> int:
    return tiny_config("teacher", steps=1)["run"]["seed"]


def test_render_seed_is_refused_for_data_that_is_not_rendered(tmp_path):
    cfg = tiny_config("teacher", steps=1)
    cfg["data"].update(kind="folder", path=str(tmp_path), render_seed=3)
    with pytest.raises(ConfigError, match="data.render_seed"):
        validate(cfg, "t.toml")
