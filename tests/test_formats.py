"""Dataset formats: folder + HDF5 writers/readers, lossless conversion, import of public layouts,
the polarity check, bad input, and the dbd dataset CLI."""

import argparse
import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from dbd_core.cli import cmd_dataset
from dbd_core.data.formats import Sample, convert, open_dataset_reader, open_writer, write_samples
from dbd_core.data.importing import check_dataset, import_layout
from dbd_core.errors import DBDError, InputError


def _small(img, w=96):
    h = round(img.shape[0] * w / img.shape[1])
    return cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)


def _half_mask(shape, right=True):
    m = np.zeros(shape[:2], np.uint8)
    half = shape[1] // 2
    if right:
        m[:, half:] = 1
    else:
        m[:, :half] = 1
    return m


@pytest.fixture
def photos(tmp_path, chelsea, coffee):
    """A JPEG and a PNG photo on disk, with their {0,1} masks (1 = blurred)."""
    d = tmp_path / "src"
    d.mkdir()
    a, b = _small(chelsea), _small(coffee, 80)
    cv2.imwrite(str(d / "cat.jpg"), a[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 90])
    cv2.imwrite(str(d / "coffee.png"), b[..., ::-1])
    return {"cat": (d / "cat.jpg", _half_mask(a.shape)), "coffee": (d / "coffee.png", _half_mask(b.shape, False))}


def _write(path, photos, unlabelled=None):
    with open_writer(path, created_by="tests") as w:
        for i, (name, (p, m)) in enumerate(photos.items()):
            w.add(name, p, m, split="train" if i == 0 else None, provenance={"model": "student", "threshold": 0.5})
        if unlabelled is not None:
            w.add("extra", unlabelled)
    return path


def _files(root):
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("kind", ["folder", "h5"])
def test_writer_reader_contents(tmp_path, photos, chelsea, kind):
    path = tmp_path / ("ds.h5" if kind == "h5" else "ds")
    _write(path, photos, unlabelled=_small(chelsea, 40))
    with open_dataset_reader(path) as r:
        assert r.names == ["cat", "coffee", "extra"] and len(r) == 3
        assert r.gt_polarity == "blur-white" and r.created_by == "tests"
        rgb, mask, meta = r.get("cat")
        assert rgb.dtype == np.uint8 and rgb.shape[2] == 3 and mask.shape == rgb.shape[:2]
        np.testing.assert_array_equal(mask, photos["cat"][1])
        assert meta["split"] == "train" and meta["provenance"]["model"] == "student"
        assert meta["provenance"]["source"] == str(photos["cat"][0])
        assert r.get("coffee")[2]["split"] is None
        rgb, mask, meta = r.get("extra")
        assert mask is None and meta["has_mask"] is False and rgb.shape == (27, 40, 3)
        assert r.sample("cat").read_bytes() == photos["cat"][0].read_bytes()  # original bytes, not re-encoded
    if kind == "folder":
        doc = json.loads((path / "dataset.json").read_text())
        assert (doc["format"], doc["format_version"], doc["gt_polarity"]) == ("dbd-dataset", 1, "blur-white")
        assert doc["samples"][0]["image"] == "images/cat.jpg" and doc["samples"][0]["gt"] == "gt/cat.png"
        gt = cv2.imread(str(path / "gt/cat.png"), cv2.IMREAD_UNCHANGED)
        assert set(np.unique(gt)) == {0, 255} and (gt == 255).sum() == photos["cat"][1].sum()


def test_folder_h5_folder_is_lossless(tmp_path, photos):
    src = _write(tmp_path / "a", photos)
    convert(src, tmp_path / "b.h5")
    convert(tmp_path / "b.h5", tmp_path / "c")
    fa, fc = _files(src), _files(tmp_path / "c")
    assert fa.keys() == fc.keys()
    for k in fa:  # images byte-equal, gt PNGs byte-equal (same encoder), dataset.json equal
        assert fa[k] == fc[k], k
    with open_dataset_reader(tmp_path / "b.h5") as r:
        import h5py

        with h5py.File(tmp_path / "b.h5", "r") as f:
            g = f["samples/cat"]
            assert g["mask"].compression == "gzip" and g["mask"].chunks is not None
            assert g["image"].dtype == np.uint8 and g["image"].ndim == 1
            assert int(g.attrs["width"]) == 96 and f.attrs["gt_polarity"] == "blur-white"
        np.testing.assert_array_equal(r.get("coffee")[1], photos["coffee"][1])


