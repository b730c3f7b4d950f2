"""`dbd predict` and `dbd info` end to end on temporary files."""

from __future__ import annotations

import shutil
import subprocess

import cv2
import numpy as np
import pytest
import torch

from dbd_core.cli.main import main
from dbd_core.images import write_png
from dbd_core.nets.registry import build_model
from dbd_core.weights import save_model


@pytest.fixture
def photos(tmp_path, rng):
    d = tmp_path / "photos"
    d.mkdir()
    write_png(d / "wide.png", rng.integers(0, 256, (30, 50, 3), dtype=np.uint8))
    write_png(d / "tall.jpg", rng.integers(0, 256, (44, 26, 3), dtype=np.uint8))
    (d / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x01" * 30)
    (d / "empty.jpg").write_bytes(b"")
    (d / "readme.png").write_text("not an image\n")
    return d


@pytest.fixture
def tiny_weights(tmp_path):
    torch.manual_seed(0)
    return save_model(tmp_path / "tiny.pt", build_model("tiny"), {"purpose": "test"})


BAD = ("corrupt.png", "empty.jpg", "readme.png")


def _check_outputs(out, capsys_err):
    wide = cv2.imread(str(out / "wide.png"), cv2.IMREAD_UNCHANGED)
    tall = cv2.imread(str(out / "tall.png"), cv2.IMREAD_UNCHANGED)
    assert wide.shape == (30, 50) and tall.shape == (44, 26) and wide.dtype == np.uint8
    for name in BAD:
        assert not (out / f"{name.rsplit('.', 1)[0]}.png").exists()
        lines = [ln for ln in capsys_err.splitlines() if name in ln]
        assert len(lines) == 1, (name, capsys_err)  # exactly one line per bad file
    assert "Traceback" not in capsys_err


def test_predict_weights_file_with_bad_files(photos, tmp_path, tiny_weights, capsys):
    out = tmp_path / "maps"
    code = main(["predict", str(photos), "--weights", str(tiny_weights), "--out", str(out), "--threads", "1"])
    err = capsys.readouterr().err
    assert code == 1
    _check_outputs(out, err)
    assert "2 map(s) written" in err and "3 failed" in err and " ms" in err


def test_predict_lbp_npy_and_overwrite(photos, tmp_path, capsys):
    out = tmp_path / "maps"
    good = [str(photos / "wide.png"), str(photos / "tall.jpg")]
    assert main(["predict", *good, "--model", "lbp", "--out", str(out), "--format", "npy"]) == 0
    m = np.load(out / "wide.npy")
    assert m.shape == (30, 50) and m.dtype == np.float32 and 0 <= m.min() and m.max() <= 1
    before = (out / "wide.npy").stat().st_mtime_ns
    capsys.readouterr()
    assert main(["predict", *good, "--model", "lbp", "--out", str(out), "--format", "npy"]) == 1
    assert "--overwrite" in capsys.readouterr().err
    assert (out / "wide.npy").stat().st_mtime_ns == before  # not silently replaced
    assert main(["predict", *good, "--model", "lbp", "--out", str(out), "--format", "npy", "--overwrite"]) == 0


def test_predict_hflip_tta_writes_the_mirror_averaged_map(photos, tmp_path, tiny_weights):
    from dbd_core.predict import load_predictor

    wide = photos / "wide.png"
    out = tmp_path / "maps"
    assert main(["predict", str(wide), "--weights", str(tiny_weights), "--out", str(out), "--format", "npy",
                 "--tta", "hflip"]) == 0
    expected = load_predictor(tiny_weights, threads=1, tta="hflip").predict(wide)
    np.testing.assert_allclose(np.load(out / "wide.npy"), expected, atol=1e-5)
    plain = load_predictor(tiny_weights, threads=1).predict(wide)
    assert not np.allclose(expected, plain, atol=1e-4)


def test_stem_collision_is_reported(tmp_path, rng, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    for d in (a, b):
        write_png(d / "same.png", rng.integers(0, 256, (20, 20, 3), dtype=np.uint8))
    write_png(a / "same.jpg", rng.integers(0, 256, (20, 20, 3), dtype=np.uint8))
    out = tmp_path / "maps"
    code = main(["predict", str(a), str(b / "same.png"), "--model", "lbp", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 1 and err.count("already used by") == 2
    assert (out / "same.png").exists()


def test_missing_shipped_weights_is_one_line_error(tmp_path, photos, monkeypatch, capsys):
    monkeypatch.setenv("DBD_RESOURCES", str(tmp_path / "no-resources"))
    code = main(["predict", str(photos / "wide.png"), "--model", "student", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip()
    assert code == 1 and "\n" not in err and "dbd train" in err
    assert not (tmp_path / "o" / "wide.png").exists()


def test_bad_weights_file_is_one_line_error(tmp_path, photos, capsys):
    (tmp_path / "junk.pt").write_bytes(b"junk")
    code = main(["predict", str(photos), "--weights", str(tmp_path / "junk.pt"), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip()
    assert code == 1 and "junk.pt" in err and "\n" not in err


@pytest.mark.parametrize("option, reason", [
    (["--work-size", "0"], "work size 0 px is outside 64-4096 px"),
    (["--work-size", "20000"], "work size 20000 px is outside 64-4096 px"),
    (["--device", "banana"], "unknown torch device 'banana'"),
    (["--device", "cuda:7"], "device 'cuda:7' is not available"),
])
def test_bad_options_are_named_before_any_photo_is_read(tmp_path, photos, tiny_weights, option, reason, capsys):
    if option[0] == "--device" and torch.cuda.device_count() > 7:
        pytest.skip("this machine has a cuda:7")
    code = main(["predict", str(photos), "--weights", str(tiny_weights), "--out", str(tmp_path / "o"), *option])
    err = capsys.readouterr().err.strip()
    assert code == 1 and reason in err and "\n" not in err
    assert str(tiny_weights) not in err  # the weights file is fine: the message must not blame it
    assert not (tmp_path / "o").exists()


def test_info_lists_models(tmp_path, tiny_weights, monkeypatch, capsys):
    monkeypatch.setenv("DBD_RESOURCES", str(tmp_path / "res"))
    save_model(tmp_path / "res" / "models" / "student.pt", build_model("tiny"), {"version": "t"})
    code = main(["info", "--no-flops", "--weights", str(tiny_weights)])
    out = capsys.readouterr().out
    assert code == 0
    assert "teacher" in out and "not installed" in out and "dbd train teacher" in out
    assert "student.pt" in out and "sha256:       ok" in out
    assert "lbp" in out and "tiny.pt" in out and "2,882" in out


def test_help_everywhere(capsys):
    for argv in (["--help"], ["predict", "--help"], ["info", "--help"]):
        with pytest.raises(SystemExit) as e:
            main(argv)
        assert e.value.code == 0
    assert "255 = blurred" in capsys.readouterr().out


@pytest.mark.skipif(shutil.which("dbd") is None, reason="dbd entry point not installed (pip install -e .)")
def test_installed_entry_point(photos, tmp_path, tiny_weights):
    out = tmp_path / "maps"
    r = subprocess.run(["dbd", "predict", str(photos), "--weights", str(tiny_weights), "--out", str(out),
                        "--threads", "1"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 1, r.stderr
    _check_outputs(out, r.stderr)


def test_summary_quotes_the_first_map_apart_and_names_no_folder_when_nothing_was_written(tmp_path, capsys):
    code = main(["predict", str(tmp_path / "missing.jpg"), "--model", "lbp", "--out", str(tmp_path / "never")])
    err = capsys.readouterr().err
    assert code == 1 and "missing.jpg: no such file" in err
    assert err.strip().splitlines()[-1] == "dbd predict: no map written (1 failed)" and not (tmp_path / "never").exists()
    from dbd_core.cli.cmd_predict import _summary

    line = _summary(3, 0, tmp_path, "student", [900.0, 80.0, 120.0])
    assert line.endswith("with student, 900 ms for the first image, then 100 ms median; 0 failed")


def test_mask_format_thresholds_the_map_it_would_write(photos, tmp_path, capsys):
    good = [str(photos / "wide.png"), str(photos / "tall.jpg")]
    assert main(["predict", *good, "--model", "lbp", "--out", str(tmp_path / "maps"), "--format", "npy"]) == 0
    assert main(["predict", *good, "--model", "lbp", "--out", str(tmp_path / "m"), "--format", "mask",
                 "--threshold", "0.4"]) == 0
    assert "2 mask(s) written" in capsys.readouterr().err
    for stem in ("wide", "tall"):
        blur_map = np.load(tmp_path / "maps" / f"{stem}.npy")
        mask = cv2.imread(str(tmp_path / "m" / f"{stem}.png"), cv2.IMREAD_UNCHANGED)
        assert mask.dtype == np.uint8 and mask.shape == blur_map.shape and set(np.unique(mask)) <= {0, 255}
        np.testing.assert_array_equal(mask == 255, blur_map >= 0.4)  # 255 = blurred, like the maps
    from dbd_core.annotate import otsu_threshold

    assert main(["predict", good[0], "--model", "lbp", "--out", str(tmp_path / "o"), "--format", "mask",
                 "--threshold", "otsu"]) == 0
    blur_map = np.load(tmp_path / "maps" / "wide.npy")
    mask = cv2.imread(str(tmp_path / "o" / "wide.png"), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(mask == 255, blur_map >= otsu_threshold(blur_map))


@pytest.mark.parametrize("argv, reason", [
    (["--threshold", "0.3"], "--threshold applies to --format mask"),
    (["--format", "mask", "--threshold", "1"], "--threshold 1 is outside (0, 1)"),
    (["--format", "mask", "--threshold", "half"], "--threshold must be a number in (0, 1) or otsu"),
])
def test_bad_thresholds_are_refused_in_one_line(photos, tmp_path, capsys, argv, reason):
    code = main(["predict", str(photos / "wide.png"), "--model", "lbp", "--out", str(tmp_path / "o"), *argv])
    err = capsys.readouterr().err.strip()
    assert code == 1 and reason in err and "\n" not in err and not (tmp_path / "o").exists()
