"""Image dimensions from a file's header, without decoding it.

Why: a 20000x20000 photo is refused by its size, but OpenCV decodes all 1.2 GB of it first (13 s, 2.6 GB
peak measured), and past its own 2^30-pixel limit it raises instead of returning None. Reading the size
from the header refuses such a file in microseconds. Formats covered: PNG, JPEG, BMP, WebP; for any other
(TIFF, JPEG 2000, PPM) or a header that does not parse, the answer is None and the decoder decides.
"""

from __future__ import annotations

import struct

# JPEG start-of-frame markers (baseline, progressive, lossless, arithmetic...); C4, C8 and CC are not frames.
_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def header_size(data: bytes | memoryview) -> tuple[int, int] | None:
    """(width, height) stored in the header of an encoded image, or None when unknown."""
    b = bytes(data[:64]) if len(data) > 64 else bytes(data)
    try:
        if b.startswith(b"\x89PNG\r\n\x1a\n") and b[12:16] == b"IHDR":
            return struct.unpack(">II", b[16:24])
        if b.startswith(b"BM") and len(b) >= 26:
            (dib,) = struct.unpack("<I", b[14:18])
            if dib == 12:  # OS/2 BITMAPCOREHEADER: 16-bit sizes
                return struct.unpack("<HH", b[18:22])
            if dib < 40:
                return None
            w, h = struct.unpack("<ii", b[18:26])
            return abs(w), abs(h)
        if b.startswith(b"RIFF") and b[8:12] == b"WEBP":
            return _webp_size(b)
        if b.startswith(b"\xff\xd8"):
            return _jpeg_size(data)
    except (struct.error, IndexError):  # a header cut short: the decoder will say what is wrong
        return None
    return None


def _webp_size(b: bytes) -> tuple[int, int] | None:
    chunk = b[12:16]
    if chunk == b"VP8X":
        w = int.from_bytes(b[24:27], "little") + 1
        h = int.from_bytes(b[27:30], "little") + 1
        return w, h
    if chunk == b"VP8L" and b[20] == 0x2F:
        bits = int.from_bytes(b[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8 " and b[23:26] == b"\x9d\x01\x2a":
        w, h = struct.unpack("<HH", b[26:30])
        return w & 0x3FFF, h & 0x3FFF
    return None


def _jpeg_size(data: bytes | memoryview) -> tuple[int, int] | None:
    """Walk the marker segments up to the first start-of-frame (EXIF thumbnails sit inside APP1, skipped whole)."""
    n = len(data)
    i = 2
    while i + 4 <= n:
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0x01, 0xD8) or 0xD0 <= marker <= 0xD7:  # segments without a length
            i += 2
            continue
        if marker in (0xD9, 0xDA):  # end of image, start of scan: no frame header before it
            return None
        (length,) = struct.unpack(">H", bytes(data[i + 2:i + 4]))
        if marker in _JPEG_SOF:
            if i + 9 > n:
                return None
            h, w = struct.unpack(">HH", bytes(data[i + 5:i + 9]))
            return w, h
        i += 2 + length
    return None