def test_writer_is_atomic_on_exception_and_cancel(tmp_path, photos):
    for target in (tmp_path / "x", tmp_path / "x.h5"):
        with pytest.raises(RuntimeError):
            with open_writer(target) as w:
                w.add("cat", *photos["cat"])
                raise RuntimeError("boom")
        assert not target.exists()
    samples = [Sample(n, image_path=p, mask=m) for n, (p, m) in photos.items()]
    seen = []
    ok = write_samples(tmp_path / "y.h5", samples, progress=lambda i, n: seen.append((i, n)),
                       cancel=lambda: len(seen) >= 1)
    assert ok is False and seen == [(1, 2)]
    assert os.listdir(tmp_path) == ["src"]  # no temp folder or file left anywhere


def test_writer_refuses_bad_samples(tmp_path, photos):
    with open_writer(tmp_path / "d") as w:
        p, m = photos["cat"]
        with pytest.raises(InputError, match="mask is 10x10 but its image is 96x"):
            w.add("cat", p, np.zeros((10, 10), np.uint8))
        with pytest.raises(InputError, match="only 0 and 1"):
            w.add("cat", p, m * 255)
        with pytest.raises(InputError, match="bad sample name"):
            w.add("../up", p, m)
        w.add("cat", p, m)
        with pytest.raises(InputError, match="duplicate"):
            w.add("cat", p, m)
        with pytest.raises(InputError, match="not a readable image"):
            w.add("junk", b"\xff\xd8\xff" + b"\0" * 50, None)
    assert open_dataset_reader(tmp_path / "d").names == ["cat"]
    with pytest.raises(InputError, match="already exists"):
        open_writer(tmp_path / "d")


def test_an_h5_dataset_that_declares_sharp_white_is_read_as_blur_white(tmp_path):
    import h5py

    from dbd_core.data.formats import convert

    m = np.zeros((20, 30), np.uint8)
    m[:, :10] = 1
    with open_writer(tmp_path / "a.h5") as w:
        w.add("x", np.full((20, 30, 3), 128, np.uint8), m)
    with h5py.File(tmp_path / "a.h5", "r+") as f:  # another tool's file: its masks mark the in-focus part
        f.attrs["gt_polarity"] = "sharp-white"
    with open_dataset_reader(tmp_path / "a.h5") as r:
        assert r.gt_polarity == "sharp-white"
        np.testing.assert_array_equal(r.get("x")[1], 1 - m)
    convert(tmp_path / "a.h5", tmp_path / "b")  # written blur-white, the meaning kept
    with open_dataset_reader(tmp_path / "b") as r:
        assert r.gt_polarity == "blur-white"
        np.testing.assert_array_equal(r.get("x")[1], 1 - m)


def test_convert_names_and_leaves_out_an_unreadable_sample_and_converts_the_rest(tmp_path, capsys):
    m = np.zeros((20, 30), np.uint8)
    m[:, :10] = 1
    with open_writer(tmp_path / "src") as w:
        for name in ("a", "b", "c"):
            w.add(name, np.full((20, 30, 3), 128, np.uint8), m)
    (tmp_path / "src" / "gt" / "b.png").write_bytes(b"")  # one damaged mask
    assert _cli(["dataset", "convert", str(tmp_path / "src"), str(tmp_path / "dst.h5")]) == 1
    out, err = capsys.readouterr()
    assert "gt/b.png" in err and "sample b left out" in err and len(err.strip().splitlines()) == 1
    assert "converted 2 samples" in out and "(1 left out)" in out
    with open_dataset_reader(tmp_path / "dst.h5") as r:
        assert r.names == ["a", "c"] and np.array_equal(r.get("c")[1], m)
    rep = check_dataset(tmp_path / "src")  # the damaged sample is counted as what it is
    assert "3 samples (2 labelled, 0 unlabelled, 1 unreadable)" in rep.lines()[0] and len(rep.errors) == 1
    with pytest.raises(InputError, match="b.png"):  # the library call without a list stays strict
        convert(tmp_path / "src", tmp_path / "strict.h5")
    assert not (tmp_path / "strict.h5").exists()


