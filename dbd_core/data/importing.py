"""Import of public DBD layouts (CUHK, DUT, CTCUG: an image folder and a gt folder matched by file
stem) into a dbd dataset, and the sanity check behind ``dbd dataset check``.

The gt polarity of a public set is never guessed: the caller states it (blur-white = 255 means
blurred; sharp-white = 255 means in focus), and ``check_dataset`` can compare the stored masks with
a model's prediction to flag a declaration that looks inverted.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from dbd_core.data.formats import DEFAULT_CREATED_BY, CancelFn, ProgressFn, check_name, open_dataset_reader, open_writer
from dbd_core.errors import InputError
from dbd_core.images import POLARITIES, expand_paths, read_image, read_mask
from dbd_core.metrics import INVERTED_AUC, auc_roc


@dataclass
class ImportReport:
    out: Path
    imported: list[str] = field(default_factory=list)
    nonbinary: list[str] = field(default_factory=list)  # grey-level gts thresholded at 128
    resized: list[str] = field(default_factory=list)  # gts resized (nearest) to their image
    images_without_gt: list[str] = field(default_factory=list)
    gt_without_image: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # one line per sample that could not be imported
    cancelled: bool = False

    @property
    def ok(self) -> bool:
        return not self.errors and not self.cancelled

    def lines(self) -> list[str]:
        out = [f"imported {len(self.imported)} samples -> {self.out}"]
        if self.nonbinary:
            out.append(f"{len(self.nonbinary)} gt masks were not binary (grey levels) and were thresholded at 128: "
                       + _names(self.nonbinary))
        if self.resized:
            out.append(f"{len(self.resized)} gt masks resized (nearest) to their image size: " + _names(self.resized))
        if self.images_without_gt:
            out.append(f"{len(self.images_without_gt)} images without a gt: " + _names(self.images_without_gt))
        if self.gt_without_image:
            out.append(f"{len(self.gt_without_image)} gts without an image: " + _names(self.gt_without_image))
        out += [f"error: {e}" for e in self.errors]
        if self.cancelled:
            out.append("cancelled: nothing written")
        return out


def _names(names: list[str], limit: int = 20) -> str:
    more = f" ... (+{len(names) - limit} more)" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def _by_stem(paths: list[Path], errors: list[str]) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for p in paths:
        if p.stem in out:
            errors.append(f"{p}: same name as {out[p.stem].name}; cannot tell which one to use (skipped)")
            continue
        out[p.stem] = p
    return out


def import_layout(images_dir: str | os.PathLike, gt_dir: str | os.PathLike, gt_polarity: str,
                  out: str | os.PathLike, resize_gt: str | None = None, split: str | None = None,
                  gt_suffix: str = "", include_unlabelled: bool = False, created_by: str = DEFAULT_CREATED_BY,
                  overwrite: bool = False, progress: ProgressFn | None = None, cancel: CancelFn | None = None,
                  ) -> ImportReport:
    """Import ``images_dir/NAME.*`` + ``gt_dir/NAME<gt_suffix>.*`` into a folder or .h5 dataset.

    Bad samples are reported in ``report.errors`` and skipped; the rest are written.
    ``resize_gt="nearest"`` resizes a gt of another size to its image instead of refusing it.
    """
    if gt_polarity not in POLARITIES:
        raise InputError(gt_dir, f"gt polarity must be stated: one of {', '.join(POLARITIES)} (got {gt_polarity!r})")
    if resize_gt not in (None, "nearest"):
        raise InputError(None, f"unknown resize_gt {resize_gt!r} (only 'nearest' keeps masks binary)")
    for d in (images_dir, gt_dir):
        if not Path(d).is_dir():
            raise InputError(d, "no such folder")
    report = ImportReport(Path(out))
    images = _by_stem(expand_paths([images_dir]), report.errors)
    gts = _by_stem(expand_paths([gt_dir]), report.errors)
    gt_for = {stem: gts.get(stem + gt_suffix) for stem in images}
    used = {p for p in gt_for.values() if p is not None}
    report.gt_without_image = sorted(p.name for p in gts.values() if p not in used)
    report.images_without_gt = sorted(images[s].name for s, g in gt_for.items() if g is None)
    todo = [s for s in sorted(images) if gt_for[s] is not None or include_unlabelled]
    with open_writer(out, created_by=created_by, overwrite=overwrite) as w:
        for i, stem in enumerate(todo):
            if cancel is not None and cancel():
                w.cancel()
                report.cancelled = True
                report.imported.clear()
                return report
            img_path, gt_path = images[stem], gt_for[stem]
            try:
                try:  # the photo's stem becomes the sample's name: a refused one names the photo
                    check_name(stem)
                except InputError as e:
                    raise InputError(img_path, str(e)) from None
                mask = None
                if gt_path is not None:
                    h, w_ = read_image(img_path).shape[:2]
                    mask, was_binary = read_mask(gt_path, gt_polarity)
                    if mask.shape != (h, w_):
                        if resize_gt != "nearest":
                            raise InputError(gt_path, f"sample {stem}: gt is {mask.shape[1]}x{mask.shape[0]} but its "
                                             f"image is {w_}x{h} (use --resize-gt nearest to resize it)")
                        mask = cv2.resize(mask, (w_, h), interpolation=cv2.INTER_NEAREST)
                        report.resized.append(stem)
                    if not was_binary:
                        report.nonbinary.append(stem)
                prov = {"source": str(img_path), "gt_source": None if gt_path is None else str(gt_path),
                        "source_gt_polarity": gt_polarity, "model": None, "threshold": None}
                w.add(stem, img_path, mask, split=split, provenance=prov)
                report.imported.append(stem)
            except InputError as e:
                report.errors.append(str(e))
            if progress is not None:
                progress(i + 1, len(todo))
    return report


@dataclass
class CheckReport:
    path: Path
    gt_polarity: str
    n_samples: int = 0
    n_labelled: int = 0
    splits: dict = field(default_factory=dict)
    blurred_fraction: float | None = None  # over all labelled pixels
    mean_image_blurred_fraction: float | None = None  # mean of per-image fractions
    all_blurred: list[str] = field(default_factory=list)
    all_sharp: list[str] = field(default_factory=list)
    model: str | None = None
    # Mean over images of the ROC AUC of the model's map against the mask: 1 = the model ranks every
    # pixel marked blurred as blurrier than every pixel marked sharp, 0.5 = no relation, 0 = inverted.
    # Threshold-free on purpose: a model biased towards "blurred" everywhere (LBP often is) still ranks.
    model_auc: float | None = None
    n_compared: int = 0  # images with both classes present (uniform masks can't be ranked)
    # Images whose mask agrees far better with the map inverted (AUC < metrics.INVERTED_AUC, the cut-off
    # `dbd eval` names them by too): a weak model's 0.45 on one hard photo is not a polarity hint.
    n_inverted_better: int = 0
    inverted_better: list[str] = field(default_factory=list)  # their names
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        bad = len(self.errors)
        out = [f"{self.path}: {self.n_samples} samples ({self.n_labelled} labelled, "
               f"{self.n_samples - self.n_labelled - bad} unlabelled" + (f", {bad} unreadable" if bad else "") +
               f"), gt_polarity {self.gt_polarity}",
               "splits: " + ", ".join(f"{k or 'none'} {v}" for k, v in sorted(self.splits.items(), key=lambda kv: str(kv[0])))]
        if self.blurred_fraction is not None:
            out.append(f"blurred pixels: {self.blurred_fraction:.3f} of all labelled pixels; "
                       f"mean per image {self.mean_image_blurred_fraction:.3f}")
        if self.all_blurred:
            out.append(f"{len(self.all_blurred)} masks entirely blurred: " + _names(self.all_blurred))
        if self.all_sharp:
            out.append(f"{len(self.all_sharp)} masks entirely sharp: " + _names(self.all_sharp))
        if self.model_auc is not None:
            out.append(f"model {self.model} vs masks: mean per-image ROC AUC {self.model_auc:.3f} (1 = agrees, "
                       f"0.5 = unrelated, 0 = inverted); {self.n_inverted_better} of {self.n_compared} images agree "
                       f"far better inverted (AUC < {INVERTED_AUC})" + (f": {_names(self.inverted_better)}" if self.inverted_better else ""))
        out += [f"warning: {w}" for w in self.warnings] + [f"error: {e}" for e in self.errors]
        return out


def check_dataset(path: str | os.PathLike, predict: Callable[[np.ndarray], np.ndarray] | None = None,
                  model_name: str | None = None, max_side: int = 512,
                  progress: ProgressFn | None = None) -> CheckReport:
    """Read every sample (reporting unreadable ones), measure the blurred fraction, and, given a
    ``predict(rgb) -> map`` function, warn when the declared polarity looks inverted against it."""
    with open_dataset_reader(path) as r:
        rep = CheckReport(Path(path), r.gt_polarity, n_samples=len(r), model=model_name)
        blurred = total = 0
        fractions, aucs, below_half = [], [], 0
        for i, name in enumerate(r.names):
            try:
                rgb, mask, meta = r.get(name)
            except InputError as e:
                rep.errors.append(str(e))
                continue
            finally:
                if progress is not None:
                    progress(i + 1, len(r))
            rep.splits[meta["split"]] = rep.splits.get(meta["split"], 0) + 1
            if mask is None:
                continue
            rep.n_labelled += 1
            b = int(mask.sum())
            blurred, total = blurred + b, total + mask.size
            fractions.append(b / mask.size)
            if b == mask.size:
                rep.all_blurred.append(name)
            elif b == 0:
                rep.all_sharp.append(name)
            if predict is not None and 0 < b < mask.size:
                rgb_s, mask_s = _shrink(rgb, mask, max_side)
                # The same AUC `dbd eval` reports, so both name the same images.
                auc = auc_roc(np.clip(np.asarray(predict(rgb_s), dtype=np.float32), 0, 1), mask_s, name)
                if np.isfinite(auc):
                    aucs.append(auc)
                    below_half += auc < 0.5
                    if auc < INVERTED_AUC:
                        rep.n_inverted_better += 1
                        rep.inverted_better.append(name)
        if total:
            rep.blurred_fraction = blurred / total
            rep.mean_image_blurred_fraction = float(np.mean(fractions))
        if aucs:
            rep.model_auc, rep.n_compared = float(np.mean(aucs)), len(aucs)
            if rep.model_auc < 0.5 and below_half > len(aucs) / 2:
                rep.warnings.append(
                    f"the stored masks look inverted relative to {model_name or 'the model'} (mean AUC "
                    f"{rep.model_auc:.2f}; {below_half}/{len(aucs)} images agree better inverted); "
                    "if the source gts mark in-focus pixels white, re-import with the other --gt-polarity")
        if rep.n_labelled and len(rep.all_blurred) + len(rep.all_sharp) == rep.n_labelled:
            rep.warnings.append("every mask is uniform (all blurred or all sharp): check the gt files and polarity")
    return rep


def _shrink(rgb: np.ndarray, mask: np.ndarray, max_side: int):
    """The model's check runs at a modest size: polarity shows at any scale and big photos are slow."""
    h, w = mask.shape
    s = max_side / max(h, w)
    if s >= 1:
        return rgb, mask
    size = (max(2, round(w * s)), max(2, round(h * s)))
    return (cv2.resize(rgb, size, interpolation=cv2.INTER_AREA),
            cv2.resize(mask, size, interpolation=cv2.INTER_NEAREST))
