"""LBP baseline (Yi & Eramian 2016): codes, sharpness metric, and maps on synthetic half-blurred photos."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from skimage import data
from skimage.feature import local_binary_pattern

from dbd_core.lbp import LBPPredictor, lbp_codes, lbp_codes_ge, lbp_sharpness, to_gray01
from dbd_core.predict import load_predictor


def pillbox(radius: int) -> np.ndarray:
    y, x = np.mgrid[-radius:radius + 1, -radius:radius + 1]
    k = (x * x + y * y <= radius * radius).astype(np.float32)
    return k / k.sum()


def half_blurred(img: np.ndarray, radius: int = 6):
    """Left half defocused with a disk kernel, right half untouched; mask 1 = blurred."""
    blurred = cv2.filter2D(img.astype(np.float32), -1, pillbox(radius), borderType=cv2.BORDER_REFLECT)
    out = img.astype(np.float32).copy()
    half = img.shape[1] // 2
    out[:, :half] = blurred[:, :half]
    mask = np.zeros(img.shape[:2], np.float32)
    mask[:, :half] = 1
    return np.clip(np.rint(out), 0, 255).astype(np.uint8), mask


def test_codes_match_scikit_image_uniform_lbp():
    # At threshold 0 with ">=", our vectorised riu2 codes are scikit-image's 'uniform' LBP (P=8, R=1).
    gray = data.camera()[100:228, 100:228]  # uint8: no rounding ambiguity at equal neighbours
    ours = lbp_codes_ge(gray.astype(np.float32), 0.0)
    ref = local_binary_pattern(gray, 8, 1, method="uniform").astype(np.uint8)
    np.testing.assert_array_equal(ours[1:-1, 1:-1], ref[1:-1, 1:-1])  # borders: sk pads with 0


def test_threshold_silences_flat_and_blurred_regions():
    flat = np.full((32, 32), 0.5, np.float32)
    assert (lbp_codes(flat) == 0).all()  # no neighbour exceeds the centre by T_LBP
    noise = np.random.default_rng(0).random((64, 64)).astype(np.float32)
    codes = lbp_codes(noise)
    assert codes.min() >= 0 and codes.max() <= 9 and (codes >= 6).mean() > 0.1
    smooth = cv2.GaussianBlur(noise, (0, 0), 4)
    assert lbp_sharpness(smooth, 11).mean() < 0.2 * lbp_sharpness(noise, 11).mean()


@pytest.mark.parametrize("name, max_mae", [("coffee", 0.2), ("astronaut", 0.25)])
def test_half_blurred_photo(name, max_mae):
    # coffee: texture nearly everywhere. astronaut: the right half has large textureless areas (wall,
    # helmet) that no local sharpness measure can call sharp; its bound is looser and says so.
    photo, mask = half_blurred(getattr(data, name)(), radius=6)
    blur_map = load_predictor("lbp").predict(photo)
    assert blur_map.shape == mask.shape and blur_map.dtype == np.float32
    assert 0 <= blur_map.min() and blur_map.max() <= 1
    mae = float(np.abs(blur_map - mask).mean())
    half = mask.shape[1] // 2
    blurred_mean, sharp_mean = blur_map[:, :half].mean(), blur_map[:, half:].mean()
    print(f"LBP {name} half-blurred (pillbox r=6): MAE {mae:.3f}, blurred half {blurred_mean:.2f}, "
          f"sharp half {sharp_mean:.2f}")
    assert mae < max_mae
    assert blurred_mean > sharp_mean + 0.4


def test_all_blurred_photo_stays_blurred():
    # No per-image normalisation: a fully defocused photo must not get a "sharpest part" called sharp.
    photo = cv2.filter2D(data.coffee(), -1, pillbox(6))
    assert load_predictor("lbp").predict(photo).mean() > 0.9


def test_gray_input_and_determinism():
    photo, _ = half_blurred(data.camera()[::2, ::2])
    p = LBPPredictor()
    a, b = p.predict(photo), p.predict(photo)
    assert a.shape == photo.shape and np.array_equal(a, b)
    assert to_gray01(photo).dtype == np.float32
