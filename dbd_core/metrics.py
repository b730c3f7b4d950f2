"""Defocus-blur-detection metrics, named by protocol, vectorised with per-image histograms.

Inputs: a map (float HxW in [0, 1], 1 = blurred) and a ground-truth mask ({0,1} or bool HxW, 1 = blurred)
of the same size; the positive class is "blurred". The field reports several incompatible numbers under
the same names (see README "Evaluation protocols"), so every key here names exactly one protocol.

Conventions used everywhere (per image):
- precision := 1 when nothing is predicted blurred (no false alarms were made);
- recall    := 1 when the mask has no blurred pixel (nothing was there to find);
- F := (1 + b2) P R / (b2 P + R), and 0 when P = R = 0.
  Hence: mask and prediction both empty -> F = 1; exactly one of them empty -> F = 0.
- IoU := TP / (TP + FP + FN), and 1 when mask and prediction are both empty.

Threshold curves use 256 thresholds on the map quantised to 8 bits exactly like a saved PNG map
(q = round(255 * map)): at threshold k (k = 0..255, i.e. k/255) a pixel is predicted blurred when q >= k.
Per image, one np.bincount of q split by the mask gives TP and FP at all 256 thresholds at once.
"""

from __future__ import annotations

import numpy as np

from dbd_core.errors import InputError

BETA2 = 0.3  # beta^2 of the F-measure, as in every DBD paper since saliency detection adopted it
N_THRESHOLDS = 256
THRESHOLDS = np.arange(N_THRESHOLDS, dtype=np.float64) / 255.0
# A mask counts as two-class when its blurred share lies strictly inside this range. Per-image F-beta on a
# (nearly) one-class mask is 0 or 1 by a stray pixel or two, so f_beta_two_class leaves those images out.
TWO_CLASS = (0.02, 0.98)

PROTOCOLS = {
    "n_images": "number of image/mask pairs evaluated",
    "mae": "mean absolute error between the [0,1] map and the {0,1} mask, per image at the mask's resolution, "
           "averaged over images",
    "f_beta": "F-beta (beta^2=0.3) per image at a fixed threshold (map >= 0.5), averaged over images "
              "(D-DFFNet uniform protocol)",
    "f_adaptive": "F-beta (beta^2=0.3) per image at an adaptive threshold map >= min(1.5 x mean(map), 1), "
                  "averaged over images (DD / SG style; mask not re-thresholded, not pooled)",
    "max_f": "dataset-level max-F: per-image F-beta at each of 256 thresholds (8-bit map >= k/255), averaged over "
             "images into one F curve, then its maximum",
    "max_f_per_image": "per-image max-F: each image's maximum F-beta over 256 thresholds, averaged over images "
                       "(MLDBD/APL 'Fmax' MATLAB protocol)",
    "auc_roc": "area under the ROC curve (TPR vs FPR), pixels of all images pooled, 256 thresholds plus the "
               "(0,0) and (1,1) end points, trapezoid rule (not the area under the F curve)",
    "iou": "intersection over union of the blurred class at map >= 0.5, per image, averaged over images "
           "(both empty = 1)",
    "f_beta_two_class": "f_beta averaged over the images whose mask is 2-98 % blurred only (n_two_class of them); "
                        "NaN when there are none",
    "nll": "pixel log-loss -mean(y log p + (1-y) log(1-p)) per image, p clipped to [1e-4, 1-1e-4], averaged over "
           "images: whether the map is an honest probability (MAE and F reward confidence; this does not)",
}

NLL_EPS = 1e-4  # maps saturate at exactly 0 and 1 (8-bit PNGs, sigmoids in float32); the log needs a floor


# ---------------------------------------------------------------- input checks

