"""Blur sensitivity: how a model's map responds to a known, uniform defocus radius.

The benchmark's metrics mix many things (scene layout, textureless regions, edges). This protocol
isolates one: every photo is blurred as a whole by a defocus kernel of radius r (px at the model's
working size, the unit of ``SynthConfig.coc_threshold``) and the model's map is averaged. An ideal
detector is a step at the label threshold (1.5 px): 0 below, 1 above. The curve says where a model
really draws the line (its "detection radius", where the mean crosses 0.5) and how much it calls
blurred on sharp photos (r = 0: its false-positive level, which also counts any natural defocus
the photos already have).

Photos are taken at the working size first (centre square crop, area-resized), then blurred, then
JPEG-coded as a camera would: the blur is in pixels of what the network sees.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import cv2
import numpy as np

from dbd_core.data.kernels import convolve, defocus_kernel

DEFAULT_RADII = (0.0, 0.6, 1.0, 1.3, 1.5, 1.7, 2.0, 2.5, 3.0, 4.0, 6.0)
# Maps near the border see reflected padding of the blur; the protocol scores the inside.
BORDER = 16


@dataclass
class SensitivityCurve:
    radii: list[float]
    mean: list[float]           # mean P(blurred) over photos (interior pixels)
    blurred_share: list[float]  # mean share of interior pixels with P >= 0.5
    n_photos: int
    size: int
    gauss_mix: float
    jpeg_quality: int
    per_photo: list[list[float]] = field(default_factory=list)  # radius-major, mean P per photo

    def detection_radius(self) -> float | None:
        """The radius where the mean map crosses 0.5 (linear between measured radii); None if never."""
        r, m = np.asarray(self.radii, float), np.asarray(self.mean, float)
        if m[0] >= 0.5:
            return float(r[0])
        above = np.nonzero(m >= 0.5)[0]
        if above.size == 0:
            return None
        i = int(above[0])
        return float(r[i - 1] + (0.5 - m[i - 1]) * (r[i] - r[i - 1]) / (m[i] - m[i - 1]))

    def to_dict(self) -> dict:
        return {"radii": self.radii, "mean": self.mean, "blurred_share": self.blurred_share,
                "n_photos": self.n_photos, "size": self.size, "gauss_mix": self.gauss_mix,
                "jpeg_quality": self.jpeg_quality, "detection_radius": self.detection_radius(),
                "protocol": "whole photo blurred by a disk/Gaussian defocus kernel of radius r px at the "
                            "working size, JPEG-coded; mean P(blurred) and share >= 0.5 over interior pixels"}


def working_square(rgb: np.ndarray, size: int) -> np.ndarray:
    """Centre square crop of an RGB uint8 photo, area-resized to ``size`` px."""
    h, w = rgb.shape[:2]
    c = min(h, w)
    y0, x0 = (h - c) // 2, (w - c) // 2
    return cv2.resize(rgb[y0:y0 + c, x0:x0 + c], (size, size), interpolation=cv2.INTER_AREA)


def blur_uniform(rgb: np.ndarray, radius: float, gauss_mix: float = 0.2, jpeg_quality: int = 85) -> np.ndarray:
    """The whole photo defocused by ``radius`` px, then JPEG-coded (quality 0 = not coded)."""
    img = convolve(rgb.astype(np.float32) / 255.0, defocus_kernel(radius, gauss_mix))
    out = np.clip(np.rint(img * 255.0), 0, 255).astype(np.uint8)
    if jpeg_quality:
        ok, buf = cv2.imencode(".jpg", out[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)])
        if ok:
            out = np.ascontiguousarray(cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1])
    return out


def sensitivity_curve(predict_small: Callable[[np.ndarray], np.ndarray], photos: Iterable[np.ndarray],
                      radii: Iterable[float] = DEFAULT_RADII, size: int = 320, gauss_mix: float = 0.2,
                      jpeg_quality: int = 85) -> SensitivityCurve:
    """``predict_small``: RGB uint8 at the working size -> map (1 = blurred) of the same size, e.g. a
    Predictor's ``predict`` (full-size map) or, for a network at its working size, ``predict_small``.
    ``photos``: sharp RGB uint8 photos of any size."""
    radii = [float(r) for r in radii]
    squares = [working_square(p, size) for p in photos]
    if not squares:
        raise ValueError("no photos")
    per_photo, share = [], []
    for r in radii:
        means, shares = [], []
        for sq in squares:
            m = np.asarray(predict_small(blur_uniform(sq, r, gauss_mix, jpeg_quality)), np.float32)
            if m.shape != sq.shape[:2]:
                raise ValueError(f"map shape {m.shape} != photo shape {sq.shape[:2]}")
            inner = m[BORDER:-BORDER, BORDER:-BORDER] if min(m.shape) > 4 * BORDER else m
            means.append(float(inner.mean()))
            shares.append(float((inner >= 0.5).mean()))
        per_photo.append(means)
        share.append(float(np.mean(shares)))
    return SensitivityCurve(radii=radii, mean=[float(np.mean(v)) for v in per_photo], blurred_share=share,
                            n_photos=len(squares), size=size, gauss_mix=gauss_mix, jpeg_quality=jpeg_quality,
                            per_photo=per_photo)
