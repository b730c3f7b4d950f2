"""torch datasets over folders / HDF5: item contract, resizing, augmentation, splits, workers."""

import cv2
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from dbd_core.data.dataset import LabelledDataset, names_for_split, split_names
from dbd_core.data.formats import open_dataset_reader, open_writer
from dbd_core.errors import InputError


@pytest.fixture(scope="module")
def datasets(tmp_path_factory, chelsea, coffee):
    """The same 4 samples (3 labelled, 1 unlabelled) as a folder and as an .h5 file."""
    root = tmp_path_factory.mktemp("ds")
    photos = {"cat": cv2.resize(chelsea, (120, 80), interpolation=cv2.INTER_AREA),
              "coffee": cv2.resize(coffee, (90, 60), interpolation=cv2.INTER_AREA)}
    photos["cat_flip"] = np.ascontiguousarray(photos["cat"][:, ::-1])
    photos["free"] = photos["coffee"][:40, :50]
    masks = {}
    for n, img in photos.items():
        m = np.zeros(img.shape[:2], np.uint8)
        m[:, : img.shape[1] // 3] = 1  # left third blurred: flips and crops are visible in the mask
        masks[n] = m
    masks["free"] = None
    for path in (root / "f", root / "d.h5"):
        with open_writer(path) as w:
            for n, img in photos.items():
                w.add(n, img, masks[n], split="test" if n == "cat_flip" else None)
    return root / "f", root / "d.h5", photos, masks


@pytest.mark.parametrize("which", [0, 1])
def test_items_follow_the_contract(datasets, which):
    ds = LabelledDataset(datasets[which], size=(48, 64))
    assert len(ds) == 4
    for i in range(len(ds)):
        it = ds[i]
        assert it["image"].dtype == torch.float32 and it["image"].shape == (3, 48, 64)
        assert it["mask"].dtype == torch.float32 and it["mask"].shape == (1, 48, 64)
        assert 0.0 <= it["image"].min() and it["image"].max() <= 1.0
        assert set(it["mask"].unique().tolist()) <= {0.0, 1.0}
        assert it["has_mask"] is (it["name"] != "free")
    free = ds[ds.names.index("free")]
    assert free["mask"].sum() == 0
    cat = ds[0]  # left third blurred, resized by nearest
    assert cat["mask"][0, :, :20].min() == 1 and cat["mask"][0, :, 24:].max() == 0
    full = LabelledDataset(datasets[which], size=None)[1]
    assert full["image"].shape == (3, 60, 90)
    ref = torch.from_numpy(datasets[2]["coffee"].transpose(2, 0, 1).astype(np.float32) / 255)
    assert torch.equal(full["image"], ref)


def test_augmentation_keeps_every_photo_pixel_on_its_mask_pixel(tmp_path):
    # The photo is red exactly where the mask says blurred and blue elsewhere, on an asymmetric shape (an
    # off-centre disc and a corner block): a crop, resize or flip applied to one and not the other shows.
    h, w = 90, 120
    mask = np.zeros((h, w), np.uint8)
    cv2.circle(mask, (80, 35), 22, 1, -1)
    mask[60:, :30] = 1
    photo = np.zeros((h, w, 3), np.uint8)
    photo[mask == 1] = (255, 0, 0)
    photo[mask == 0] = (0, 0, 255)
    with open_writer(tmp_path / "ds") as wr:
        wr.add("shape", photo, mask)
    ds = LabelledDataset(tmp_path / "ds", size=48, augment=True, seed=0, jitter=0.0)
    flips = set()
    for epoch in range(12):
        ds.set_epoch(epoch)
        it = ds[0]
        red = (it["image"][0] > it["image"][2]).float()  # where the photo is red
        m = it["mask"][0]
        assert 0 < m.sum() < m.numel()
        # Resizing blends a pixel's worth at the shape's edge; anywhere else image and mask must agree.
        assert (red == m).float().mean() > 0.96, f"epoch {epoch}: the photo and the mask moved apart"
        flips.add(bool(m[-1, :4].any()) if m[-1].any() else None)
    assert len(flips) > 1  # both orientations of the corner block were seen: flips did happen


def test_augmentation_deterministic_and_geometry_shared(datasets):
    ds = LabelledDataset(datasets[1], size=32, augment=True, seed=3, jitter=0.0)
    a, b = ds[0], ds[0]
    assert torch.equal(a["image"], b["image"]) and torch.equal(a["mask"], b["mask"])
    firsts = set()
    for epoch in range(6):
        ds.set_epoch(epoch)
        it = ds[0]
        assert it["image"].shape == (3, 32, 32) and set(it["mask"].unique().tolist()) <= {0.0, 1.0}
        firsts.add(it["image"].sum().item())
        # the blurred region is a vertical band at the left or (after a flip) the right: every
        # mask row is identical, so the image and mask got the same crop, resize and flip
        m = it["mask"][0]
        assert torch.equal(m, m[:1].expand_as(m))
        cols = m[0]
        if 0 < cols.sum() < 32:
            assert cols[0] == 1 or cols[-1] == 1
    assert len(firsts) > 3  # epochs differ
    ds2 = LabelledDataset(datasets[0], size=32, augment=True, seed=3, jitter=0.0)
    ds2.set_epoch(5)
    assert torch.allclose(ds2[0]["image"], it["image"])  # same (seed, epoch, index) on the folder copy
    jit = LabelledDataset(datasets[1], size=32, augment=True, seed=3, jitter=0.2)
    jit.set_epoch(5)
    j = jit[0]
    assert torch.equal(j["mask"], it["mask"]) and not torch.equal(j["image"], it["image"])
    assert 0.0 <= j["image"].min() and j["image"].max() <= 1.0


def test_split_names_is_stable_when_names_are_added():
    names = [f"img{i:04d}" for i in range(400)]
    train, val = split_names(names, 0.2, seed=1)
    assert set(train).isdisjoint(val) and sorted(train + val) == sorted(names)
    assert 50 < len(val) < 110
    assert split_names(names, 0.2, seed=1) == (train, val)
    train2, val2 = split_names(names + [f"new{i}" for i in range(100)], 0.2, seed=1)
    assert set(val) <= set(val2) and set(train) <= set(train2)
    assert split_names(names, 0.2, seed=2)[1] != val
    assert len(split_names(["a", "b"], 0.1)[1]) == 1  # tiny sets still get a val sample
    with pytest.raises(ValueError):
        split_names(names, 1.0)


def test_stored_splits_win(datasets):
    r = open_dataset_reader(datasets[0])
    train = names_for_split(r, "train", 0.5, seed=0)
    val = names_for_split(r, "val", 0.5, seed=0)
    assert names_for_split(r, "test") == ["cat_flip"]
    assert "cat_flip" not in train + val and sorted(train + val) == ["cat", "coffee", "free"]
    ds = LabelledDataset(datasets[1], split="test", size=16)
    assert ds.names == ["cat_flip"]
    with pytest.raises(InputError, match="no sample named 'nope'"):
        LabelledDataset(datasets[1], names=["nope"])


def test_h5_works_in_dataloader_workers(datasets):
    ds = LabelledDataset(datasets[1], size=24, augment=True, seed=0)
    ds[0]  # the parent opened the file; forked workers must reopen their own handle
    dl = DataLoader(ds, batch_size=2, num_workers=2, shuffle=False)
    batches = list(dl)
    assert len(batches) == 2 and batches[0]["image"].shape == (2, 3, 24, 24)
    assert batches[1]["has_mask"].tolist() == [True, False]
    assert torch.equal(batches[0]["image"][0], ds[0]["image"])


def test_reduced_decode_of_big_photos_matches_full_decode(tmp_path, chelsea):
    big = cv2.resize(chelsea, (902, 600), interpolation=cv2.INTER_LINEAR)
    cv2.imwrite(str(tmp_path / "big.jpg"), big[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 95])
    mask = np.zeros(big.shape[:2], np.uint8)
    mask[:, 600:] = 1
    with open_writer(tmp_path / "b.h5") as w:
        w.add("big", tmp_path / "big.jpg", mask)
    ds = LabelledDataset(tmp_path / "b.h5", size=(60, 90))
    assert ds._reduce_for("big") == 8  # 600/60 = 10 -> decode at 1/8 (75x113), then area resize
    rgb, m, meta = ds.reader.get("big", reduce=8)
    assert rgb.shape == (75, 113, 3) and m.shape == (75, 113) and (meta["height"], meta["width"]) == (600, 902)
    it = ds[0]
    full = torch.from_numpy(cv2.resize(big, (90, 60), interpolation=cv2.INTER_AREA).transpose(2, 0, 1) / 255.0)
    assert (it["image"] - full.float()).abs().mean() < 0.02
    ref = torch.from_numpy(cv2.resize(mask, (90, 60), interpolation=cv2.INTER_NEAREST)).float()
    assert (it["mask"][0] != ref).sum() <= 60  # two nearest resizes may move the edge by one column
    assert LabelledDataset(tmp_path / "b.h5", size=(60, 90), augment=True)._reduce_for("big") == 4  # room for crops
    assert LabelledDataset(tmp_path / "b.h5", size=320)._reduce_for("big") == 1