def check_pair(pred, gt, name: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Validate and convert one (map, mask) pair -> (float32 map, bool mask). Raises InputError."""
    pred = np.asarray(pred)
    gt = np.asarray(gt)
    if pred.ndim == 3 and pred.shape[2] == 1:
        pred = pred[..., 0]
    if gt.ndim == 3 and gt.shape[2] == 1:
        gt = gt[..., 0]
    if pred.ndim != 2 or gt.ndim != 2:
        raise InputError(name, f"map and mask must be HxW arrays (got {pred.shape} and {gt.shape})")
    if pred.shape != gt.shape:
        raise InputError(name, f"map is {pred.shape[1]}x{pred.shape[0]} but mask is {gt.shape[1]}x{gt.shape[0]}")
    if pred.size == 0:
        raise InputError(name, "empty map")
    if not np.issubdtype(pred.dtype, np.floating):
        raise InputError(name, f"map must be float in [0,1] (got dtype {pred.dtype})")
    pred = pred.astype(np.float32, copy=False)
    lo, hi = float(pred.min()), float(pred.max())
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise InputError(name, "map contains NaN or Inf")
    if lo < 0.0 or hi > 1.0:
        raise InputError(name, f"map values outside [0,1] (min {lo:.4g}, max {hi:.4g})")
    if gt.dtype != np.bool_:
        # max() on unsigned masks is one fast pass; np.isin would cost as much as all the metrics together.
        binary = gt.max() <= 1 if np.issubdtype(gt.dtype, np.unsignedinteger) else ((gt == 0) | (gt == 1)).all()
        if not binary:
            raise InputError(name, "mask must contain only 0 and 1 (1 = blurred)")
        gt = gt != 0
    return pred, gt


# ---------------------------------------------------------------- counts -> scores

def precision_recall_f(tp, fp, n_pos, beta2: float = BETA2):
    """Precision, recall and F from counts (scalars or arrays), with the module's edge conventions."""
    tp = np.asarray(tp, dtype=np.float64)
    fp = np.asarray(fp, dtype=np.float64)
    n_pos = np.asarray(n_pos, dtype=np.float64)
    pred_pos = tp + fp
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(pred_pos > 0, tp / np.maximum(pred_pos, 1), 1.0)
        recall = np.where(n_pos > 0, tp / np.maximum(n_pos, 1), 1.0)
        denom = beta2 * precision + recall
        f = np.where(denom > 0, (1 + beta2) * precision * recall / np.where(denom > 0, denom, 1), 0.0)
    return precision, recall, f


def _binary_counts(pos_pred: np.ndarray, gt: np.ndarray) -> tuple[int, int, int]:
    tp = int(np.count_nonzero(pos_pred & gt))
    fp = int(np.count_nonzero(pos_pred)) - tp
    return tp, fp, int(np.count_nonzero(gt))


def _iou_from_counts(tp: int, fp: int, n_pos: int) -> float:
    union = n_pos + fp  # = TP + FN + FP
    return 1.0 if union == 0 else tp / union


def quantise(pred: np.ndarray) -> np.ndarray:
    """[0,1] map -> integer levels 0..255, the same rounding as a saved 8-bit PNG map."""
    return np.rint(pred * np.float32(255.0)).astype(np.intp)


def threshold_counts(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray, int, int]:
    """(TP[k], FP[k], n_pos, n_neg) at the 256 thresholds q >= k, from one bincount."""
    # Blurred pixels land in bins 256..511, sharp ones in 0..255: one pass separates the two histograms.
    # Built in float32 (exact for integers < 2^24) so there is a single conversion to integers.
    idx = pred * np.float32(255.0)
    np.rint(idx, out=idx)
    idx += gt * np.float32(N_THRESHOLDS)
    hist = np.bincount(idx.astype(np.intp).ravel(), minlength=2 * N_THRESHOLDS)
    neg_hist, pos_hist = hist[:N_THRESHOLDS], hist[N_THRESHOLDS:]
    tp = np.cumsum(pos_hist[::-1])[::-1]  # tp[k] = blurred pixels with q >= k
    fp = np.cumsum(neg_hist[::-1])[::-1]
    return tp, fp, int(tp[0]), int(fp[0])


# ---------------------------------------------------------------- single-image metrics

def adaptive_threshold(pred) -> float:
    """min(1.5 x mean(map), 1). A map that is all 0 gets threshold 0, so every pixel counts as predicted
    blurred -- the published protocol's behaviour, kept so numbers stay comparable."""
    return float(min(1.5 * float(np.mean(pred, dtype=np.float64)), 1.0))


def mae(pred, gt, name: str | None = None) -> float:
    pred, gt = check_pair(pred, gt, name)
    return float(np.mean(np.abs(pred.astype(np.float64) - gt), dtype=np.float64))


def f_beta(pred, gt, threshold: float = 0.5, beta2: float = BETA2, name: str | None = None) -> float:
    """F-beta of the mask ``map >= threshold``."""
    pred, gt = check_pair(pred, gt, name)
    tp, fp, n_pos = _binary_counts(pred >= threshold, gt)
    return float(precision_recall_f(tp, fp, n_pos, beta2)[2])


def f_adaptive(pred, gt, beta2: float = BETA2, name: str | None = None) -> float:
    pred, gt = check_pair(pred, gt, name)
    return f_beta(pred, gt, adaptive_threshold(pred), beta2)


def iou(pred, gt, threshold: float = 0.5, name: str | None = None) -> float:
    pred, gt = check_pair(pred, gt, name)
    return _iou_from_counts(*_binary_counts(pred >= threshold, gt))


def f_curve(pred, gt, beta2: float = BETA2, name: str | None = None) -> np.ndarray:
    """F-beta at the 256 thresholds (index k = threshold k/255 on the 8-bit map)."""
    pred, gt = check_pair(pred, gt, name)
    tp, fp, n_pos, _ = threshold_counts(pred, gt)
    return precision_recall_f(tp, fp, n_pos, beta2)[2]


def max_f(pred, gt, beta2: float = BETA2, name: str | None = None) -> float:
    return float(f_curve(pred, gt, beta2, name).max())


def roc_auc_from_counts(tp: np.ndarray, fp: np.ndarray, n_pos: int, n_neg: int) -> tuple[np.ndarray, np.ndarray, float]:
    """(tpr, fpr, auc) from TP/FP at the 256 thresholds; the curve is closed with (0,0) and (1,1).
    AUC is NaN when there are no blurred or no sharp pixels (ROC undefined)."""
    if n_pos == 0 or n_neg == 0:
        nan = np.full(N_THRESHOLDS, np.nan)
        return nan, nan.copy(), float("nan")
    tpr = tp / n_pos
    fpr = fp / n_neg
    # Thresholds increase -> rates decrease; append the "nothing positive" corner (0,0) and the
    # "everything positive" corner (1,1) (already present at k=0, harmless to repeat).
    x = np.concatenate(([1.0], fpr, [0.0]))[::-1]
    y = np.concatenate(([1.0], tpr, [0.0]))[::-1]
    auc = float(np.sum((x[1:] - x[:-1]) * (y[1:] + y[:-1]) / 2.0))
    return tpr, fpr, auc


def auc_roc(pred, gt, name: str | None = None) -> float:
    pred, gt = check_pair(pred, gt, name)
    tp, fp, n_pos, n_neg = threshold_counts(pred, gt)
    return roc_auc_from_counts(tp, fp, n_pos, n_neg)[2]


INVERTED_AUC = 0.3  # a per-image ROC AUC below this: the mask agrees far better with the map inverted


def inverted_images(per_image: list[dict]) -> list[str]:
    """Names of the images whose mask looks inverted against the map (per-image AUC < INVERTED_AUC)."""
    return [r.get("name", f"#{i}") for i, r in enumerate(per_image) if r.get("auc", float("nan")) < INVERTED_AUC]


def image_metrics(pred, gt, name: str | None = None) -> dict:
    """All per-image numbers for one pair (what Evaluator.update records)."""
    ev = Evaluator(keep_per_image=True)
    ev.update(pred, gt, name=name)
    rec = dict(ev.per_image[0])
    rec["auc_roc"] = ev.summary()["auc_roc"]
    return rec


# ---------------------------------------------------------------- dataset accumulator

class Evaluator:
    """Accumulates maps and masks one image at a time; memory is O(256) per image at most.

    ``update(pred, gt, name=None)``, then ``summary()`` (dict of numbers + ``protocols``) and ``curves()``.
    """

    def __init__(self, beta2: float = BETA2, keep_per_image: bool = True):
        self.beta2 = beta2
        self.keep_per_image = keep_per_image
        self.reset()

    def reset(self) -> None:
        self.n = 0
        self.per_image: list[dict] = []
        self._sum = dict(mae=0.0, f_beta=0.0, f_adaptive=0.0, max_f_per_image=0.0, iou=0.0, nll=0.0)
        self._f_two_class_sum = 0.0
        self._n_two_class = 0
        self._p_sum = np.zeros(N_THRESHOLDS)
        self._r_sum = np.zeros(N_THRESHOLDS)
        self._f_sum = np.zeros(N_THRESHOLDS)
        self._tp = np.zeros(N_THRESHOLDS, dtype=np.int64)  # pooled over all pixels, for the ROC
        self._fp = np.zeros(N_THRESHOLDS, dtype=np.int64)
        self._n_pos = 0
        self._n_neg = 0

    def update(self, pred, gt, name: str | None = None) -> dict:
        """Add one pair; returns its per-image numbers. Raises InputError (naming ``name``) on bad input,
        leaving the accumulated state untouched."""
        pred, gt = check_pair(pred, gt, name)
        b2 = self.beta2
        rec = {"mae": float(np.mean(np.abs(pred - gt), dtype=np.float64))}
        clipped = np.clip(pred, NLL_EPS, 1 - NLL_EPS)
        rec["nll"] = float(-np.mean(np.log(np.where(gt, clipped, 1 - clipped)), dtype=np.float64))
        fixed = pred >= 0.5
        tp05, fp05, n_pos = _binary_counts(fixed, gt)
        rec["f_beta"] = float(precision_recall_f(tp05, fp05, n_pos, b2)[2])
        rec["iou"] = _iou_from_counts(tp05, fp05, n_pos)
        thr = adaptive_threshold(pred)
        rec["adaptive_threshold"] = thr
        rec["f_adaptive"] = float(precision_recall_f(*_binary_counts(pred >= thr, gt), b2)[2])
        tp, fp, n_pos, n_neg = threshold_counts(pred, gt)
        p, r, f = precision_recall_f(tp, fp, n_pos, b2)
        rec["max_f_per_image"] = float(f.max())
        # per-image ranking: far below 0.5 means this mask agrees with the map inverted (a polarity slip)
        rec["auc"] = roc_auc_from_counts(tp, fp, n_pos, n_neg)[2]
        rec["blurred_fraction_gt"] = n_pos / gt.size

        self.n += 1
        for k in self._sum:
            self._sum[k] += rec[k]
        if TWO_CLASS[0] < rec["blurred_fraction_gt"] < TWO_CLASS[1]:
            self._f_two_class_sum += rec["f_beta"]
            self._n_two_class += 1
        self._p_sum += p
        self._r_sum += r
        self._f_sum += f
        self._tp += tp
        self._fp += fp
        self._n_pos += n_pos
        self._n_neg += n_neg
        if name is not None:
            rec = {"name": name, **rec}
        if self.keep_per_image:
            self.per_image.append(rec)
        return rec

    def summary(self) -> dict:
        """Dataset numbers (NaN when undefined, e.g. before any update) plus ``protocols``."""
        n = self.n
        out: dict = {"n_images": n}
        mean = (lambda k: self._sum[k] / n) if n else (lambda k: float("nan"))
        out["mae"] = mean("mae")
        out["f_beta"] = mean("f_beta")
        out["f_adaptive"] = mean("f_adaptive")
        out["max_f"] = float((self._f_sum / n).max()) if n else float("nan")
        out["max_f_threshold"] = float(THRESHOLDS[int(np.argmax(self._f_sum))]) if n else float("nan")
        out["max_f_per_image"] = mean("max_f_per_image")
        out["auc_roc"] = roc_auc_from_counts(self._tp, self._fp, self._n_pos, self._n_neg)[2]
        out["iou"] = mean("iou")
        out["f_beta_two_class"] = (self._f_two_class_sum / self._n_two_class if self._n_two_class
                                   else float("nan"))
        out["n_two_class"] = self._n_two_class
        out["nll"] = mean("nll")
        out["beta2"] = self.beta2
        out["protocols"] = dict(PROTOCOLS, max_f_threshold="threshold (k/255 on the 8-bit map) where max_f is reached")
        return out

    def curves(self) -> dict:
        """Numpy arrays over the 256 thresholds: precision, recall and f are per-image values averaged
        over images (the curve max_f is taken from); tpr and fpr pool all pixels (the ROC of auc_roc)."""
        n = max(self.n, 1)
        tpr, fpr, _ = roc_auc_from_counts(self._tp, self._fp, self._n_pos, self._n_neg)
        return {
            "thresholds": THRESHOLDS.copy(),
            "precision": self._p_sum / n,
            "recall": self._r_sum / n,
            "f": self._f_sum / n,
            "tpr": tpr,
            "fpr": fpr,
        }
