"""benchmarks/calibration.py: the temperature it finds and the MAE floor it reports, on maps whose
calibration is known by construction."""

import numpy as np
import pytest

from bench_scripts import load_script


@pytest.fixture(scope="module")
def cal():
    return load_script("calibration")


def _maps(rng, temperature, n=8, size=4000):
    """Labels drawn from true probabilities q; the 'model' reports sigmoid(logit(q) / temperature)."""
    probs, gts = [], []
    for _ in range(n):
        logit = rng.normal(0.0, 2.5, size)
        q = 1 / (1 + np.exp(-logit))
        gts.append((rng.random(size) < q).astype(np.float32))
        probs.append((1 / (1 + np.exp(-logit / temperature))).astype(np.float32))
    return probs, gts


TEMPS = np.exp(np.linspace(np.log(0.2), np.log(5.0), 49))


def test_a_calibrated_map_needs_no_temperature_and_its_mae_is_that_of_calibration(cal):
    probs, gts = _maps(np.random.default_rng(0), 1.0)
    a = cal.analyse(probs, gts, TEMPS)
    assert a["ece"] < 0.02
    assert 0.85 < a["T_best"] < 1.15
    assert a["calibrated_mae"] == pytest.approx(a["mae_T1"], abs=0.01)
    # The floor: each value sent to the nearer of 0 and 1, i.e. the map thresholded at 0.5 here.
    p, y = np.concatenate(probs), np.concatenate(gts)
    assert a["mae_floor"] == pytest.approx(float(np.mean((p >= 0.5) != y)), abs=0.01)
    assert a["mae_floor"] < a["mae_T1"] - 0.05


def test_an_under_confident_map_is_sharpened_and_its_mae_drops(cal):
    probs, gts = _maps(np.random.default_rng(1), 2.0)  # reports logit/2: too soft
    a = cal.analyse(probs, gts, TEMPS)
    assert a["ece"] > 0.05
    assert 0.4 < a["T_best"] < 0.6
    assert a["nll_best"] < a["nll_T1"]
    assert a["mae_best"] < a["mae_T1"] - 0.02


def test_an_over_confident_map_is_softened(cal):
    probs, gts = _maps(np.random.default_rng(2), 0.5)
    a = cal.analyse(probs, gts, TEMPS)
    assert 1.7 < a["T_best"] < 2.3
    assert a["mae_best"] > a["mae_T1"]  # softening costs MAE: MAE rewards confidence, not calibration
    assert a["mae_floor"] <= a["mae_T1"]


def test_reliability_bins_cover_every_pixel(cal):
    probs, gts = _maps(np.random.default_rng(3), 1.0, n=2)
    rows = cal.reliability(probs, gts)["rows"]
    assert sum(r["share"] for r in rows) == pytest.approx(1.0)
    assert all(float(r["bin"].split("-")[0]) <= r["mean_p"] <= float(r["bin"].split("-")[1]) for r in rows)


def test_the_report_names_the_weights_it_measured(cal):
    """calibration.md once outlived the teacher it measured; each row now says which release and sha256."""
    import json

    from dbd_core import weights

    text = cal.describe("teacher")
    card = json.loads(weights.card_path(weights.require_shipped("teacher")).read_text(encoding="utf-8"))
    assert text.startswith("teacher ") and card["sha256"][:12] in text and card["release"] in text
    assert cal.describe("lbp") == "lbp"