def test_truncated_h5_and_bad_json_name_the_file(tmp_path, photos):
    h5 = _write(tmp_path / "t.h5", photos)
    data = h5.read_bytes()
    h5.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError) as e:
        with open_dataset_reader(h5) as r:
            [r.get(n) for n in r.names]
    assert str(h5) in str(e.value) and "\n" not in str(e.value)

    folder = _write(tmp_path / "f", photos)
    doc = json.loads((folder / "dataset.json").read_text())
    for change, msg in ((dict(format_version=2), "unsupported format_version 2"),
                        (dict(gt_polarity=None), "gt_polarity missing"),
                        (dict(gt_polarity="white"), "unknown gt_polarity")):
        (folder / "dataset.json").write_text(json.dumps({**doc, **change}))
        with pytest.raises(InputError, match=msg) as e:
            open_dataset_reader(folder)
        assert "dataset.json" in str(e.value)
    (folder / "dataset.json").unlink()
    with pytest.raises(InputError, match="dataset.json: missing"):
        open_dataset_reader(folder)


def test_folder_reader_honours_sharp_white_and_reports_missing_gt(tmp_path, photos):
    folder = _write(tmp_path / "f", photos)
    doc = json.loads((folder / "dataset.json").read_text())
    gt = folder / "gt/cat.png"
    cv2.imwrite(str(gt), 255 - cv2.imread(str(gt), cv2.IMREAD_GRAYSCALE))
    (folder / "dataset.json").write_text(json.dumps({**doc, "gt_polarity": "sharp-white"}))
    r = open_dataset_reader(folder)
    np.testing.assert_array_equal(r.get("cat")[1], photos["cat"][1])
    (folder / "gt/coffee.png").unlink()
    with pytest.raises(InputError, match="coffee.png: no such file"):
        r.get("coffee")


def _layout(tmp_path, photos, polarity="sharp-white"):
    """A CUHK-style layout: image/NAME.jpg, gt/NAME.png stored with the given polarity."""
    imgs, gts = tmp_path / "pub/image", tmp_path / "pub/gt"
    imgs.mkdir(parents=True)
    gts.mkdir()
    for name, (p, m) in photos.items():
        (imgs / p.name).write_bytes(p.read_bytes())
        white = m if polarity == "blur-white" else 1 - m
        cv2.imwrite(str(gts / f"{name}.png"), white * 255)
    return imgs, gts


def test_import_inverts_sharp_white_and_reports(tmp_path, photos):
    imgs, gts = _layout(tmp_path, photos, "sharp-white")
    # a grey-edged gt (as left by a resize) must be thresholded and counted
    g = cv2.imread(str(gts / "cat.png"), cv2.IMREAD_GRAYSCALE)
    g[:, 47] = 128
    g[:, 46] = 100
    cv2.imwrite(str(gts / "cat.png"), g)
    cv2.imwrite(str(gts / "orphan.png"), g)
    cv2.imwrite(str(imgs / "lonely.jpg"), np.zeros((8, 8, 3), np.uint8))
    rep = import_layout(imgs, gts, "sharp-white", tmp_path / "out.h5")
    assert rep.ok and rep.imported == ["cat", "coffee"]
    assert rep.nonbinary == ["cat"] and rep.gt_without_image == ["orphan.png"] and rep.images_without_gt == ["lonely.jpg"]
    assert any("1 gt masks were not binary" in line and "thresholded at 128" in line for line in rep.lines())
    r = open_dataset_reader(tmp_path / "out.h5")
    np.testing.assert_array_equal(r.get("coffee")[1], photos["coffee"][1])  # inverted to 1 = blurred
    expect = photos["cat"][1].copy()
    expect[:, 47] = 0  # 128 -> white -> sharp; 100 -> black -> blurred
    expect[:, 46] = 1
    np.testing.assert_array_equal(r.get("cat")[1], expect)
    assert r.sample("cat").read_bytes() == photos["cat"][0].read_bytes()
    assert r.get("cat")[2]["provenance"]["source_gt_polarity"] == "sharp-white"
    # the same gts declared blur-white come out inverted
    rep2 = import_layout(imgs, gts, "blur-white", tmp_path / "wrong")
    np.testing.assert_array_equal(open_dataset_reader(tmp_path / "wrong").get("coffee")[1], 1 - photos["coffee"][1])
    with pytest.raises(InputError, match="polarity must be stated"):
        import_layout(imgs, gts, None, tmp_path / "nope")
    assert rep2.ok


def test_import_size_mismatch_error_or_resize(tmp_path, photos):
    imgs, gts = _layout(tmp_path, photos, "blur-white")
    big = cv2.resize(cv2.imread(str(gts / "cat.png"), cv2.IMREAD_GRAYSCALE), (192, 128), interpolation=cv2.INTER_NEAREST)
    cv2.imwrite(str(gts / "cat.png"), big)
    rep = import_layout(imgs, gts, "blur-white", tmp_path / "o1")
    assert not rep.ok and rep.imported == ["coffee"]
    assert len(rep.errors) == 1 and "sample cat: gt is 192x128 but its image is 96x64" in rep.errors[0]
    rep = import_layout(imgs, gts, "blur-white", tmp_path / "o2", resize_gt="nearest")
    assert rep.ok and rep.resized == ["cat"]
    np.testing.assert_array_equal(open_dataset_reader(tmp_path / "o2").get("cat")[1], photos["cat"][1])


