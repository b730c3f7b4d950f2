"""Defocus point-spread functions and (spatially varying) blur.

Thin-lens defocus is close to a uniform disk ("pillbox") whose radius is the circle of confusion
(CoC). Real lenses soften the rim (aberrations, diffraction), so a kernel is a mix of an
anti-aliased disk and a Gaussian of equal second moment. Every kernel sums to 1.
"""

from __future__ import annotations

import functools

import cv2
import numpy as np

# Radii below this are treated as "no blur": the kernel is a delta (a 0.25 px disk covers one pixel).
MIN_RADIUS = 0.25
# Sub-pixel samples per axis used to anti-alias the disk rim (coverage of each pixel by the disk).
_SUPERSAMPLE = 8
BORDER = cv2.BORDER_REFLECT_101


@functools.lru_cache(maxsize=256)
def _disk_cached(radius_q: float) -> np.ndarray:
    r = radius_q
    half = int(np.ceil(r - 0.5)) if r > 0.5 else 0
    n = 2 * half + 1
    # Fraction of each pixel's area inside the disk, by supersampling its footprint.
    s = (np.arange(_SUPERSAMPLE) + 0.5) / _SUPERSAMPLE - 0.5
    coords = np.arange(-half, half + 1, dtype=np.float64)
    fine = (coords[:, None] + s[None, :]).reshape(-1)
    yy, xx = np.meshgrid(fine, fine, indexing="ij")
    inside = (xx * xx + yy * yy <= r * r).astype(np.float64)
    cover = inside.reshape(n, _SUPERSAMPLE, n, _SUPERSAMPLE).mean(axis=(1, 3))
    cover[half, half] = max(cover[half, half], 1e-6)  # a tiny disk still covers its centre pixel
    k = (cover / cover.sum()).astype(np.float32)
    k.setflags(write=False)
    return k


def disk_kernel(radius: float) -> np.ndarray:
    """Anti-aliased pillbox of the given radius in pixels; odd square float32 array summing to 1."""
    if radius < MIN_RADIUS:
        return np.ones((1, 1), np.float32)
    return _disk_cached(round(float(radius), 3)).copy()


def gaussian_kernel(sigma: float, half: int) -> np.ndarray:
    ax = np.arange(-half, half + 1, dtype=np.float64)
    g = np.exp(-0.5 * (ax / max(sigma, 1e-3)) ** 2)
    k = np.outer(g, g)
    return (k / k.sum()).astype(np.float32)


def defocus_kernel(radius: float, gauss_mix: float = 0.0) -> np.ndarray:
    """(1 - gauss_mix) * disk(radius) + gauss_mix * Gaussian with the disk's variance (sigma = r/2)."""
    disk = disk_kernel(radius)
    if gauss_mix <= 0 or disk.shape[0] == 1:
        return disk
    half = disk.shape[0] // 2 + 1  # the Gaussian tail reaches a little beyond the rim
    g = gaussian_kernel(radius / 2.0, half)
    d = np.pad(disk, 1)
    k = (1.0 - gauss_mix) * d + gauss_mix * g
    return (k / k.sum()).astype(np.float32)


def convolve(img: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """float32 image (HxW or HxWxC) convolved with kernel; borders reflected (no dark rims).
    cv2.filter2D switches to a DFT for big kernels, which keeps large radii cheap."""
    if kernel.shape[0] == 1:
        return img.astype(np.float32, copy=True)
    return cv2.filter2D(img.astype(np.float32, copy=False), -1, kernel, borderType=BORDER)


def quantised_radii(r_max: float, step_ratio: float = 1.35, r0: float = 0.75) -> list[float]:
    """Levels 0, r0, r0*q, r0*q^2, ... up to r_max, for blending a stack of blurred copies.
    Geometric spacing: the eye (and a network) tells 1 px from 2 px apart better than 10 from 11."""
    levels = [0.0]
    r = r0
    while r < r_max:
        levels.append(r)
        r *= step_ratio
    levels.append(float(r_max))
    return levels


def level_weights(radius_map: np.ndarray, levels: list[float]) -> list[tuple[int, np.ndarray]]:
    """Per-pixel linear interpolation weights between the two levels bracketing each radius.
    Returns [(level index, HxW weight)] for levels that are used anywhere."""
    lv = np.asarray(levels, np.float32)
    r = np.clip(radius_map.astype(np.float32), lv[0], lv[-1])
    hi = np.clip(np.searchsorted(lv, r, side="left"), 1, len(lv) - 1)
    lo = hi - 1
    t = (r - lv[lo]) / np.maximum(lv[hi] - lv[lo], 1e-6)
    out = []
    for i in range(len(lv)):
        w = np.where(lo == i, 1.0 - t, 0.0) + np.where(hi == i, t, 0.0)
        if w.max() > 1e-4:
            out.append((i, w.astype(np.float32)))
    return out
