"""Classical baseline: LBP-based defocus segmentation (Yi & Eramian, IEEE TIP 25(4), 2016).

Sharpness metric (their eq. 15): in a local window, the fraction of pixels whose rotation-invariant
uniform LBP_{8,1} code (riu2, values 0..9) falls in the "sharp" bins 6..9, where a neighbour bit is
set when ``g_p - g_c > T_LBP`` (T_LBP = 0.016 on a [0,1] gray image; the authors' code uses the signed
difference). Blurred regions have small local differences, so few bits are set and codes fall in
the low bins. Fully vectorised: the 8 neighbour differences are shifted arrays (diagonals
bilinearly interpolated at radius 1, as in scikit-image), window fractions are box filters over one
indicator map.

Deviations from the paper, stated:
  * multi-scale: the metric at windows 11/15/21 (at a 480 px working size) is averaged instead of
    Shi et al.'s multi-scale graphical-model inference;
  * refinement: the paper's alpha matting (Levin et al.) is replaced by an edge-aware guided filter
    with the photo as guide (same purpose: snap the map to object boundaries; far cheaper);
  * from metric to map: sharp evidence is propagated into textureless regions by confidence-weighted
    averaging (``propagate_evidence``) -- the role of the paper's trimap + matting. Polarity is the
    product's: 1 = blurred. No per-image min-max normalisation (it would call the sharpest part of an
    all-blurred photo "sharp").
Known limits (shared with the paper): textureless regions look blurred; noise looks sharp.
"""

from __future__ import annotations

import cv2
import numpy as np

from dbd_core.predict import Predictor
from dbd_core.upsample import guided_filter

T_LBP = 0.016
WINDOWS = (11, 15, 21)
SHARP_BINS = (6, 7, 8, 9)
LBP_WORK_SIZE = 480  # long side; the paper's windows were chosen for CUHK-sized photos (~640 px)
# Sharp evidence saturates when this fraction of a window's codes is in the sharp bins (sharp,
# textured regions measure ~0.02-0.3 at 480 px; defocused ones ~0).
M_SAT = 0.02
# Propagation (stand-in for the paper's matting): sharp evidence counts fully; "no sharp codes"
# counts only BLUR_WEIGHT as much, because textureless sharp regions also lack sharp codes. Evidence
# is spread by normalised Gaussian averaging (sigma = PROPAGATE_FRAC x short side).
BLUR_WEIGHT = 0.04
PROPAGATE_FRAC = 0.04
REFINE_RADIUS_FRAC = 1 / 40  # edge-aware refinement window radius, as a fraction of the short side
REFINE_EPS = 1e-3


def to_gray01(img: np.ndarray) -> np.ndarray:
    """RGB uint8 (or gray) -> float32 luminance in [0,1] (ITU-R 601, like rgb2gray in the paper's code)."""
    img = np.asarray(img)
    if img.ndim == 3:
        img = cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_RGB2GRAY) if img.dtype == np.uint8 else \
            img[..., 0] * 0.299 + img[..., 1] * 0.587 + img[..., 2] * 0.114
    if img.dtype == np.uint8:
        return img.astype(np.float32) / 255.0
    return np.asarray(img, np.float32)


def _neighbours(g: np.ndarray) -> list[np.ndarray]:
    """The 8 samples at radius 1, counter-clockwise from the right (scikit-image's order and
    positions); diagonals bilinearly interpolated; borders replicated."""
    pad = np.pad(g, 1, mode="edge")
    h, w = g.shape

    def at(dy, dx):
        return pad[1 + dy:1 + dy + h, 1 + dx:1 + dx + w]

    c = at(0, 0)
    d = np.float32(np.sqrt(0.5))  # offset of a diagonal sample along each axis
    w00, w01, w11 = (1 - d) * (1 - d), (1 - d) * d, d * d

    def diag(dy, dx):  # bilinear between centre, the two axis neighbours and the corner
        return w00 * c + w01 * at(dy, 0) + w01 * at(0, dx) + w11 * at(dy, dx)

    # p = 0..7 at angle 2*pi*p/8: (row, col) offsets (-sin, cos)
    return [at(0, 1), diag(-1, 1), at(-1, 0), diag(-1, -1), at(0, -1), diag(1, -1), at(1, 0), diag(1, 1)]


def lbp_codes(gray01: np.ndarray, threshold: float = T_LBP) -> np.ndarray:
    """riu2 LBP_{8,1} codes (uint8, 0..8 = number of set bits of a uniform pattern, 9 = non-uniform),
    bit p set when ``neighbour_p - centre > threshold``. threshold=0 with ``>=`` is scikit-image's
    'uniform' LBP; see ``lbp_codes_ge``."""
    return _riu2(gray01, lambda diff: diff > threshold)


