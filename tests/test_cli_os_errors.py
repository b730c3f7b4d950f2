"""Every dbd command: an OS error is one line naming the path (never a traceback), a per-file failure skips
that file and the batch goes on, and an output that cannot be written is refused before the long work."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import cv2
import numpy as np
import pytest

from dbd_core.cli import main as cli
from dbd_core.cli.main import main


@pytest.fixture
def photos(tmp_path, chelsea):
    d = tmp_path / "photos"
    d.mkdir()
    for name in ("good.png", "good2.jpg"):
        cv2.imwrite(str(d / name), np.ascontiguousarray(chelsea[:48, :64, ::-1]))
    return d


@pytest.fixture
def outfile(tmp_path):
    f = tmp_path / "outfile"
    f.write_text("")
    return f


def _run(capsys, *argv):
    code = main([*map(str, argv)])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


# ---------------------------------------------------------------- predict

def test_predict_out_under_a_file_is_one_line_before_any_photo(photos, outfile, capsys):
    code, out, err = _run(capsys, "predict", photos, "--model", "lbp", "--out", outfile / "sub")
    assert code == 1
    assert err.strip() == f"dbd predict: error: {outfile / 'sub'}: cannot write (Not a directory)"


def test_predict_target_that_is_a_folder_is_skipped_and_the_batch_goes_on(photos, tmp_path, capsys):
    out_dir = tmp_path / "maps"
    (out_dir / "good.png").mkdir(parents=True)
    code, out, err = _run(capsys, "predict", photos, "--model", "lbp", "--out", out_dir, "--overwrite")
    assert code == 1
    assert [ln for ln in err.splitlines() if "good.png" in ln and "->" not in ln] == [
        f"{out_dir / 'good.png'}: cannot write (Is a directory)"]
    assert cv2.imread(str(out_dir / "good2.png")) is not None
    assert "1 map(s) written" in err and "1 failed" in err


def test_predict_a_write_failing_mid_batch_skips_that_file_only(photos, tmp_path, capsys, monkeypatch):
    from dbd_core.cli import cmd_predict

    real = cmd_predict._write

    def flaky(target, *a, **k):
        if target.name == "good.png":
            raise OSError(28, "No space left on device", str(target))
        return real(target, *a, **k)

    monkeypatch.setattr(cmd_predict, "_write", flaky)
    out_dir = tmp_path / "maps"
    code, out, err = _run(capsys, "predict", photos, "--model", "lbp", "--out", out_dir)
    assert code == 1
    assert f"{out_dir / 'good.png'}: cannot write (No space left on device)" in err.splitlines()
    assert (out_dir / "good2.png").is_file() and "1 map(s) written" in err


def test_predict_names_links_to_nowhere_and_an_empty_folder_and_goes_on(photos, tmp_path, capsys):
    (photos / "sub").mkdir()
    (photos / "sub" / "dangling.jpg").symlink_to(tmp_path / "nowhere.jpg")
    (photos / "loopA.jpg").symlink_to("loopB.jpg")
    (photos / "loopB.jpg").symlink_to("loopA.jpg")
    (tmp_path / "dir.jpg").mkdir()
    code, out, err = _run(capsys, "predict", tmp_path / "dir.jpg", photos, "--recursive", "--model", "lbp",
                          "--out", tmp_path / "maps", "--quiet")
    assert code == 1
    lines = err.splitlines()
    assert f"{tmp_path / 'dir.jpg'}: is a folder with no photos" in lines
    assert f"{photos / 'sub' / 'dangling.jpg'}: cannot read (No such file or directory)" in lines
    assert sum("loopA.jpg: cannot read (Too many levels of symbolic links" in ln for ln in lines) == 1
    assert "2 map(s) written" in err and "4 failed" in err


# ---------------------------------------------------------------- dataset, finetune, the last resort

@pytest.fixture
def layout(tmp_path, chelsea):
    """An image folder + a gt folder (blur-white), two samples, one of them with a 250-char name."""
    img, gt = tmp_path / "img", tmp_path / "gt"
    img.mkdir()
    gt.mkdir()
    mask = np.zeros((48, 64), np.uint8)
    mask[:, :20] = 255
    for stem in ("cat", "L" * 250):
        cv2.imwrite(str(img / f"{stem}.png"), np.ascontiguousarray(chelsea[:48, :64, ::-1]))
        cv2.imwrite(str(gt / f"{stem}.png"), mask)
    return img, gt


def test_dataset_import_and_convert_into_an_impossible_place_are_one_line(layout, outfile, tmp_path, capsys):
    img, gt = layout
    for dst in (outfile / "ds", outfile / "ds.h5"):
        code, out, err = _run(capsys, "dataset", "import", "--images", img, "--gt", gt,
                              "--gt-polarity", "blur-white", "--out", dst)
        assert code == 1 and err.strip() == f"dbd dataset: error: {dst}: cannot write (Not a directory)"
    code, out, err = _run(capsys, "dataset", "import", "--images", img, "--gt", gt, "--gt-polarity", "blur-white",
                          "--out", tmp_path / "ds")
    code, out, err = _run(capsys, "dataset", "convert", tmp_path / "ds", outfile / "ds.h5")
    assert code == 1 and err.strip() == f"dbd dataset: error: {outfile / 'ds.h5'}: cannot write (Not a directory)"


def test_dataset_import_names_the_file_of_a_bad_sample_name(layout, tmp_path, capsys):
    img, gt = layout
    code, out, err = _run(capsys, "dataset", "import", "--images", img, "--gt", gt, "--gt-polarity", "blur-white",
                          "--out", tmp_path / "ds")
    assert code == 1 and "imported 1 samples" in out
    bad = [ln for ln in err.splitlines() if "bad sample name" in ln]
    assert len(bad) == 1 and bad[0].startswith(f"error: {img / ('L' * 250 + '.png')}: bad sample name 'LLL")


def test_finetune_out_that_is_a_file_is_refused_before_training(tmp_path, outfile, capsys):
    (tmp_path / "data").mkdir()
    code, out, err = _run(capsys, "finetune", "--data", tmp_path / "data", "--out", outfile)
    assert code == 1 and err.strip() == f"dbd finetune: error: {outfile}: cannot write (Not a directory)"


def test_an_unexpected_os_error_is_one_line_not_a_traceback(monkeypatch, capsys):
    from dbd_core.cli import cmd_info

    def boom(args):
        raise PermissionError(13, "Permission denied", "/some/where/file.json")

    monkeypatch.setattr(cli, "COMMANDS", ["info"])
    real_add = cmd_info.add_parser

    def add_parser(sub):
        real_add(sub)
        sub.choices["info"].set_defaults(func=boom)

    monkeypatch.setattr(cmd_info, "add_parser", add_parser)
    code, out, err = _run(capsys, "info")
    assert code == 1 and err.strip() == "dbd info: error: /some/where/file.json: Permission denied"


# ---------------------------------------------------------------- permissions (root: capabilities dropped)

def _unprivileged() -> list[str] | None:
    """A command prefix under which file permissions bite, or None when none is available."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        return None
    probe = subprocess.run([setpriv, "--bounding-set", "-dac_override,-dac_read_search", "true"],
                           capture_output=True)
    return [setpriv, "--bounding-set", "-dac_override,-dac_read_search"] if probe.returncode == 0 else None


