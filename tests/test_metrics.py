"""Metrics against plain, slow, obviously-correct references (explicit TP/FP/FN counting per threshold)."""

import numpy as np
import pytest

from dbd_core import metrics as M
from dbd_core.errors import InputError

B2 = 0.3


# ------------------------------------------------------------------ slow references

def ref_prf(pos_pred, gt):
    """Explicit counting, with the documented conventions spelled out as ifs."""
    tp = fp = fn = 0
    for p, g in zip(pos_pred.ravel().tolist(), gt.ravel().tolist()):
        if p and g:
            tp += 1
        elif p and not g:
            fp += 1
        elif g and not p:
            fn += 1
    precision = 1.0 if tp + fp == 0 else tp / (tp + fp)
    recall = 1.0 if tp + fn == 0 else tp / (tp + fn)
    if precision == 0 and recall == 0:
        f = 0.0
    else:
        f = (1 + B2) * precision * recall / (B2 * precision + recall)
    iou = 1.0 if tp + fp + fn == 0 else tp / (tp + fp + fn)
    return precision, recall, f, iou


def ref_curves(pred, gt):
    q = np.rint(pred.astype(np.float32) * np.float32(255)).astype(int)
    P, R, F = [], [], []
    for k in range(256):
        p, r, f, _ = ref_prf(q >= k, gt)
        P.append(p), R.append(r), F.append(f)
    return np.array(P), np.array(R), np.array(F)


def ref_auc_mann_whitney(preds, gts):
    """AUC as P(score_blurred > score_sharp) + 0.5 P(tie), all pixels of the set pooled, 8-bit scores."""
    s = np.concatenate([np.rint(p.astype(np.float32) * np.float32(255)).ravel() for p in preds])
    g = np.concatenate([x.ravel().astype(bool) for x in gts])
    pos, neg = s[g], s[~g]
    wins = ties = 0
    for v in pos.tolist():
        wins += int(np.sum(neg < v))
        ties += int(np.sum(neg == v))
    return (wins + 0.5 * ties) / (len(pos) * len(neg))


def ref_summary(preds, gts):
    n = len(preds)
    maes, fbs, fas, ious, fmax_img, fcurves = [], [], [], [], [], []
    for p, g in zip(preds, gts):
        g = g.astype(bool)
        maes.append(sum(abs(float(a) - float(b)) for a, b in zip(p.ravel(), g.ravel())) / p.size)
        _, _, f, i = ref_prf(p >= 0.5, g)
        fbs.append(f), ious.append(i)
        thr = min(1.5 * float(np.mean(p, dtype=np.float64)), 1.0)
        fas.append(ref_prf(p >= thr, g)[2])
        fc = ref_curves(p, g)[2]
        fcurves.append(fc)
        fmax_img.append(fc.max())
    return dict(n_images=n, mae=np.mean(maes), f_beta=np.mean(fbs), f_adaptive=np.mean(fas),
                iou=np.mean(ious), max_f_per_image=np.mean(fmax_img), max_f=np.mean(fcurves, axis=0).max(),
                auc_roc=ref_auc_mann_whitney(preds, gts))


def random_set(rng, n=4, shape=(13, 17)):
    preds, gts = [], []
    for i in range(n):
        gts.append((rng.random(shape) < rng.uniform(0.1, 0.9)).astype(np.uint8))
        # Informative but noisy maps, plus exact 0, 0.5 and 1 values to hit the threshold edges.
        p = np.clip(0.35 * gts[-1] + rng.random(shape) * 0.65, 0, 1).astype(np.float32)
        p.ravel()[:3] = [0.0, 0.5, 1.0]
        preds.append(p)
    return preds, gts


KEYS = ["mae", "f_beta", "f_adaptive", "max_f", "max_f_per_image", "auc_roc", "iou"]


def run_evaluator(preds, gts):
    ev = M.Evaluator()
    for i, (p, g) in enumerate(zip(preds, gts)):
        ev.update(p, g, name=f"img{i}")
    return ev


# ------------------------------------------------------------------ random sets vs reference

@pytest.mark.parametrize("seed", [0, 1, 2])
def test_evaluator_matches_reference_on_random_sets(seed):
    preds, gts = random_set(np.random.default_rng(seed))
    got = run_evaluator(preds, gts).summary()
    ref = ref_summary(preds, gts)
    assert got["n_images"] == ref["n_images"] == 4
    for k in KEYS:
        assert got[k] == pytest.approx(ref[k], abs=1e-9), k
    assert set(KEYS) <= set(got["protocols"])


