"""dbd_core.images.read_image / read_mask / write_map_png on real files of every supported kind."""

from __future__ import annotations

import os
import subprocess
import sys

import cv2
import numpy as np
import pytest
from PIL import Image

from dbd_core.errors import InputError
from dbd_core.images import expand_paths, png_truncation, read_image, read_mask, to_rgb8, write_map_png


@pytest.fixture
def rgb(rng):
    img = rng.integers(0, 256, (24, 36, 3), dtype=np.uint8)
    img[:8, :8] = (255, 0, 0)  # a red corner to check channel order and orientation
    return img


def test_8bit_rgb_png_keeps_rgb_order(tmp_path, rgb):
    Image.fromarray(rgb).save(tmp_path / "a.png")
    out = read_image(tmp_path / "a.png")
    assert out.dtype == np.uint8 and out.shape == (24, 36, 3)
    np.testing.assert_array_equal(out, rgb)


def test_16bit_png_is_scaled_not_clipped(tmp_path, rgb):
    img16 = rgb.astype(np.uint16) * 257
    cv2.imwrite(str(tmp_path / "b.png"), img16[..., ::-1])
    out = read_image(tmp_path / "b.png")
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, rgb)


def test_grayscale_becomes_three_equal_channels(tmp_path, rgb):
    Image.fromarray(rgb[..., 1]).save(tmp_path / "g.png")
    out = read_image(tmp_path / "g.png")
    assert out.shape == (24, 36, 3)
    for c in range(3):
        np.testing.assert_array_equal(out[..., c], rgb[..., 1])


def test_rgba_drops_alpha(tmp_path, rgb):
    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 77, np.uint8)])
    Image.fromarray(rgba, "RGBA").save(tmp_path / "c.png")
    np.testing.assert_array_equal(read_image(tmp_path / "c.png"), rgb)


def test_exif_orientation_6_is_applied(tmp_path):
    # Stored 40 wide x 20 high with a red top-left corner; orientation 6 = display rotated 90 deg
    # clockwise, so the photo reads 20 wide x 40 high with the red corner at the top RIGHT.
    stored = np.full((20, 40, 3), 40, np.uint8)
    stored[:6, :6] = (255, 0, 0)
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(stored).save(tmp_path / "rot.jpg", quality=95, exif=exif)
    out = read_image(tmp_path / "rot.jpg")
    assert out.shape == (40, 20, 3)
    top_right = out[:4, -4:].reshape(-1, 3).mean(0)
    top_left = out[:4, :4].reshape(-1, 3).mean(0)
    assert top_right[0] > 200 and top_right[1] < 60
    assert top_left[0] < 80


