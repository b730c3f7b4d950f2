"""Validation during training: metrics of the current network on held-out items.

Uses ``dbd_core.metrics.Evaluator`` (the product's protocols) when present; otherwise a minimal
MAE / F-beta (beta^2 = 0.3, threshold 0.5, per image) so training never depends on it.

Among the protocols' numbers, ``f_beta_two_class`` (metrics.TWO_CLASS): the F-beta of the renders that have
both classes (2-98 % blurred). Per-image F-beta scores a one-class render 1 or 0 by whether a single pixel falls on the
wrong side of 0.5, and the training renderer makes about a fifth of its renders (nearly) one class, so
F-beta over all renders rewards a network for clean one-class frames more than for finding boundaries.
Measured (240 new training-distribution renders, `dbd eval --data`): the second-stage teacher run raised
F-beta from 0.873 to 0.884, all of it on the 52 one-class renders (0.750 -> 0.846), while on the 188
two-class ones F-beta fell (0.907 -> 0.895) and MAE rose, as on the bench, which has no one-class renders
(MAE 0.109 -> 0.120). Selecting weights by the two-class number asks the question the bench asks.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader

BETA2 = 0.3


class _MiniEvaluator:
    """Per-image MAE and F-beta at a fixed 0.5 threshold, averaged (the D-DFFNet protocol)."""

    def __init__(self):
        self.mae, self.f = [], []

    def update(self, pred: np.ndarray, gt: np.ndarray) -> None:
        gt = gt.astype(bool)
        self.mae.append(float(np.abs(pred - gt).mean()))
        b = pred >= 0.5
        tp = float((b & gt).sum())
        prec = tp / max(b.sum(), 1)
        rec = tp / max(gt.sum(), 1)
        self.f.append((1 + BETA2) * prec * rec / max(BETA2 * prec + rec, 1e-12))

    def summary(self) -> dict:
        return {"n_images": len(self.mae), "mae": float(np.mean(self.mae)) if self.mae else float("nan"),
                "f_beta": float(np.mean(self.f)) if self.f else float("nan")}


def make_evaluator():
    try:
        from dbd_core.metrics import Evaluator
    except ImportError:
        return _MiniEvaluator()
    return Evaluator()


def _collate(items):
    from torch.utils.data import default_collate

    return default_collate([{k: v for k, v in it.items() if k != "name"} for it in items]) | \
        {"name": [it.get("name", "") for it in items]}


@torch.no_grad()
def evaluate(model, dataset, device, *, batch_size: int = 4, max_batches: int = 0, loss_fn=None) -> dict:
    """Metrics of ``model`` on the labelled items of ``dataset`` (+ ``val_loss`` if ``loss_fn`` given).
    The model is put in eval mode and returned to its previous mode."""
    was_training = model.training
    model.eval()
    ev = make_evaluator()
    losses = []
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=_collate)
    try:
        for i, batch in enumerate(loader):
            if max_batches and i >= max_batches:
                break
            keep = torch.as_tensor(batch["has_mask"], dtype=torch.bool).reshape(-1)
            if not keep.any():
                continue
            image = batch["image"][keep].to(device)
            mask = batch["mask"][keep].to(device)
            if loss_fn is not None:
                losses.append(loss_fn({"image": image, "mask": mask}))
            prob = torch.sigmoid(model(image).logits)[:, 0].cpu().numpy()
            for p, g in zip(prob, mask[:, 0].cpu().numpy()):
                ev.update(p.astype(np.float32), (g > 0.5).astype(np.uint8))
    finally:
        model.train(was_training)
    out = {k: v for k, v in ev.summary().items() if isinstance(v, (int, float))}
    if not out.get("n_two_class"):  # NaN would never compare better: no two-class render, no such score
        out.pop("f_beta_two_class", None)
    if losses:
        out["val_loss"] = float(np.mean(losses))
    return out