def test_curves_match_reference(rng):
    preds, gts = random_set(rng, n=3)
    c = run_evaluator(preds, gts).curves()
    refs = [ref_curves(p, g.astype(bool)) for p, g in zip(preds, gts)]
    for i, key in enumerate(["precision", "recall", "f"]):
        assert c[key].shape == (256,)
        np.testing.assert_allclose(c[key], np.mean([r[i] for r in refs], axis=0), atol=1e-12)
    # Pooled ROC by explicit counting at each threshold.
    q = [np.rint(p * np.float32(255)).astype(int) for p in preds]
    g = [x.astype(bool) for x in gts]
    n_pos = sum(x.sum() for x in g)
    n_neg = sum((~x).sum() for x in g)
    for k in (0, 1, 77, 128, 255):
        tp = sum(((qq >= k) & gg).sum() for qq, gg in zip(q, g))
        fp = sum(((qq >= k) & ~gg).sum() for qq, gg in zip(q, g))
        assert c["tpr"][k] == pytest.approx(tp / n_pos)
        assert c["fpr"][k] == pytest.approx(fp / n_neg)
    np.testing.assert_allclose(c["thresholds"], np.arange(256) / 255)


def test_single_image_functions_match_reference(rng):
    p, g = (x[0] for x in random_set(rng, n=1))
    ref = ref_summary([p], [g])
    assert M.mae(p, g) == pytest.approx(ref["mae"])
    assert M.f_beta(p, g) == pytest.approx(ref["f_beta"])
    assert M.f_adaptive(p, g) == pytest.approx(ref["f_adaptive"])
    assert M.iou(p, g) == pytest.approx(ref["iou"])
    assert M.max_f(p, g) == pytest.approx(ref["max_f"])
    assert M.auc_roc(p, g) == pytest.approx(ref["auc_roc"])
    rec = M.image_metrics(p, g, name="x")
    assert rec["name"] == "x" and rec["f_beta"] == pytest.approx(ref["f_beta"])


def test_thresholds_are_inclusive():
    g = np.array([[1, 0]], np.uint8)
    assert M.f_beta(np.array([[0.5, 0.4999]], np.float32), g) == 1.0  # 0.5 counts as blurred
    assert M.f_beta(np.array([[0.4999, 0.0]], np.float32), g) == 0.0


# ------------------------------------------------------------------ hand-made cases

def summary_of(pred, gt):
    return run_evaluator([pred], [gt]).summary()


def test_perfect_prediction():
    gt = np.zeros((8, 10), np.uint8)
    gt[:, :4] = 1
    s = summary_of(gt.astype(np.float32), gt)
    assert s["mae"] == 0 and s["f_beta"] == 1 and s["max_f"] == 1 and s["max_f_per_image"] == 1
    assert s["auc_roc"] == 1 and s["iou"] == 1 and s["f_adaptive"] == 1


def test_inverted_prediction():
    gt = np.zeros((8, 10), np.uint8)
    gt[2:5] = 1
    s = summary_of(1.0 - gt.astype(np.float32), gt)
    assert s["mae"] == 1 and s["f_beta"] == 0 and s["iou"] == 0 and s["auc_roc"] == 0


def test_all_blurred_gt():
    gt = np.ones((6, 6), np.uint8)
    s = summary_of(np.full((6, 6), 0.8, np.float32), gt)
    assert s["mae"] == pytest.approx(0.2)
    assert s["f_beta"] == 1 and s["iou"] == 1
    assert np.isnan(s["auc_roc"])  # ROC undefined without sharp pixels
    # Nothing predicted while everything is blurred: precision 1 by convention, recall 0 -> F 0.
    s = summary_of(np.zeros((6, 6), np.float32), gt)
    assert s["f_beta"] == 0 and s["iou"] == 0 and s["mae"] == 1


def test_all_sharp_gt_conventions():
    gt = np.zeros((6, 6), np.uint8)
    # Both empty -> F = 1, IoU = 1.
    s = summary_of(np.full((6, 6), 0.1, np.float32), gt)
    assert s["f_beta"] == 1 and s["iou"] == 1 and s["mae"] == pytest.approx(0.1)
    # One empty (false alarms on a sharp photo) -> F = 0, IoU = 0.
    s = summary_of(np.full((6, 6), 0.9, np.float32), gt)
    assert s["f_beta"] == 0 and s["iou"] == 0
    # Curve: at threshold 255/255 nothing is predicted on the 0.9 map -> that point has F = 1.
    assert s["max_f"] == 1


@pytest.mark.parametrize("value", [0.0, 0.5, 1.0])
def test_constant_maps(value):
    gt = np.zeros((10, 10), np.uint8)
    gt[:, :3] = 1  # 30 % blurred
    pred = np.full(gt.shape, value, np.float32)
    s = summary_of(pred, gt)
    ref = ref_summary([pred], [gt])
    for k in KEYS:
        assert s[k] == pytest.approx(ref[k]), k
    assert s["auc_roc"] == pytest.approx(0.5)  # a constant score cannot rank pixels
    assert s["mae"] == pytest.approx(0.3 * (1 - value) + 0.7 * value)
    if value >= 0.5:  # everything predicted blurred: P = 0.3, R = 1
        assert s["f_beta"] == pytest.approx(1.3 * 0.3 / (0.3 * 0.3 + 1))
    else:
        assert s["f_beta"] == 0
    # Adaptive threshold: 0 for the zero map (everything positive, the published behaviour),
    # 0.75 for 0.5 (nothing positive), 1 for 1 (everything positive).
    expected_fa = 0.0 if value == 0.5 else 1.3 * 0.3 / (0.3 * 0.3 + 1)
    assert s["f_adaptive"] == pytest.approx(expected_fa)