@pytest.mark.parametrize("name, content, reason", [
    ("corrupt.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "not a readable image"),
    ("empty.jpg", b"", "empty file"),
    ("notes.png", b"hello, I am text\n", "not a readable image"),
])
def test_bad_files_raise_one_line_input_error(tmp_path, name, content, reason):
    (tmp_path / name).write_bytes(content)
    with pytest.raises(InputError) as e:
        read_image(tmp_path / name)
    msg = str(e.value)
    assert name in msg and reason in msg and "\n" not in msg


def test_truncated_jpeg(tmp_path, rgb):
    Image.fromarray(rgb).save(tmp_path / "full.jpg")
    data = (tmp_path / "full.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[:40])
    with pytest.raises(InputError, match="cut.jpg"):
        read_image(tmp_path / "cut.jpg")


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(InputError, match="missing.png: no such file"):
        read_image(tmp_path / "missing.png")
    with pytest.raises(InputError, match="is a folder"):
        read_image(tmp_path)


def test_to_rgb8_arrays():
    f = np.linspace(0, 1, 12, dtype=np.float32).reshape(3, 4)
    assert to_rgb8(f).shape == (3, 4, 3)
    bgr = np.zeros((4, 4, 3), np.uint8)
    bgr[..., 0] = 200  # blue in BGR order
    assert (to_rgb8(bgr, "bgr")[..., 2] == 200).all()
    with pytest.raises(InputError, match="NaN"):
        to_rgb8(np.full((4, 4), np.inf))
    with pytest.raises(InputError, match="too small"):
        to_rgb8(np.zeros((1, 9), np.uint8))


def test_map_png_roundtrip_and_mask_polarity(tmp_path):
    m = np.zeros((10, 12), np.float32)
    m[:, 6:] = 1.0
    write_map_png(tmp_path / "map.png", m)
    stored = cv2.imread(str(tmp_path / "map.png"), cv2.IMREAD_UNCHANGED)
    assert stored.dtype == np.uint8 and stored.shape == (10, 12) and stored[0, 11] == 255 and stored[0, 0] == 0
    blur, was_binary = read_mask(tmp_path / "map.png", "blur-white")
    assert was_binary and np.array_equal(blur, m.astype(np.uint8))
    sharp, _ = read_mask(tmp_path / "map.png", "sharp-white")
    assert np.array_equal(sharp, 1 - m.astype(np.uint8))
    assert not list(tmp_path.glob(".*tmp*"))  # the atomic write left no temp file


def test_expand_paths_sorts_images_and_keeps_missing(tmp_path, rgb):
    for n in ("b.png", "a.jpg", "notes.txt", ".hidden.png"):
        (tmp_path / n).write_bytes(b"x")
    out = expand_paths([tmp_path, tmp_path / "gone.png"])
    assert [p.name for p in out] == ["a.jpg", "b.png", "gone.png"]


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_a_0_1_mask_is_read_as_such_never_thresholded_to_empty(tmp_path, dtype):
    m01 = np.zeros((10, 12), dtype)
    m01[:, 4:] = 1  # a mask stored as 0/1 instead of 0/255
    cv2.imwrite(str(tmp_path / "m.png"), m01)
    blur, was_binary = read_mask(tmp_path / "m.png", "blur-white")
    assert was_binary  # binary: no "grey levels" notice
    np.testing.assert_array_equal(blur, m01.astype(np.uint8))
    sharp, _ = read_mask(tmp_path / "m.png", "sharp-white")  # 1 is white: in focus for sharp-white
    np.testing.assert_array_equal(sharp, 1 - m01.astype(np.uint8))


def test_grey_masks_are_still_thresholded_and_flagged(tmp_path):
    m = np.zeros((6, 6), np.uint8)
    m[:, 3:] = 255
    m[0, 0], m[0, 1] = 1, 200  # a 1 among grey levels is not a 0/1 mask
    cv2.imwrite(str(tmp_path / "g.png"), m)
    blur, was_binary = read_mask(tmp_path / "g.png", "blur-white")
    assert not was_binary and blur[0, 0] == 0 and blur[0, 1] == 1 and blur[:, 3:].all()
    cv2.imwrite(str(tmp_path / "z.png"), np.zeros((6, 6), np.uint8))  # all sharp is all sharp
    assert read_mask(tmp_path / "z.png", "blur-white")[0].sum() == 0


def test_expand_paths_names_links_to_nowhere_and_empty_folders(tmp_path, rgb):
    d = tmp_path / "photos"
    (d / "sub").mkdir(parents=True)
    Image.fromarray(rgb).save(d / "good.png")
    Image.fromarray(rgb).save(d / "sub" / "deep.png")
    (d / "dangling.jpg").symlink_to(d / "nowhere.jpg")
    (d / "loopA.jpg").symlink_to("loopB.jpg")
    (d / "loopB.jpg").symlink_to("loopA.jpg")
    (tmp_path / "dir.jpg").mkdir()  # a folder given by name, with no photos
    problems = []
    out = expand_paths([d, tmp_path / "dir.jpg"], recursive=True, problems=problems)
    assert [p.name for p in out] == ["good.png", "deep.png"]
    reasons = {p.name: r for p, r in problems}
    assert reasons["dangling.jpg"] == "cannot read (No such file or directory)"
    assert reasons["loopA.jpg"].startswith("cannot read (Too many levels of symbolic links")
    assert "loopB.jpg" in reasons
    assert reasons["dir.jpg"] == "is a folder with no photos"
    assert len(problems) == 4
    assert [p.name for p in expand_paths([d])] == ["good.png"]  # without a list: passed over, as before


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads mode-000 folders (see test_cli_os_errors)")
def test_expand_paths_names_an_unreadable_folder(tmp_path, rgb):
    d = tmp_path / "locked"
    d.mkdir()
    Image.fromarray(rgb).save(d / "a.png")
    d.chmod(0)
    try:
        problems = []
        assert expand_paths([d], problems=problems) == []
        assert problems == [(d, "cannot read (Permission denied)")]
        with pytest.raises(InputError, match="locked: cannot read"):
            expand_paths([d])
    finally:
        d.chmod(0o755)


def test_truncated_png_is_one_line_and_libpng_stays_quiet(tmp_path, rgb):
    Image.fromarray(rgb).save(tmp_path / "full.png")
    data = (tmp_path / "full.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    (tmp_path / "noend.png").write_bytes(data[:-12])  # every chunk whole, but IEND missing
    for name, where in (("cut.png", "inside its 'IDAT' chunk"), ("noend.png", "before its IEND chunk")):
        with pytest.raises(InputError, match=f"{name}: not a readable image \\(truncated PNG: the file ends {where}"):
            read_image(tmp_path / name)
    assert png_truncation(np.frombuffer(data, np.uint8)) is None
    assert png_truncation(np.frombuffer(data + b"trailing", np.uint8)) is None  # bytes after IEND: fine
    assert png_truncation(np.frombuffer(b"\xff\xd8\xff\xe0 a jpeg", np.uint8)) is None  # not PNG: not judged
    # libpng prints "libpng error: PNG input buffer is incomplete" on its own stderr: it must not be reached
    code = ("import sys; from dbd_core.images import read_image\n"
            "try: read_image(sys.argv[1])\nexcept Exception as e: print(e, file=sys.stderr)")
    r = subprocess.run([sys.executable, "-c", code, str(tmp_path / "cut.png")], capture_output=True, text=True,
                       timeout=120)
    assert r.stderr.strip().splitlines() == [f"{tmp_path / 'cut.png'}: not a readable image (truncated PNG: "
                                             f"the file ends inside its 'IDAT' chunk)"], r.stderr
