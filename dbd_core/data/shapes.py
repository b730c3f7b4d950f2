"""Region shapes for synthetic focus layers: float alpha masks HxW in [0, 1] with ~1 px anti-aliased
edges (1 = inside the layer), and smooth depth ramps.

Object-like shapes come from human segmentations (unions of adjacent BSDS segments); without
labels, random smooth shapes: thresholded smoothed noise or wobbly-bordered blobs.
"""

from __future__ import annotations

import cv2
import numpy as np


def _soft_threshold(field: np.ndarray, t: float) -> np.ndarray:
    """Anti-aliased {field > t}: the signed distance to the level set, approximated as
    (field - t) / |grad field|, clipped to a 1 px ramp."""
    gy, gx = np.gradient(field)
    grad = np.sqrt(gx * gx + gy * gy) + 1e-6
    return np.clip(0.5 + (field - t) / grad, 0.0, 1.0).astype(np.float32)


def noise_shape(h: int, w: int, rng: np.random.Generator, area=(0.15, 0.6)) -> np.ndarray:
    """Thresholded low-frequency noise: one or several organic regions of a target area fraction."""
    cells = int(rng.integers(2, 6))  # blobs across the short side: 2 = big smooth regions
    gh, gw = max(2, round(cells * h / min(h, w))), max(2, round(cells * w / min(h, w)))
    coarse = rng.standard_normal((gh + 2, gw + 2)).astype(np.float32)
    field = cv2.resize(coarse, (w + 2 * w // gw, h + 2 * h // gh), interpolation=cv2.INTER_CUBIC)
    field = field[h // gh: h // gh + h, w // gw: w // gw + w]
    # A little finer noise makes the border wobble instead of being perfectly smooth.
    fine = cv2.resize(rng.standard_normal((gh * 4, gw * 4)).astype(np.float32), (w, h),
                      interpolation=cv2.INTER_CUBIC)
    field = cv2.GaussianBlur(field + 0.15 * fine, (0, 0), 0.01 * min(h, w) + 1.0)
    t = float(np.quantile(field, 1.0 - rng.uniform(*area)))
    return _soft_threshold(field, t)


def blob_shape(h: int, w: int, rng: np.random.Generator, area=(0.1, 0.45)) -> np.ndarray:
    """A star-shaped blob (ellipse with a wobbly border from a few random harmonics)."""
    target = rng.uniform(*area) * h * w
    base_r = np.sqrt(target / np.pi)
    aspect = rng.uniform(0.6, 1.6)
    cx, cy = rng.uniform(0.25, 0.75) * w, rng.uniform(0.25, 0.75) * h
    rot = rng.uniform(0, np.pi)
    th = np.linspace(0, 2 * np.pi, 256, endpoint=False)
    rad = np.ones_like(th)
    for k in range(2, 7):
        rad += rng.uniform(0, 0.25 / k ** 0.8) * np.cos(k * th + rng.uniform(0, 2 * np.pi))
    x = base_r * rad * np.cos(th) * aspect
    y = base_r * rad * np.sin(th) / aspect
    xr = cx + x * np.cos(rot) - y * np.sin(rot)
    yr = cy + x * np.sin(rot) + y * np.cos(rot)
    # 4 fractional bits + LINE_AA at 4x then area-downsampling gives a clean anti-aliased edge.
    s = 4
    canvas = np.zeros((h * s, w * s), np.uint8)
    pts = np.round(np.stack([xr, yr], 1) * s * 16).astype(np.int32)
    cv2.fillPoly(canvas, [pts], 255, lineType=cv2.LINE_AA, shift=4)
    return cv2.resize(canvas, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0


def _adjacency(labels: np.ndarray) -> dict[int, set[int]]:
    adj: dict[int, set[int]] = {}
    for a, b in ((labels[:, 1:], labels[:, :-1]), (labels[1:, :], labels[:-1, :])):
        diff = a != b
        pairs = np.unique(np.stack([a[diff], b[diff]], 1), axis=0)
        for p, q in pairs:
            adj.setdefault(int(p), set()).add(int(q))
            adj.setdefault(int(q), set()).add(int(p))
    return adj


def segment_union_shape(labels: np.ndarray, rng: np.random.Generator, area=(0.12, 0.55)) -> np.ndarray | None:
    """An object-like region: grow a union of adjacent segments of a human segmentation from a
    random seed segment until it covers a target fraction. None when the label map is unusable
    (a single segment). Edges are softened to ~1 px like a real photo's."""
    ids, counts = np.unique(labels, return_counts=True)
    if len(ids) < 2:
        return None
    total = labels.size
    target = rng.uniform(*area) * total
    # The biggest segment is usually sky/ground/backdrop; seeding elsewhere gives object shapes.
    weights = counts.astype(np.float64)
    weights[np.argmax(counts)] *= 0.15
    start = int(rng.choice(ids, p=weights / weights.sum()))
    adj = _adjacency(labels)
    size = dict(zip(ids.tolist(), counts.tolist()))
    chosen = {start}
    covered = size[start]
    frontier = set(adj.get(start, ()))
    while covered < target and frontier:
        cand = sorted(frontier)
        nxt = int(rng.choice(cand))
        frontier.discard(nxt)
        if covered + size[nxt] > 0.85 * total:
            continue  # do not swallow the whole frame
        chosen.add(nxt)
        covered += size[nxt]
        frontier |= adj.get(nxt, set()) - chosen
    mask = np.isin(labels, list(chosen)).astype(np.float32)
    if mask.mean() > 0.9 or mask.mean() < 0.02:
        return None
    # Segmentation boundaries are pixel-aliased; a 0.7 px blur matches a camera's edge softness.
    return cv2.GaussianBlur(mask, (0, 0), 0.7)


def depth_ramp(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """Smooth depth in [0, 1]: a plane tilted in a random direction (a table, a road, a wall seen
    obliquely), optionally bent, plus a little low-frequency variation."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    ang = rng.uniform(0, 2 * np.pi)
    d = (np.cos(ang) * xx / w + np.sin(ang) * yy / h)
    d = (d - d.min()) / max(float(d.max() - d.min()), 1e-6)
    d = d ** rng.uniform(0.6, 1.6)
    wobble = cv2.resize(rng.standard_normal((3, 3)).astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
    d = d + 0.08 * wobble
    return ((d - d.min()) / max(float(d.max() - d.min()), 1e-6)).astype(np.float32)
