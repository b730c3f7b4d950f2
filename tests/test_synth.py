"""Synthetic defocus renderer: determinism, label polarity, kernels, splits and `dbd synth`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import scipy.io
from skimage import data as skdata

from dbd_core.data.kernels import defocus_kernel, disk_kernel
from dbd_core.data.synth import SharpPhotoSource, SynthConfig, SyntheticDataset, render_sample

SMALL = 96  # tiny samples keep the suite fast


def _write_rgb(path: Path, rgb: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), rgb[..., ::-1])


@pytest.fixture(scope="module")
def photo_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("sharp")
    for name, img in (("astronaut", skdata.astronaut()), ("coffee", skdata.coffee()), ("rocket", skdata.rocket())):
        _write_rgb(root / f"{name}.png", cv2.resize(img, (160, 128), interpolation=cv2.INTER_AREA))
    return root


def _cfg(**kw) -> SynthConfig:
    return SynthConfig(size=SMALL, **kw)


def test_same_seed_and_index_give_identical_bytes(photo_dir):
    src = SharpPhotoSource(photo_dir, "all")
    a_img, a_mask, a_info = render_sample(src, 5, 11, _cfg())
    fresh = SharpPhotoSource(photo_dir, "all")  # a new process-like source with an empty cache
    b_img, b_mask, b_info = render_sample(fresh, 5, 11, _cfg())
    assert a_img.tobytes() == b_img.tobytes() and a_mask.tobytes() == b_mask.tobytes()
    assert a_info == b_info
    c_img, _, _ = render_sample(src, 6, 11, _cfg())
    d_img, _, _ = render_sample(src, 5, 12, _cfg())
    assert c_img.tobytes() != a_img.tobytes() and d_img.tobytes() != a_img.tobytes()
    assert a_img.shape == (SMALL, SMALL, 3) and a_img.dtype == np.uint8
    assert a_mask.shape == (SMALL, SMALL) and set(np.unique(a_mask)) <= {0, 1}


def _laplacian_energy(img: np.ndarray) -> np.ndarray:
    grey = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY).astype(np.float32)
    return np.abs(cv2.Laplacian(grey, cv2.CV_32F))


@pytest.mark.parametrize("scene", ["sharp_object", "blurred_object"])
def test_blurred_label_has_less_high_frequency_energy(tmp_path, scene):
    # A strongly textured source: any region's sharpness is visible, so the label must match it.
    rng = np.random.default_rng(0)
    tex = cv2.resize(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8), (192, 192), interpolation=cv2.INTER_NEAREST)
    _write_rgb(tmp_path / "tex.png", tex)
    src = SharpPhotoSource(tmp_path, "all")
    cfg = _cfg(scene_probs={scene: 1.0}, radius_range=(4.0, 8.0), p_noise=0.0, p_jpeg=0.0, p_jitter=0.0)
    checked = 0
    for i in range(4):
        img, mask, info = render_sample(src, i, 3, cfg)
        assert info["scene"] == scene
        if mask.sum() < 200 or (1 - mask).sum() < 200:
            continue
        lap = _laplacian_energy(img)
        inner_blur = cv2.erode(mask, np.ones((9, 9), np.uint8)).astype(bool)
        inner_sharp = cv2.erode(1 - mask, np.ones((9, 9), np.uint8)).astype(bool)
        assert lap[inner_blur].mean() < 0.5 * lap[inner_sharp].mean()
        checked += 1
    assert checked >= 2


def test_disk_kernel_sums_to_one_and_is_a_disk():
    k = disk_kernel(5.0)
    assert k.shape == (11, 11)
    assert abs(float(k.sum()) - 1.0) < 1e-5
    c = 5
    assert k[c, c] == pytest.approx(k[c, c + 3]) and k[c, c] > 0  # flat inside
    assert k[0, 0] == 0 and k[c, 0] > 0  # corners outside, rim partly covered
    assert 0 < k[c, 0] < k[c, c]  # anti-aliased rim
    assert np.allclose(k, k.T) and np.allclose(k, k[::-1, ::-1])
    g = defocus_kernel(5.0, gauss_mix=0.5)
    assert abs(float(g.sum()) - 1.0) < 1e-5 and g.shape[0] > k.shape[0]
    assert disk_kernel(0.1).shape == (1, 1)


def test_coc_threshold_changes_label_not_image(photo_dir):
    src = SharpPhotoSource(photo_dir, "all")
    base = dict(scene_probs={"ramp": 1.0}, radius_range=(6.0, 12.0))
    img1, m1, _ = render_sample(src, 2, 7, _cfg(coc_threshold=1.5, **base))
    img2, m2, _ = render_sample(src, 2, 7, _cfg(coc_threshold=3.0, **base))
    img3, m3, _ = render_sample(src, 2, 7, _cfg(coc_threshold=100.0, **base))
    assert img1.tobytes() == img2.tobytes() == img3.tobytes()
    assert m1.sum() > m2.sum() > 0 and m3.sum() == 0
    assert np.all(m2 <= m1)  # a higher threshold only removes blurred pixels


def _fake_bsds(root: Path) -> None:
    rng = np.random.default_rng(1)
    for split, ids in (("train", ["101", "102"]), ("val", ["201"]), ("test", ["301", "302"])):
        for i in ids:
            img = rng.integers(0, 256, (60, 90, 3), dtype=np.uint8)
            _write_rgb(root / "BSDS500" / "images" / split / f"{i}.jpg", img)
            seg = np.ones((60, 90), np.uint16)
            seg[10:40, 20:60] = 2
            seg[40:, :30] = 3
            cell = np.empty((1, 2), dtype=object)
            for k in range(2):
                cell[0, k] = {"Segmentation": seg, "Boundaries": np.zeros_like(seg, np.uint8)}
            gt_dir = root / "BSDS500" / "groundTruth" / split
            gt_dir.mkdir(parents=True, exist_ok=True)
            scipy.io.savemat(str(gt_dir / f"{i}.mat"), {"groundTruth": cell})
    _write_rgb(root / "Kodak" / "k1.png", rng.integers(0, 256, (70, 70, 3), dtype=np.uint8))


def test_train_split_excludes_bsds_test(tmp_path):
    _fake_bsds(tmp_path)
    train = SharpPhotoSource(tmp_path, "train")
    test = SharpPhotoSource(tmp_path, "test")
    every = SharpPhotoSource(tmp_path, "all")
    names = [train.relative_name(i) for i in range(len(train))]
    assert len(train) == 4 and not any("/test/" in n for n in names)
    assert sorted(test.relative_name(i) for i in range(len(test))) == [
        "BSDS500/images/test/301.jpg", "BSDS500/images/test/302.jpg"]
    assert len(every) == 6
    # BSDS photos find their segmentations; they are used to shape the regions.
    i = names.index("BSDS500/images/train/101.jpg")
    _, segs = train.load(i, 100)
    assert len(segs) == 2 and segs[0].shape == (60, 90)
    # Training samples never come from a test photo, whatever the index.
    cfg = SynthConfig(size=48)
    for k in range(8):
        assert "/test/" not in render_sample(train, k, 0, cfg)[2]["source"]


def test_synthetic_dataset_items(photo_dir):
    src = SharpPhotoSource(photo_dir, "all")
    ds = SyntheticDataset(src, length=3, seed=4, cfg=_cfg())
    item = ds[1]
    assert item["image"].shape == (3, SMALL, SMALL) and item["mask"].shape == (1, SMALL, SMALL)
    assert str(item["image"].dtype) == "torch.float32" and item["has_mask"] is True
    assert 0 <= float(item["image"].min()) and float(item["image"].max()) <= 1
    img, mask, _ = render_sample(src, 1, 4, _cfg())
    assert np.array_equal((item["image"].numpy() * 255).round().astype(np.uint8).transpose(1, 2, 0), img)
    assert np.array_equal(item["mask"][0].numpy().astype(np.uint8), mask)
    with pytest.raises(IndexError):
        ds[3]


def _run_synth(argv):
    from dbd_core.cli import cmd_synth

    p = argparse.ArgumentParser(prog="dbd")
    cmd_synth.add_parser(p.add_subparsers(dest="command"))
    args = p.parse_args(["synth", *argv])
    return args.func(args)


def test_dbd_synth_end_to_end(photo_dir, tmp_path):
    out = tmp_path / "ds"
    assert _run_synth(["--sharp", str(photo_dir), "--out", str(out), "--n", "4", "--seed", "3", "--size", "64"]) == 0
    meta = json.loads((out / "dataset.json").read_text())
    assert meta["format"] == "dbd-dataset" and meta["format_version"] == 1 and meta["gt_polarity"] == "blur-white"
    assert len(meta["samples"]) == 4
    for s in meta["samples"]:
        img = cv2.imread(str(out / s["image"]), cv2.IMREAD_UNCHANGED)
        gt = cv2.imread(str(out / s["gt"]), cv2.IMREAD_UNCHANGED)
        assert img.shape == (64, 64, 3) and gt.shape == (64, 64)
        assert set(np.unique(gt)) <= {0, 255}
        prov = s["provenance"]
        assert prov["seed"] == 3 and prov["scene"] and prov["source"].endswith(".png") and "radii" in prov
    assert len(list((out / "images").iterdir())) == 4 and len(list((out / "gt").iterdir())) == 4
    # Same command again: the same bytes (determinism through the whole pipeline).
    out2 = tmp_path / "ds2"
    _run_synth(["--sharp", str(photo_dir), "--out", str(out2), "--n", "4", "--seed", "3", "--size", "64"])
    for s in meta["samples"]:
        assert (out / s["image"]).read_bytes() == (out2 / s["image"]).read_bytes()


def test_dbd_synth_bad_input_is_one_line(tmp_path, capsys):
    from dbd_core.errors import InputError

    (tmp_path / "photos").mkdir()
    with pytest.raises(InputError, match="no photos found"):
        _run_synth(["--sharp", str(tmp_path / "photos"), "--out", str(tmp_path / "o"), "--n", "2"])
    with pytest.raises(InputError, match="BSDS500/images/test"):
        _run_synth(["--preset", "bench", "--sharp", str(tmp_path / "photos"), "--out", str(tmp_path / "o")])


def test_config_at_render_size_scales_blur_to_the_working_size():
    from dbd_core.data.synth import SynthConfig

    base, big = SynthConfig(), SynthConfig.at_render_size(1280, p_jpeg=0.0)
    assert big.size == 1280 and big.p_jpeg == 0.0
    assert big.coc_threshold == base.coc_threshold * 4 and big.sharp_radius_max == base.sharp_radius_max * 4
    assert big.radius_range == (base.radius_range[0] * 4, base.radius_range[1] * 4)
    assert SynthConfig.at_render_size(320).radius_range == base.radius_range