def test_check_reports_fraction_and_flags_inverted_polarity(tmp_path, photos):
    imgs, gts = _layout(tmp_path, photos, "sharp-white")
    wrong = import_layout(imgs, gts, "blur-white", tmp_path / "wrong").out
    right = import_layout(imgs, gts, "sharp-white", tmp_path / "right").out
    truth = {p.name: m for p, m in photos.values()}

    # A stand-in "model" that predicts the true blur of each photo (matched by size): the check's
    # logic is what is tested here, not a network's accuracy.
    def oracle(rgb):
        for m in truth.values():
            if m.shape == rgb.shape[:2]:
                return m.astype(np.float32)
        raise AssertionError("unknown photo")

    rep = check_dataset(right, predict=oracle, model_name="oracle")
    assert rep.n_labelled == 2 and not rep.warnings and rep.model_auc == 1.0 and rep.n_compared == 2
    expect = sum(int(m.sum()) for m in truth.values()) / sum(m.size for m in truth.values())
    assert rep.blurred_fraction == pytest.approx(expect)
    rep = check_dataset(wrong, predict=oracle, model_name="oracle")
    assert rep.model_auc == 0.0 and rep.n_inverted_better == 2
    assert sorted(rep.inverted_better) == sorted(Path(n).stem for n in truth) and any(
        "far better inverted (AUC < 0.3): " in line and all(Path(n).stem in line for n in truth)
        for line in rep.lines())
    assert any("look inverted" in w and "other --gt-polarity" in w for w in rep.warnings)

    # A model biased towards "blurred" everywhere but ranking correctly must not trigger the
    # warning on the right polarity: the check is threshold-free.
    def biased(rgb):
        return 0.9 + 0.05 * oracle(rgb)

    rep = check_dataset(right, predict=biased, model_name="biased")
    assert rep.model_auc == 1.0 and not rep.warnings
    assert not check_dataset(wrong).warnings  # without a model nothing is guessed

    # A weak model, slightly inverted on every photo (AUC 0.4: 40 % of the blurred pixels above every
    # sharp one, the rest below): the dataset-level warning comes, but no photo is named, as `dbd eval`
    # (metrics.INVERTED_AUC) would not name it either.
    def weak(rgb):
        m = oracle(rgb).astype(bool)
        out = np.full(m.shape, 0.5, np.float32)
        idx = np.flatnonzero(m)
        out.flat[idx] = 0.0
        out.flat[idx[: round(0.4 * idx.size)]] = 1.0
        return out

    rep = check_dataset(right, predict=weak, model_name="weak")
    assert rep.model_auc == pytest.approx(0.4, abs=0.01) and rep.n_inverted_better == 0
    assert not rep.inverted_better and any("look inverted" in w for w in rep.warnings)


def _cli(argv):
    """Run `dbd dataset ...` through this module's parser with main()'s error handling."""
    parser = argparse.ArgumentParser(prog="dbd")
    cmd_dataset.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except DBDError as e:
        print(f"dbd dataset: error: {e}")
        return 1


def test_cli_import_convert_check(tmp_path, photos, capsys):
    imgs, gts = _layout(tmp_path, photos, "sharp-white")
    out = tmp_path / "ds.h5"
    assert _cli(["dataset", "import", "--images", str(imgs), "--gt", str(gts), "--gt-polarity", "sharp-white",
                 "--out", str(out), "--split", "test"]) == 0
    assert "imported 2 samples" in capsys.readouterr().out
    assert _cli(["dataset", "convert", str(out), str(tmp_path / "ds")]) == 0
    assert _cli(["dataset", "check", str(tmp_path / "ds")]) == 0
    text = capsys.readouterr().out
    assert "2 samples (2 labelled" in text and "splits: test 2" in text and "blurred pixels:" in text
    with pytest.raises(SystemExit):  # polarity is required
        _cli(["dataset", "import", "--images", str(imgs), "--gt", str(gts), "--out", str(tmp_path / "z")])
    data = out.read_bytes()
    out.write_bytes(data[:300])
    assert _cli(["dataset", "check", str(out)]) == 1
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"dbd dataset: error: {out}:") and "\n" not in line