def test_empty_masks_and_maps_both_empty_everywhere():
    gt = np.zeros((5, 5), np.uint8)
    s = summary_of(np.zeros((5, 5), np.float32), gt)
    assert s["mae"] == 0 and s["f_beta"] == 1 and s["iou"] == 1
    # Adaptive threshold 0 -> every pixel predicted blurred on an all-sharp image -> F = 0.
    assert s["f_adaptive"] == 0


def test_bool_gt_and_mean_over_images():
    gt1 = np.ones((4, 4), bool)
    gt2 = np.zeros((4, 4), bool)
    ev = M.Evaluator()
    ev.update(np.ones((4, 4), np.float32), gt1)   # perfect: F 1
    ev.update(np.ones((4, 4), np.float32), gt2)   # false alarm everywhere: F 0
    s = ev.summary()
    assert s["n_images"] == 2 and s["f_beta"] == 0.5 and s["mae"] == 0.5
    assert s["auc_roc"] == pytest.approx(0.5)  # pooled: all 32 pixels score 1, so the ROC is the diagonal


# ------------------------------------------------------------------ bad input

def test_size_mismatch_names_the_sample():
    ev = M.Evaluator()
    with pytest.raises(InputError, match="photo7.*8x6.*10x6"):
        ev.update(np.zeros((6, 8), np.float32), np.zeros((6, 10), np.uint8), name="photo7")
    assert ev.n == 0


@pytest.mark.parametrize("pred, gt, msg", [
    (np.full((3, 3), 1.5, np.float32), np.zeros((3, 3), np.uint8), "outside"),
    (np.full((3, 3), np.nan, np.float32), np.zeros((3, 3), np.uint8), "NaN"),
    (np.zeros((3, 3), np.uint8), np.zeros((3, 3), np.uint8), "float"),
    (np.zeros((3, 3), np.float32), np.full((3, 3), 255, np.uint8), "only 0 and 1"),
])
def test_bad_arrays_raise_input_error(pred, gt, msg):
    with pytest.raises(InputError, match=msg):
        M.Evaluator().update(pred, gt, name="s")


def test_empty_evaluator_summary_is_nan():
    s = M.Evaluator().summary()
    assert s["n_images"] == 0 and np.isnan(s["mae"]) and np.isnan(s["max_f"])


def test_f_beta_two_class_leaves_out_nearly_one_class_masks():
    ev = M.Evaluator()
    half = np.zeros((20, 20), np.uint8)
    half[:, 10:] = 1
    ev.update(half.astype(np.float32), half)                      # two-class, perfect: F 1
    sharp = np.zeros((20, 20), np.uint8)
    stray = np.zeros((20, 20), np.float32)
    stray[4, 4] = 1.0
    ev.update(stray, sharp)                                       # all sharp, one stray pixel: F 0
    few = np.zeros((20, 20), np.uint8)
    few[0, :4] = 1                                                # 1 % blurred: nearly one class
    ev.update(np.zeros((20, 20), np.float32), few)                # missed: F 0
    s = ev.summary()
    assert s["f_beta"] == pytest.approx(1 / 3)
    assert s["f_beta_two_class"] == pytest.approx(1.0) and s["n_two_class"] == 1
    assert s["protocols"]["f_beta_two_class"]
    assert np.isnan(M.Evaluator().summary()["f_beta_two_class"])


def test_nll_rewards_honest_probabilities_not_confidence():
    """Pixel log-loss: log 2 for a 0.5 map, near 0 for a right hard map, capped by the 1e-4 floor for a
    wrong one; among maps of the same ranking, the calibrated one beats the over-confident one, which MAE
    would prefer."""
    import math

    from dbd_core.metrics import Evaluator

    rng = np.random.default_rng(3)
    gt = rng.random((40, 50)) < 0.4
    half = np.full(gt.shape, 0.5, np.float32)
    assert Evaluator().update(half, gt)["nll"] == pytest.approx(math.log(2), rel=1e-6)
    assert Evaluator().update(gt.astype(np.float32), gt)["nll"] == pytest.approx(1e-4, rel=1e-2)
    assert Evaluator().update((~gt).astype(np.float32), gt)["nll"] == pytest.approx(-math.log(1e-4), rel=1e-3)

    q = rng.uniform(0.05, 0.95, (200, 200)).astype(np.float32)   # true probability of "blurred" per pixel
    y = rng.random(q.shape) < q
    sharp = (q > 0.5).astype(np.float32) * 0.98 + 0.01             # same ranking, over-confident
    cal, over = Evaluator(), Evaluator()
    cal.update(q, y)
    over.update(sharp, y)
    assert cal.summary()["nll"] < over.summary()["nll"]
    assert cal.summary()["mae"] > over.summary()["mae"]             # the reason MAE alone cannot judge this
