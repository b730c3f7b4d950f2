"""Edge-aware upsampling of low-resolution blur maps: the fast guided filter (He & Sun, 2015).

Networks see the photo at ~320 px; resizing their map back to 12-50 MP with bilinear interpolation
gives soft, misplaced boundaries. The guided filter models the output as locally linear in the photo
(q = A . I + b per window). He & Sun's trick: solve for (A, b) at low resolution, upsample only the
coefficients (smooth by construction), then apply q = A . I + b at full resolution so map edges land
on the photo's edges.

The full-resolution pass runs over row strips, so beyond the output map itself only one strip of
coefficients is in memory at a time (bounded for a 50 MP photo).
"""

from __future__ import annotations

import cv2
import numpy as np

DEFAULT_EPS = 1e-3  # guide in [0,1]: edges with contrast well above sqrt(eps) ~ 0.03 steer the map
STRIP_ROWS = 256


def _box(x: np.ndarray, r: int) -> np.ndarray:
    """Mean over a (2r+1)^2 window, edge-reflected (cv2 keeps it O(1) per pixel in r)."""
    return cv2.boxFilter(x, -1, (2 * r + 1, 2 * r + 1), normalize=True, borderType=cv2.BORDER_REFLECT)


def _as_guide(img: np.ndarray) -> np.ndarray:
    """uint8/uint16/float photo (HxW or HxWxC) -> float32 HxWxC in [0,1]."""
    img = np.asarray(img)
    if img.ndim == 2:
        img = img[..., None]
    if img.dtype == np.uint8:
        return img.astype(np.float32) * np.float32(1 / 255)
    if img.dtype == np.uint16:
        return img.astype(np.float32) * np.float32(1 / 65535)
    return img.astype(np.float32, copy=False)


