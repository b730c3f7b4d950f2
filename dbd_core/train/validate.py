"""Validation: metrics of a network on held-out items, with the product's protocols (``dbd_core.metrics``).

Two pipelines:

- ``evaluate``: training-time validation inside the loop (early stopping, kept weights). It scores the
  network's map of each validation *item* as the dataset serves it (a synthetic render, or a folder/HDF5
  photo resized to ``data.size``), without guided upsampling: cheap enough to run every few steps.
- ``evaluate_photos``: what ``dbd eval`` and the studio measure: each held-out photo at its full size through
  ``Predictor.predict`` (aspect kept at the working size, guided upsampling with the model card's
  ``inference.guided_radius``) against its full-size mask. The fine-tune's "before"/"after" metrics, its card
  and the studio's Adopt/Discard decision use it.

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

from dbd_core.metrics import Evaluator


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
    ev = Evaluator(keep_per_image=False)
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
    out = _numbers(ev)
    if losses:
        out["val_loss"] = float(np.mean(losses))
    return out


def _numbers(ev: Evaluator) -> dict:
    out = {k: v for k, v in ev.summary().items() if isinstance(v, (int, float))}
    if not out.get("n_two_class"):  # NaN would never compare better: no two-class render, no such score
        out.pop("f_beta_two_class", None)
    return out


def held_out_photos(dataset):
    """(name, full-size photo uint8 HxWx3, full-size mask uint8 {0,1}) of each labelled item of a validation
    set, one at a time. A folder/HDF5 dataset (a Subset of one, as the split gives) is read from the file at
    full size, as ``dbd eval --data`` reads it (never from the training cache); other datasets (in-memory
    items) give their items' pixels."""
    base, indices = dataset, None
    while hasattr(base, "indices") and hasattr(base, "dataset"):  # torch Subset(s)
        indices = [base.indices[i] for i in indices] if indices is not None else list(base.indices)
        base = base.dataset
    reader = getattr(base, "reader", None)
    if reader is not None and hasattr(base, "names"):
        raw = getattr(reader, "full", reader)  # past the ResizingCache
        for i in (indices if indices is not None else range(len(base.names))):
            name = base.names[i]
            sample = raw.sample(name)  # the mask; the photo is decoded below (as evaluate._dataset_pair)
            if sample.mask is not None:
                yield name, sample.decode(), sample.mask
        return
    for i in range(len(dataset)):
        it = dataset[i]
        if not bool(it.get("has_mask", True)):
            continue
        rgb = (it["image"].detach().cpu().float().clamp(0, 1).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        yield it.get("name") or f"#{i}", rgb, (it["mask"][0].cpu().numpy() > 0.5).astype(np.uint8)


def evaluate_photos(model, dataset, card: dict | None = None) -> dict:
    """Metrics of ``model`` on the held-out photos of ``dataset`` as ``dbd eval`` computes them: each photo's
    map from ``Predictor.from_model(model, card=card).predict`` (full size; the card's guided window) scored
    against its full-size mask by ``metrics.Evaluator``. ``n_nonfinite`` counts photos whose map held NaN or
    Inf (they are not scored; a caller must not keep such a network)."""
    from dbd_core.predict import Predictor

    predictor = Predictor.from_model(model, card=card or {})
    ev = Evaluator(keep_per_image=False)
    nonfinite = 0
    for name, rgb, mask in held_out_photos(dataset):
        pred = predictor.predict(rgb)
        if not np.isfinite(pred).all():
            nonfinite += 1
            continue
        ev.update(pred, mask, name=name)
    out = _numbers(ev)
    out["n_nonfinite"] = nonfinite
    return out
