"""Blur sensitivity protocol (dbd_core.sensitivity): the blur, the curve, and the shipped student's line."""

import numpy as np
import pytest
from skimage import data

from dbd_core.sensitivity import SensitivityCurve, blur_uniform, sensitivity_curve, working_square


def _curve(radii, mean):
    return SensitivityCurve(radii=radii, mean=mean, blurred_share=mean, n_photos=1, size=320, gauss_mix=0.0,
                            jpeg_quality=0)


def test_detection_radius_interpolates_where_the_mean_crosses_one_half():
    assert _curve([0, 1, 2, 3], [0.1, 0.3, 0.7, 0.9]).detection_radius() == pytest.approx(1.5)
    assert _curve([0, 1], [0.6, 0.9]).detection_radius() == 0.0  # calls even sharp photos blurred
    assert _curve([0, 1], [0.1, 0.2]).detection_radius() is None  # never says blurred


def test_blur_uniform_is_identity_at_zero_and_removes_detail_as_radius_grows():
    sq = working_square(data.astronaut(), 128)
    assert sq.shape == (128, 128, 3)
    assert np.array_equal(blur_uniform(sq, 0.0, jpeg_quality=0), sq)

    def detail(img):
        g = img.astype(np.float32).mean(axis=2)
        return float(np.abs(np.diff(g, axis=1)).mean())

    d = [detail(blur_uniform(sq, r, jpeg_quality=0)) for r in (0.0, 1.5, 4.0)]
    assert d[0] > d[1] > d[2]
    coded = blur_uniform(sq, 0.0, jpeg_quality=60)
    mse = float(((coded.astype(np.float64) - sq) ** 2).mean())
    assert coded.shape == sq.shape and mse > 0 and 10 * np.log10(255 ** 2 / mse) > 25  # coded, not ruined


def test_curve_averages_the_maps_and_checks_their_size():
    photos = [data.astronaut(), data.chelsea()]
    # A stand-in model whose map is the image's lack of detail: the curve must rise with the radius.
    def softness(rgb):
        g = rgb.astype(np.float32).mean(axis=2)
        e = float(np.abs(np.diff(g, axis=1)).mean())
        return np.full(rgb.shape[:2], np.clip(1.0 - e / 8.0, 0, 1), np.float32)

    c = sensitivity_curve(softness, photos, radii=(0.0, 2.0, 6.0), size=96, jpeg_quality=0)
    assert c.n_photos == 2 and len(c.per_photo) == 3 and all(len(v) == 2 for v in c.per_photo)
    assert c.mean[0] < c.mean[1] < c.mean[2]
    assert c.mean == pytest.approx([np.mean(v) for v in c.per_photo])
    assert c.to_dict()["detection_radius"] == c.detection_radius()
    with pytest.raises(ValueError, match="map shape"):
        sensitivity_curve(lambda rgb: np.zeros((5, 5), np.float32), photos, radii=(0.0,), size=96)


def test_shipped_student_says_sharp_below_the_label_threshold_and_blurred_above():
    from dbd_core.predict import load_predictor

    pred = load_predictor("student", threads=2)
    c = sensitivity_curve(pred.predict_small, [data.astronaut(), data.rocket()], radii=(0.0, 0.6, 3.0, 6.0))
    assert max(c.mean[:2]) < 0.4, c.mean  # sharp and lens-soft photos: mostly sharp
    assert min(c.mean[2:]) > 0.85, c.mean  # 3 and 6 px of defocus: blurred
    assert 0.6 <= c.detection_radius() <= 2.5