def guided_coefficients(guide: np.ndarray, src: np.ndarray, radius: int, eps: float = DEFAULT_EPS
                        ) -> tuple[np.ndarray, np.ndarray]:
    """Window-averaged guided-filter coefficients: ``(A hxwxC, b hxw)`` with output ``sum_c A_c I_c + b``.

    ``guide`` is a gray or colour photo at the same size as ``src``. The colour version solves a 3x3
    system per pixel (He et al. 2013, eq. 14); it separates regions that differ only in hue.
    """
    I = _as_guide(guide)
    p = np.asarray(src, dtype=np.float32)
    if I.shape[:2] != p.shape[:2]:
        raise ValueError(f"guide {I.shape[:2]} and source {p.shape[:2]} differ in size")
    h, w, c = I.shape
    r = int(max(1, min(radius, (min(h, w) - 1) // 2 or 1)))
    mean_I = _box(I, r).reshape(h, w, c)
    mean_p = _box(p, r)
    cov_Ip = _box(I * p[..., None], r).reshape(h, w, c) - mean_I * mean_p[..., None]
    if c == 1:
        var_I = _box(I[..., 0] * I[..., 0], r) - mean_I[..., 0] ** 2
        A = (cov_Ip[..., 0] / (var_I + eps))[..., None]
    else:
        sigma = np.empty((h, w, c, c), np.float32)
        for i in range(c):
            for j in range(i, c):
                v = _box(I[..., i] * I[..., j], r) - mean_I[..., i] * mean_I[..., j]
                sigma[..., i, j] = v
                sigma[..., j, i] = v
        sigma += np.eye(c, dtype=np.float32) * np.float32(eps)
        A = np.linalg.solve(sigma, cov_Ip[..., None])[..., 0].astype(np.float32)
    b = mean_p - np.einsum("hwc,hwc->hw", A, mean_I)
    # Averaging the coefficients over windows (eq. 8) is what makes them smooth enough to upsample.
    A = _box(A, r).reshape(h, w, c)
    b = _box(b, r)
    return A.astype(np.float32), b.astype(np.float32)


def guided_filter(guide: np.ndarray, src: np.ndarray, radius: int, eps: float = DEFAULT_EPS) -> np.ndarray:
    """Plain (same-resolution) guided filter of ``src`` by ``guide``. Output float32, not clipped."""
    A, b = guided_coefficients(guide, src, radius, eps)
    return np.einsum("hwc,hwc->hw", A, _as_guide(guide)) + b


def _row_weights(H: int, h: int, y0: int, y1: int):
    """Source rows and weights for linear resizing h -> H rows (half-pixel centres, like cv2.resize)."""
    y = (np.arange(y0, y1, dtype=np.float64) + 0.5) * (h / H) - 0.5
    y = np.clip(y, 0, h - 1)
    i0 = np.floor(y).astype(np.int64)
    i1 = np.minimum(i0 + 1, h - 1)
    wy = (y - i0).astype(np.float32)[:, None]
    return i0, i1, wy


def _resize_rows(coef: np.ndarray, H: int, W: int, y0: int, y1: int) -> np.ndarray:
    """Rows y0:y1 of ``coef`` (h x w [x C]) bilinearly resized to H x W, without building the whole."""
    h = coef.shape[0]
    i0, i1, wy = _row_weights(H, h, y0, y1)
    if coef.ndim == 3:
        wy = wy[..., None]
    rows = coef[i0] * (1 - wy) + coef[i1] * wy  # vertical pass: (y1-y0) x w [x C]
    out = cv2.resize(np.ascontiguousarray(rows, np.float32), (W, y1 - y0), interpolation=cv2.INTER_LINEAR)
    if coef.ndim == 3 and out.ndim == 2:  # cv2 drops a singleton channel axis
        out = out[..., None]
    return out


def bilinear_upsample(src: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Plain bilinear resize of a map to ``size=(H, W)``, clipped to [0,1] (the baseline)."""
    H, W = size
    out = cv2.resize(np.asarray(src, np.float32), (W, H), interpolation=cv2.INTER_LINEAR)
    return np.clip(out, 0.0, 1.0, out=out)


def default_radius(low_shape: tuple[int, int]) -> int:
    """Window radius at the low resolution: ~1/80 of the short side (4 px at 320 px)."""
    return max(2, int(round(min(low_shape[:2]) / 80)))


def guided_upsample(src_lr: np.ndarray, guide: np.ndarray, guide_lr: np.ndarray | None = None,
                    radius: int | None = None, eps: float = DEFAULT_EPS, strip_rows: int = STRIP_ROWS,
                    out: np.ndarray | None = None) -> np.ndarray:
    """Fast guided upsampling of a low-res map to the size of ``guide`` (the full-size photo).

    ``src_lr``: float map h x w. ``guide``: full photo H x W [x C], uint8/uint16/float.
    ``guide_lr``: the photo already resized to h x w (pass the network's input to avoid resizing
    twice); made with INTER_AREA if omitted. Returns float32 H x W clipped to [0,1].
    """
    src_lr = np.asarray(src_lr, np.float32)
    guide = np.asarray(guide)
    H, W = guide.shape[:2]
    h, w = src_lr.shape
    if guide_lr is None:
        guide_lr = cv2.resize(guide, (w, h), interpolation=cv2.INTER_AREA)
        if guide.ndim == 3 and guide_lr.ndim == 2:
            guide_lr = guide_lr[..., None]
    A, b = guided_coefficients(guide_lr, src_lr, radius or default_radius((h, w)), eps)
    if out is None:
        out = np.empty((H, W), np.float32)
    for y0 in range(0, H, strip_rows):
        y1 = min(H, y0 + strip_rows)
        I = _as_guide(guide[y0:y1])
        A_s = _resize_rows(A, H, W, y0, y1)
        q = _resize_rows(b, H, W, y0, y1)
        for c in range(A_s.shape[2]):  # accumulate channel by channel: no extra strip-sized temporaries
            q += A_s[..., c] * I[..., c]
        np.clip(q, 0.0, 1.0, out=out[y0:y1])
    return out
