"""Layered defocus compositing: the physics of the renderer.

Layers are given back to front; each has an alpha (HxW in [0,1], layer 0 covers the frame), a CoC
radius (a number, or an HxW map for a depth ramp) and a disk/Gaussian mix. For each layer:
- its colour is a *normalised masked blur* of the photo pixels it owns (blur(img*o)/blur(o)), so a
  blurred background never absorbs the colours of the sharp object in front of it; where it owns
  nothing nearby (hidden behind an object) the colour is filled from a coarse pull-push pyramid;
- its alpha is blurred with the same kernel, so a blurred foreground's edge spreads over what is
  behind it (the see-through rim of real defocused objects).
Layers are then composited with "over" in depth order.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from dbd_core.data.kernels import convolve, defocus_kernel, level_weights, quantised_radii

# Normalised-blur weight below which a pixel's own estimate is unreliable and the fill takes over.
_MIN_WEIGHT = 0.03


@dataclass
class Layer:
    alpha: np.ndarray             # HxW float32 in [0,1]
    radius: float | np.ndarray    # CoC radius in px (scalar, or HxW map)
    gauss_mix: float = 0.0


def _fill(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """Smooth colour everywhere from sparse weighted samples (pull-push at 1/4 resolution)."""
    h, w = den.shape
    small = (max(1, w // 4), max(1, h // 4))
    n = cv2.resize(num, small, interpolation=cv2.INTER_AREA)
    d = cv2.resize(den, small, interpolation=cv2.INTER_AREA)
    total = float(d.sum())
    mean = n.reshape(-1, 3).sum(0) / total if total > 1e-6 else np.full(3, 0.5, np.float32)
    out = np.broadcast_to(mean.astype(np.float32), n.shape).copy()
    for sigma in (16.0, 6.0, 2.0):  # coarse to fine: finer scales overwrite where they have support
        ns = cv2.GaussianBlur(n, (0, 0), sigma)
        ds = cv2.GaussianBlur(d, (0, 0), sigma)
        wgt = np.clip(ds / 0.05, 0.0, 1.0)[..., None]
        out = wgt * (ns / np.maximum(ds, 1e-6)[..., None]) + (1.0 - wgt) * out
    return cv2.resize(out, (w, h), interpolation=cv2.INTER_LINEAR)


# Radii above this are blurred at a reduced resolution (scaled so the reduced radius equals it):
# a wide disk only keeps low frequencies, so the result is the same to the eye at a fraction of the cost.
_FULL_RES_RADIUS = 2.5


def _blur_layer(img: np.ndarray, own: np.ndarray, alpha: np.ndarray | None, radius: float, mix: float,
                fill: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
    """(colour, blurred alpha) of one layer at a constant radius. alpha None = a full back layer."""
    h, w = own.shape
    if radius < 0.25:  # in focus: the layer's own pixels, the fill where it owns nothing
        colour = img
        if fill is not None:
            wgt = np.clip(own / _MIN_WEIGHT, 0.0, 1.0)[..., None]
            colour = wgt * img + (1.0 - wgt) * fill
        return colour, alpha
    # OpenCV resizes at most 4 channels at once: premultiplied colour and (own, alpha) go separately.
    parts = [img * own[..., None], own if alpha is None else np.dstack([own, alpha])]
    f = radius / _FULL_RES_RADIUS if radius > _FULL_RES_RADIUS * 1.2 else 1.0
    if f > 1.0:
        small = (max(2, round(w / f)), max(2, round(h / f)))
        parts = [cv2.resize(p, small, interpolation=cv2.INTER_AREA) for p in parts]
        radius = radius * small[0] / w
    k = defocus_kernel(radius, mix)
    parts = [convolve(p, k) for p in parts]
    if f > 1.0:
        parts = [cv2.resize(p, (w, h), interpolation=cv2.INTER_LINEAR) for p in parts]
    b = np.dstack(parts)
    num, den = b[..., :3], b[..., 3]
    colour = num / np.maximum(den, 1e-6)[..., None]
    if fill is not None:
        wgt = np.clip(den / _MIN_WEIGHT, 0.0, 1.0)[..., None]
        colour = wgt * colour + (1.0 - wgt) * fill
    a = np.clip(b[..., 4], 0.0, 1.0) if alpha is not None else None
    return colour, a


def composite(img: np.ndarray, layers: list[Layer], max_levels_ratio: float = 1.4,
              ) -> tuple[np.ndarray, np.ndarray]:
    """Render defocus. img: HxWx3 float32 [0,1] sharp photo. Returns (rendered HxWx3 float32,
    visible CoC radius map HxW float32: the radius of the front-most layer whose blurred alpha is
    >= 0.5 at each pixel, i.e. the layer that dominates what the pixel shows)."""
    h, w = img.shape[:2]
    alphas = [np.ones((h, w), np.float32)] + [ly.alpha.astype(np.float32) for ly in layers[1:]]
    # What each layer owns in the sharp photo: its alpha minus everything in front of it.
    owns = []
    front = np.ones((h, w), np.float32)
    for a in reversed(alphas):
        owns.append(a * front)
        front = front * (1.0 - a)
    owns.reverse()

    out = None
    coc = np.zeros((h, w), np.float32)
    for li_, (ly, a, own) in enumerate(zip(layers, alphas, owns)):
        a = None if li_ == 0 else a  # the back layer covers the frame: its alpha stays 1
        need_fill = float(own.min()) < 0.5
        fill = _fill(img * own[..., None], own) if need_fill else None
        if np.isscalar(ly.radius) or np.ndim(ly.radius) == 0:
            colour, ab = _blur_layer(img, own, a, float(ly.radius), ly.gauss_mix, fill)
            rmap = np.full((h, w), float(ly.radius), np.float32)
        else:
            # Spatially varying blur: blend copies blurred at quantised radii, per pixel.
            rmap = np.asarray(ly.radius, np.float32)
            levels = quantised_radii(float(rmap.max()) + 1e-3, max_levels_ratio)
            colour = np.zeros_like(img)
            ab = None if a is None else np.zeros((h, w), np.float32)
            for li, wgt in level_weights(rmap, levels):
                c, al = _blur_layer(img, own, a, levels[li], ly.gauss_mix, fill)
                colour += wgt[..., None] * c
                if ab is not None:
                    ab += wgt * al
        if out is None:
            out = colour  # the back layer covers the frame
            coc = rmap.copy()
        else:
            out = ab[..., None] * colour + (1.0 - ab[..., None]) * out
            coc = np.where(ab >= 0.5, rmap, coc)
    return np.clip(out, 0.0, 1.0).astype(np.float32), coc
