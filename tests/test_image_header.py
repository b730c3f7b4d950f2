"""Header-only image sizes, and the refusals they make possible before any decoding."""

from __future__ import annotations

import struct
import zlib

import cv2
import numpy as np
import pytest
from PIL import Image

from dbd_core import images
from dbd_core.errors import InputError
from dbd_core.image_header import header_size
from dbd_core.images import read_image


@pytest.fixture
def photo(rng):
    return rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)


@pytest.mark.parametrize("ext, params", [
    (".png", []), (".jpg", [cv2.IMWRITE_JPEG_QUALITY, 90]), (".jpg", [cv2.IMWRITE_JPEG_PROGRESSIVE, 1]),
    (".bmp", []), (".webp", [cv2.IMWRITE_WEBP_QUALITY, 80]), (".webp", [cv2.IMWRITE_WEBP_QUALITY, 101]),
])
def test_header_size_matches_the_decoded_size(photo, ext, params):
    ok, buf = cv2.imencode(ext, photo, params)
    assert ok
    assert header_size(buf.tobytes()) == (53, 37)


def test_jpeg_with_exif_and_thumbnail_reads_the_frame_not_the_thumbnail(tmp_path, photo):
    im = Image.fromarray(photo)
    exif = im.getexif()
    exif[0x0112] = 6  # orientation: the header keeps the stored (unrotated) size
    im.save(tmp_path / "e.jpg", exif=exif.tobytes())
    assert header_size((tmp_path / "e.jpg").read_bytes()) == (53, 37)


def test_unknown_or_cut_headers_give_none():
    assert header_size(b"") is None
    assert header_size(b"hello, I am text") is None
    assert header_size(b"\xff\xd8\xff\xe0\x00") is None  # JPEG cut inside its first segment
    assert header_size(b"II*\x00" + b"\x00" * 60) is None  # TIFF: left to the decoder
    assert header_size(b"RIFF\x00\x00\x00\x00WEBPVP8L") is None  # WebP cut inside its chunk header
    assert header_size(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00") is None  # PNG cut inside IHDR


def _png_header_only(width: int, height: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(ihdr)) + chunk + struct.pack(">I", zlib.crc32(chunk))


def test_a_huge_photo_is_refused_from_its_header_without_decoding(tmp_path, monkeypatch):
    (tmp_path / "huge.png").write_bytes(_png_header_only(40000, 30000))

    def no_decode(*a, **k):
        raise AssertionError("decoded a file its header already refuses")

    monkeypatch.setattr(images.cv2, "imdecode", no_decode)
    with pytest.raises(InputError) as e:
        read_image(tmp_path / "huge.png")
    msg = str(e.value)
    assert "huge.png" in msg and "image too large (40000x30000 > 200 MP limit)" in msg and "\n" not in msg


def test_a_decoder_exception_becomes_a_one_line_error(tmp_path, photo, monkeypatch):
    cv2.imwrite(str(tmp_path / "p.png"), photo)

    def raising(*a, **k):
        raise cv2.error("OpenCV(5.1.0) loadsave.cpp:80: error: (-215:Assertion failed) "
                        "pixels <= CV_IO_MAX_IMAGE_PIXELS in function 'validateInputImageSize'\n")

    monkeypatch.setattr(images.cv2, "imdecode", raising)
    with pytest.raises(InputError) as e:
        read_image(tmp_path / "p.png")
    msg = str(e.value)
    assert "p.png" in msg and "too large for the decoder" in msg and "\n" not in msg


def test_os2_bmp_sizes_are_16_bit():
    header = b"BM" + b"\0" * 12 + struct.pack("<I", 12) + struct.pack("<HH", 100, 80) + b"\0" * 10
    assert header_size(header) == (100, 80)  # not read as two 32-bit fields (6553700 x ...)
    assert header_size(b"BM" + b"\0" * 12 + struct.pack("<I", 20) + b"\0" * 20) is None  # unknown header: decoder


def test_dataset_bytes_get_the_same_refusals_as_files():
    from dbd_core.data.formats import decode_image_bytes

    with pytest.raises(InputError) as e:
        decode_image_bytes(_png_header_only(40000, 30000), "big.png")
    assert "big.png" in str(e.value) and "image too large" in str(e.value) and "\n" not in str(e.value)
    assert images._decoder_refusal("OpenCV(5.1.0) x.cpp:1: error: ") == "not a readable image"  # nothing after it