def _dbd(prefix, *argv):
    r = subprocess.run([*prefix, sys.executable, "-m", "dbd_core.cli.main", *map(str, argv)],
                       capture_output=True, text=True, timeout=300)
    assert "Traceback" not in r.stderr, r.stderr
    return r.returncode, r.stdout, r.stderr


def test_read_only_outputs_and_an_unreadable_input_folder(photos, tmp_path, chelsea):
    prefix = _unprivileged()
    if prefix is None:
        pytest.skip("running as root without setpriv: permissions cannot be made to bite")
    ro = tmp_path / "ro"
    ro.mkdir()
    locked = tmp_path / "locked"
    locked.mkdir()
    shutil.copy(photos / "good.png", locked / "a.png")
    gt = tmp_path / "gt"
    gt.mkdir()
    cv2.imwrite(str(gt / "good.png"), np.zeros((48, 64), np.uint8))
    ro.chmod(0o555)
    locked.chmod(0)
    try:
        code, out, err = _dbd(prefix, "predict", photos, "--model", "lbp", "--out", ro)
        assert code == 1 and err.strip() == f"dbd predict: error: {ro}: cannot write (Permission denied)"
        code, out, err = _dbd(prefix, "predict", locked, photos / "good.png", "--model", "lbp",
                              "--out", tmp_path / "maps")
        assert code == 1 and f"{locked}: cannot read (Permission denied)" in err.splitlines()
        assert (tmp_path / "maps" / "good.png").is_file()  # the rest went on
        code, out, err = _dbd(prefix, "eval", "--model", "lbp", "--images", photos, "--gt", gt,
                              "--gt-polarity", "blur-white", "--json", ro / "r.json")
        assert code == 1 and err.strip() == f"dbd eval: error: {ro / 'r.json'}: cannot write (Permission denied)"
        assert "images evaluated" not in out
    finally:
        ro.chmod(0o755)
        locked.chmod(0o755)
