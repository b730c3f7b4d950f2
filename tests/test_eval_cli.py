"""`dbd eval` end to end on small temporary data with hand-made maps whose scores are known exactly."""

import json

import cv2
import numpy as np
import pytest

from dbd_core.cli import main as cli

H, W = 12, 16
F_HALF = 1.3 * 0.5 / (0.3 * 0.5 + 1)  # precision 0.5, recall 1


@pytest.fixture
def dbd(monkeypatch, capsys):
    """Run `dbd eval ...` through the real entry point (its error handling included) -> (code, out, err).
    Only the eval subcommand is registered so the test does not depend on other commands' modules."""
    monkeypatch.setattr(cli, "COMMANDS", ["eval"])

    def run(*argv):
        code = cli.main(["eval", "--quiet", *map(str, argv)])
        out, err = capsys.readouterr()
        return code, out, err

    return run


def half_mask():
    m = np.zeros((H, W), np.uint8)
    m[:, : W // 2] = 1
    return m


def make_set(root, chelsea):
    """Photos a, b, c; blur-white and sharp-white masks; maps with known scores:
    a: map == mask (MAE 0, F 1, IoU 1); b: map all blurred on a half-blurred mask (MAE .5, F F_HALF, IoU .5);
    c: all-sharp mask, all-sharp map (MAE 0, F 1 and IoU 1 by the both-empty convention)."""
    dirs = {k: root / k for k in ("images", "gt_bw", "gt_sw", "pred")}
    for d in dirs.values():
        d.mkdir()
    masks = {"a": half_mask(), "b": half_mask(), "c": np.zeros((H, W), np.uint8)}
    maps = {"a": half_mask() * 255, "b": np.full((H, W), 255, np.uint8), "c": np.zeros((H, W), np.uint8)}
    for i, name in enumerate(masks):
        cv2.imwrite(str(dirs["images"] / f"{name}.jpg"), chelsea[i * 20: i * 20 + H, :W, ::-1].copy())
        cv2.imwrite(str(dirs["gt_bw"] / f"{name}.png"), masks[name] * 255)
        cv2.imwrite(str(dirs["gt_sw"] / f"{name}.bmp"), (1 - masks[name]) * 255)
        cv2.imwrite(str(dirs["pred"] / f"{name}.png"), maps[name].astype(np.uint8))
    return dirs


EXPECTED = {"n_images": 3, "mae": 0.5 / 3, "f_beta": (2 + F_HALF) / 3, "iou": 2.5 / 3}


@pytest.mark.parametrize("polarity, gt_key", [("blur-white", "gt_bw"), ("sharp-white", "gt_sw")])
def test_pred_dir_exact_scores_both_polarities(tmp_path, chelsea, dbd, polarity, gt_key):
    d = make_set(tmp_path, chelsea)
    out_json = tmp_path / "r.json"
    code, out, err = dbd("--pred", d["pred"], "--images", d["images"], "--gt", d[gt_key],
                         "--gt-polarity", polarity, "--json", out_json)
    assert code == 0, err
    r = json.loads(out_json.read_text())
    for k, v in EXPECTED.items():
        assert r[k] == pytest.approx(v), k
    assert r["gt_polarity"] == polarity and r["ms_per_image"] is None
    assert "D-DFFNet" in r["protocols"]["f_beta"] and "f_beta" in out and "D-DFFNet" in out
    assert [p["name"] for p in r["per_image"]] == ["a", "b", "c"]


def test_wrong_polarity_changes_the_scores(tmp_path, chelsea, dbd):
    d = make_set(tmp_path, chelsea)
    code, out, err = dbd("--pred", d["pred"], "--gt", d["gt_bw"], "--gt-polarity", "sharp-white",
                         "--json", tmp_path / "r.json")
    r = json.loads((tmp_path / "r.json").read_text())
    assert code == 0 and r["mae"] == pytest.approx(1 - 0.5 / 3)  # every pixel is now wrong except b's half
    # a (map == mask) ranks inverted now and is named; b (map uniform: AUC 0.5) and c (one class) are not
    assert [p["auc"] for p in r["per_image"]][:2] == [pytest.approx(0.0), pytest.approx(0.5)]
    assert r["per_image"][2]["auc"] is None  # one-class mask: undefined, null in JSON
    note = [line for line in out.splitlines() if "agree far better with the map inverted" in line]
    assert len(note) == 1 and note[0].endswith("polarity is the other one") and ": a;" in note[0]


def test_right_polarity_names_no_inverted_mask(tmp_path, chelsea, dbd):
    d = make_set(tmp_path, chelsea)
    code, out, err = dbd("--pred", d["pred"], "--gt", d["gt_bw"], "--gt-polarity", "blur-white")
    assert code == 0 and "inverted" not in out


def test_polarity_is_required(tmp_path, chelsea, dbd):
    d = make_set(tmp_path, chelsea)
    code, out, err = dbd("--pred", d["pred"], "--gt", d["gt_bw"])
    assert code == 1 and "--gt-polarity is required" in err and "Traceback" not in err


def test_missing_mask_and_corrupt_map_reported_by_name(tmp_path, chelsea, dbd):
    d = make_set(tmp_path, chelsea)
    cv2.imwrite(str(d["images"] / "d.jpg"), chelsea[:H, :W])  # a photo without mask
    (d["pred"] / "d.png").write_bytes(b"\x89PNG not really")
    (d["pred"] / "b.png").write_bytes(b"garbage, not a PNG")  # corrupt map of a matched pair
    grey = half_mask() * 255
    grey[0, 0] = 100  # resized masks have grey edges: thresholded and counted
    cv2.imwrite(str(d["gt_bw"] / "a.png"), grey)
    code, out, err = dbd("--pred", d["pred"], "--images", d["images"], "--gt", d["gt_bw"],
                         "--gt-polarity", "blur-white", "--json", tmp_path / "r.json")
    assert code == 1
    assert "d.jpg: no mask" in err and "d.png: no mask" in err
    assert "b.png: not a readable image" in err
    assert "Traceback" not in err
    r = json.loads((tmp_path / "r.json").read_text())
    assert r["n_images"] == 2  # a and c still scored
    assert r["mae"] == pytest.approx(1 / (2 * H * W))  # a's one grey pixel (100 < 128 -> sharp) costs 1 pixel
    assert r["nonbinary_masks"]["count"] == 1 and "1 mask(s) had grey levels (neither 0/255 nor 0/1)" in out
    assert any("b.png" in e for e in r["errors"])


def test_map_size_mismatch_names_the_map(tmp_path, chelsea, dbd):
    d = make_set(tmp_path, chelsea)
    cv2.imwrite(str(d["pred"] / "c.png"), np.zeros((H, W + 1), np.uint8))
    code, out, err = dbd("--pred", d["pred"], "--gt", d["gt_bw"], "--gt-polarity", "blur-white")
    assert code == 1 and f"c.png: map is {W + 1}x{H} but its mask c.png is {W}x{H}" in err


def test_curves_written(tmp_path, chelsea, dbd):
    d = make_set(tmp_path, chelsea)
    code, out, err = dbd("--pred", d["pred"], "--gt", d["gt_bw"], "--gt-polarity", "blur-white",
                         "--curves", tmp_path / "curves")
    assert code == 0, err
    for name in ("pr.png", "f_threshold.png", "roc.png"):
        img = cv2.imread(str(tmp_path / "curves" / name))
        assert img is not None and img.shape[0] > 100 and img.std() > 5, name
    assert not list((tmp_path / "curves").glob(".*tmp*"))  # atomic writes leave no temp files


def test_lbp_model_runs_and_writes_all_keys(tmp_path, chelsea, coffee, dbd):
    (tmp_path / "img").mkdir()
    (tmp_path / "gt").mkdir()
    for name, photo in (("cat", chelsea), ("cup", coffee)):
        small = cv2.resize(photo, (96, 64), interpolation=cv2.INTER_AREA)
        cv2.imwrite(str(tmp_path / "img" / f"{name}.png"), small[..., ::-1])
        m = np.zeros((64, 96), np.uint8)
        m[:, 48:] = 255
        cv2.imwrite(str(tmp_path / "gt" / f"{name}.png"), m)
    code, out, err = dbd("--model", "lbp", "--images", tmp_path / "img", "--gt", tmp_path / "gt",
                         "--gt-polarity", "blur-white", "--threads", 1, "--json", tmp_path / "r.json")
    assert code == 0, err
    r = json.loads((tmp_path / "r.json").read_text())
    for k in ("n_images", "mae", "f_beta", "f_adaptive", "max_f", "max_f_per_image", "auc_roc", "iou",
              "ms_per_image", "protocols", "model", "weights_sha256", "gt_polarity", "dataset"):
        assert k in r, k
    assert r["n_images"] == 2 and r["model"] == "lbp" and r["ms_per_image"] > 0
    assert 0 <= r["mae"] <= 1 and 0 <= r["auc_roc"] <= 1
    assert r["dataset"]["images"].endswith("img")


def test_dataset_input(tmp_path, chelsea, dbd):
    formats = pytest.importorskip("dbd_core.data.formats")
    pred = tmp_path / "pred"
    pred.mkdir()
    with formats.open_writer(tmp_path / "set.h5") as w:
        w.add("s1", chelsea[:H, :W].copy(), half_mask())
        w.add("s2", chelsea[H:2 * H, :W].copy(), None)  # unlabelled: skipped and counted
    cv2.imwrite(str(pred / "s1.png"), np.full((H, W), 255, np.uint8))
    code, out, err = dbd("--pred", pred, "--data", tmp_path / "set.h5", "--json", tmp_path / "r.json")
    assert code == 0, err
    r = json.loads((tmp_path / "r.json").read_text())
    assert r["n_images"] == 1 and r["f_beta"] == pytest.approx(F_HALF) and r["skipped_unlabelled"] == 1
    assert r["gt_polarity"] == "blur-white" and r["dataset"]["data"].endswith("set.h5")


def test_overlay_of_several_models(tmp_path, rng):
    """The benchmark report overlays several models' curves in one figure per kind."""
    from dbd_core.metrics import Evaluator
    from dbd_core.plots import curve_figure, save_curves

    gt = (rng.random((20, 20)) < 0.4).astype(np.uint8)
    curves = {}
    for name, noise in (("teacher", 0.2), ("student", 0.5), ("lbp", 0.9)):
        ev = Evaluator()
        ev.update(np.clip(gt * (1 - noise) + rng.random(gt.shape) * noise, 0, 1).astype(np.float32), gt)
        curves[name] = ev.curves()
    fig = curve_figure("roc", curves)
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert labels[0] == "chance" and [lb.split(" (")[0] for lb in labels[1:]] == ["teacher", "student", "lbp"]
    assert all("AUC" in lb for lb in labels[1:])
    paths = save_curves(curves, tmp_path / "bench", prefix="cuhk_")
    assert sorted(p.name for p in paths) == ["cuhk_f_threshold.png", "cuhk_pr.png", "cuhk_roc.png"]
    assert all(p.stat().st_size > 5000 for p in paths)


def one_cat_dataset(path, chelsea):
    """A dbd dataset of one 96x64 sample, "cat", whose left 40 columns are blurred."""
    formats = pytest.importorskip("dbd_core.data.formats")
    photo = cv2.resize(chelsea, (96, 64), interpolation=cv2.INTER_AREA)
    mask = np.zeros((64, 96), np.uint8)
    mask[:, :40] = 1
    with formats.open_writer(path) as w:
        w.add("cat", photo, mask)
    return path


def test_dataset_folder_with_model(tmp_path, chelsea, dbd):
    one_cat_dataset(tmp_path / "set", chelsea)
    code, out, err = dbd("--model", "lbp", "--data", tmp_path / "set", "--json", tmp_path / "r.json")
    assert code == 0, err
    r = json.loads((tmp_path / "r.json").read_text())
    assert r["n_images"] == 1 and r["model"] == "lbp" and r["per_image"][0]["name"] == "cat"
    assert r["per_image"][0]["blurred_fraction_gt"] == pytest.approx(40 / 96)
    assert f"data: {tmp_path / 'set'}; gt polarity blur-white" in out  # the path, not "data data <path>"


def test_tta_is_recorded_and_refused_for_saved_maps(tmp_path, chelsea, dbd):
    one_cat_dataset(tmp_path / "set", chelsea)
    code, out, err = dbd("--model", "lbp", "--tta", "hflip", "--data", tmp_path / "set", "--json", tmp_path / "r.json")
    assert code == 0, err
    assert json.loads((tmp_path / "r.json").read_text())["tta"] == "hflip"
    assert "model: lbp" in out and "test-time augmentation hflip" in out
    (tmp_path / "maps").mkdir()
    dirs = make_set(tmp_path / "maps", chelsea)
    code, out, err = dbd("--pred", dirs["pred"], "--gt", dirs["gt_bw"], "--gt-polarity", "blur-white",
                         "--tta", "hflip")
    assert code != 0 and "--tta" in err and "Traceback" not in err


def _scores_as_expected(dbd, d, tmp_path):
    """Score d's maps against its blur-white masks; the report must equal EXPECTED. Returns (report, stdout)."""
    code, out, err = dbd("--pred", d["pred"], "--gt", d["gt_bw"], "--gt-polarity", "blur-white",
                         "--json", tmp_path / "r.json")
    assert code == 0, err
    r = json.loads((tmp_path / "r.json").read_text())
    for k, v in EXPECTED.items():
        assert r[k] == pytest.approx(v), k
    return r, out


def test_npy_maps_as_dbd_predict_writes_them_are_scored(tmp_path, chelsea, dbd):
    d = make_set(tmp_path, chelsea)
    for name in ("a", "b", "c"):  # the same maps as the PNGs, as float32 [0,1] arrays
        png = d["pred"] / f"{name}.png"
        np.save(d["pred"] / f"{name}.npy", cv2.imread(str(png), cv2.IMREAD_GRAYSCALE).astype(np.float32) / 255)
        png.unlink()
    r, out = _scores_as_expected(dbd, d, tmp_path)


@pytest.mark.parametrize("array, reason", [
    (np.full((H, W), 0.5, np.float64) * 2.5, "map values span [1.25, 1.25]; a .npy map must be in [0,1]"),
    (np.zeros((H, W), np.uint8), "map is uint8; a .npy map must be float in [0,1]"),
    (np.zeros((H, W, 3), np.float32), f"map has shape ({H}, {W}, 3); a .npy map must be HxW"),
    (np.full((H, W), np.nan, np.float32), "map contains NaN or Inf"),
    (np.array([{"a": 1}], dtype=object), "not a readable .npy map"),
    (b"not an npy file at all", "not a readable .npy map"),
])
def test_bad_npy_maps_are_one_line_each_and_the_rest_is_scored(tmp_path, chelsea, dbd, array, reason):
    d = make_set(tmp_path, chelsea)
    (d["pred"] / "b.png").unlink()
    bad = d["pred"] / "b.npy"
    if isinstance(array, bytes):
        bad.write_bytes(array)
    else:
        np.save(bad, array, allow_pickle=True)
    code, out, err = dbd("--pred", d["pred"], "--gt", d["gt_bw"], "--gt-polarity", "blur-white")
    assert code == 1 and "Traceback" not in err
    lines = [ln for ln in err.splitlines() if "b.npy" in ln]
    assert len(lines) == 1 and f"b.npy: {reason}" in lines[0], err
    assert "2 images evaluated" in out


def test_0_1_masks_are_not_read_as_empty(tmp_path, chelsea, dbd):
    d = make_set(tmp_path, chelsea)
    for name in ("a", "b", "c"):  # the same masks stored 0/1
        m = cv2.imread(str(d["gt_bw"] / f"{name}.png"), cv2.IMREAD_GRAYSCALE)
        cv2.imwrite(str(d["gt_bw"] / f"{name}.png"), (m // 255).astype(np.uint8))
    r, out = _scores_as_expected(dbd, d, tmp_path)
    assert r["nonbinary_masks"]["count"] == 0 and "grey levels" not in out


@pytest.mark.parametrize("option", ["--json", "--curves"])
def test_an_output_that_cannot_be_written_is_refused_before_the_evaluation(tmp_path, chelsea, dbd, option):
    d = make_set(tmp_path, chelsea)
    (tmp_path / "outfile").write_text("")
    target = tmp_path / "outfile" / "r.json" if option == "--json" else tmp_path / "outfile"
    code, out, err = dbd("--pred", d["pred"], "--gt", d["gt_bw"], "--gt-polarity", "blur-white", option, target)
    assert code == 1 and "Traceback" not in err
    assert err.strip() == f"dbd eval: error: {target}: cannot write (Not a directory)"
    assert "images evaluated" not in out  # refused up front, not after the whole run


def test_limit_takes_the_first_samples_by_name_with_data(tmp_path, chelsea, dbd):
    formats = pytest.importorskip("dbd_core.data.formats")
    pred = tmp_path / "pred"
    pred.mkdir()
    with formats.open_writer(tmp_path / "set.h5") as w:
        for name in ("zeta", "alpha", "mid"):  # stored out of name order
            w.add(name, chelsea[:H, :W].copy(), half_mask())
            cv2.imwrite(str(pred / f"{name}.png"), half_mask() * 255)
    code, out, err = dbd("--pred", pred, "--data", tmp_path / "set.h5", "--limit", 2, "--json", tmp_path / "r.json")
    assert code == 0, err
    r = json.loads((tmp_path / "r.json").read_text())
    assert [p["name"] for p in r["per_image"]] == ["alpha", "mid"]


def test_data_folder_reports_grey_masks_as_the_gt_folder_path_does(tmp_path, chelsea, dbd):
    one_cat_dataset(tmp_path / "set", chelsea)
    gt = tmp_path / "set" / "gt" / "cat.png"
    m = cv2.imread(str(gt), cv2.IMREAD_GRAYSCALE)
    m[0, 0] = 100  # a grey edge put there by hand
    cv2.imwrite(str(gt), m)
    code, out, err = dbd("--model", "lbp", "--data", tmp_path / "set", "--json", tmp_path / "r.json")
    assert code == 0, err
    r = json.loads((tmp_path / "r.json").read_text())
    assert r["nonbinary_masks"]["count"] == 1 and "cat" in r["nonbinary_masks"]["files"][0]
    assert "1 mask(s) had grey levels" in out


def test_links_to_nowhere_in_a_mask_folder_are_named(tmp_path, chelsea, dbd):
    d = make_set(tmp_path, chelsea)
    (d["gt_bw"] / "gone.png").symlink_to(tmp_path / "nowhere.png")
    code, out, err = dbd("--pred", d["pred"], "--gt", d["gt_bw"], "--gt-polarity", "blur-white")
    assert code == 1 and "gone.png: cannot read (No such file or directory)" in err
    assert "3 images evaluated" in out
