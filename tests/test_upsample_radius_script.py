"""benchmarks/upsample_radius.py: scores every upsampling variant from one map, and marks the default window."""

import numpy as np

from bench_scripts import load_script
from dbd_core.predict import load_predictor


def test_scores_each_variant_on_a_small_dataset(tmp_path, rng):
    ur = load_script("upsample_radius")
    import skimage.data

    photo = skimage.data.chelsea()[:96, :144]
    gt = np.zeros(photo.shape[:2], np.float32)
    gt[:, 72:] = 1.0
    blurred = photo.copy()
    import cv2
    blurred[:, 72:] = cv2.GaussianBlur(photo, (0, 0), 3)[:, 72:]
    lbp = load_predictor("lbp", work_size=96)
    res = ur.score(lbp, [("data", blurred, gt), ("hires", np.ascontiguousarray(photo), np.zeros_like(gt))],
                   radii=(1, 4))
    assert set(res) == {"data", "hires"}
    variants = res["data"]
    assert list(variants)[0] == "bilinear" and any(t.startswith("guided r=1") for t in variants)
    assert not any(t.endswith("(default)") for t in variants)  # 96x64 map: the default radius, 2, was not asked
    with_default = ur.score(lbp, [("data", blurred, gt)], radii=(2,))["data"]
    assert list(with_default) == ["bilinear", "guided r=2 (default)"]
    for m, f, nll, auc in variants.values():
        assert 0 <= m <= 1 and 0 <= f <= 1 and nll > 0
    # the map is the same whatever the upsampling; only how it reaches full size changes the scores
    assert len({round(v[0], 6) for v in variants.values()}) > 1
    assert np.isnan(res["hires"]["bilinear"][3])  # one-class label: AUC undefined, kept as NaN, not 0.5