def lbp_codes_ge(gray01: np.ndarray, threshold: float = 0.0) -> np.ndarray:
    """Same with ``neighbour_p - centre >= threshold`` (scikit-image's convention at threshold 0)."""
    return _riu2(gray01, lambda diff: diff >= threshold)


def _riu2(gray01: np.ndarray, bit) -> np.ndarray:
    g = np.asarray(gray01, np.float32)
    bits = [bit(n - g) for n in _neighbours(g)]
    ones = np.zeros(g.shape, np.uint8)
    transitions = np.zeros(g.shape, np.uint8)
    for p in range(8):
        ones += bits[p]
        transitions += bits[p] != bits[p - 1]  # p - 1 = -1 wraps round to bit 7
    return np.where(transitions <= 2, ones, np.uint8(9)).astype(np.uint8)


def lbp_sharpness(gray01: np.ndarray, window: int, threshold: float = T_LBP,
                  codes: np.ndarray | None = None) -> np.ndarray:
    """m_LBP: fraction of codes in bins 6..9 over a ``window`` x ``window`` neighbourhood (float32)."""
    if codes is None:
        codes = lbp_codes(gray01, threshold)
    sharp = (codes >= SHARP_BINS[0]).astype(np.float32)  # codes are 0..9, so >= 6 is bins 6..9
    return cv2.boxFilter(sharp, -1, (window, window), normalize=True, borderType=cv2.BORDER_REPLICATE)


def propagate_evidence(m: np.ndarray) -> np.ndarray:
    """Multi-scale sharpness m -> blur probability (1 = blurred), filling textureless regions.

    Each pixel votes "sharp" with confidence es = min(1, m / M_SAT) and "blurred" with confidence
    BLUR_WEIGHT x (1 - es); votes are averaged over a large Gaussian neighbourhood (normalised
    convolution). A textureless region next to sharp texture thus leans sharp, one surrounded by
    texture-free or defocused content leans blurred. No per-image normalisation: an all-blurred
    photo stays blurred.
    """
    es = np.clip(m / M_SAT, 0.0, 1.0).astype(np.float32)
    blur_vote = np.float32(BLUR_WEIGHT) * (1.0 - es)
    sigma = max(1.0, PROPAGATE_FRAC * min(m.shape))
    num = cv2.GaussianBlur(blur_vote, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)
    den = cv2.GaussianBlur(es + blur_vote, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)
    return (num / np.maximum(den, 1e-6)).astype(np.float32)


def lbp_blur_map(rgb: np.ndarray, windows=WINDOWS, threshold: float = T_LBP, refine: bool = True) -> np.ndarray:
    """Blur map (float32 [0,1], 1 = blurred) at the resolution of ``rgb`` (use a working size)."""
    gray = to_gray01(rgb)
    codes = lbp_codes(gray, threshold)
    m = np.mean([lbp_sharpness(gray, s, codes=codes) for s in windows], axis=0)
    blur = propagate_evidence(m)
    if refine:
        r = max(2, int(round(min(gray.shape) * REFINE_RADIUS_FRAC)))
        blur = guided_filter(rgb, blur, r, REFINE_EPS)
    return np.clip(blur, 0.0, 1.0).astype(np.float32)


class LBPPredictor(Predictor):
    """The LBP baseline behind the common Predictor API (no weights, no training)."""

    def __init__(self, work_size: int | None = None, windows=WINDOWS, threshold: float = T_LBP, tta: str = "none"):
        work_size = int(work_size or LBP_WORK_SIZE)
        # Windows are defined at LBP_WORK_SIZE; scale them with the working size so a different
        # --work-size measures the same scene footprint.
        scaled = tuple(max(3, int(round(s * work_size / LBP_WORK_SIZE)) | 1) for s in windows)
        card = {"name": "lbp", "method": "Yi & Eramian 2016, LBP sharpness (riu2, P=8, R=1)",
                "t_lbp": threshold, "windows": list(scaled), "work_size": work_size,
                "refinement": "guided filter (substitute for alpha matting)", "trained": False}
        super().__init__("lbp", card, work_size, source="built-in (no weights)", tta=tta)
        self.windows = scaled
        self.threshold = threshold

    def _predict_small(self, rgb_small: np.ndarray) -> np.ndarray:
        return lbp_blur_map(rgb_small, self.windows, self.threshold)
