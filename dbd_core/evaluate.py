"""Evaluation runs behind ``dbd eval``: pair photos, masks and maps, score them, report what went wrong.

Sources of ground truth: a mask folder (``gt_dir`` + the folder's polarity, matched by file stem) or a
dataset in the dbd formats (folder with dataset.json or .h5, which states its own polarity).
Sources of maps: a Predictor (any model, timed per image) or a folder of saved maps: PNG (255 = blurred)
or .npy (float [0,1], 1 = blurred), as ``dbd predict`` writes them.
Bad files are collected as one-line messages and the run goes on; ``EvalReport.ok`` is False then.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from dbd_core.errors import DBDError, InputError
from dbd_core.images import IMAGE_EXTENSIONS, decode_file, expand_paths, read_image, read_mask
from dbd_core.metrics import Evaluator

ProgressFn = Callable[[int, int, str], None]  # (done, total, name)


@dataclass
class EvalItem:
    name: str
    image: Path | None = None  # photo (needed with a predictor)
    gt: Path | None = None  # mask file (mask-folder mode)
    pred: Path | None = None  # map file (--pred mode)


@dataclass
class EvalReport:
    summary: dict
    curves: dict
    per_image: list[dict]
    errors: list[str] = field(default_factory=list)
    unmatched: list[str] = field(default_factory=list)  # "<file>: no mask" style lines
    nonbinary_masks: list[str] = field(default_factory=list)
    skipped_unlabelled: int = 0
    ms_per_image: float | None = None
    seconds: float = 0.0
    info: dict = field(default_factory=dict)  # model, weights, gt polarity, dataset paths

    @property
    def ok(self) -> bool:
        return not self.errors and not self.unmatched

    def to_json(self) -> dict:
        s = {k: v for k, v in self.summary.items() if k != "protocols"}
        doc = {**s, "ms_per_image": self.ms_per_image, "seconds": round(self.seconds, 3),
               "protocols": dict(self.summary["protocols"],
                                 ms_per_image="wall-clock milliseconds of Predictor.predict per photo "
                                              "(resize, network, guided upsampling; excludes file reading)"),
               **self.info,
               "nonbinary_masks": {"count": len(self.nonbinary_masks), "files": self.nonbinary_masks,
                                   "handling": "grey levels (neither 0/255 nor 0/1): thresholded at 128"},
               "skipped_unlabelled": self.skipped_unlabelled,
               "errors": self.errors, "unmatched": self.unmatched, "per_image": self.per_image}
        return _json_safe(doc)


def _json_safe(obj):
    """NaN/Inf -> None (JSON has no NaN) and numpy scalars -> Python numbers."""
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        return None if not math.isfinite(float(obj)) else float(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


# ---------------------------------------------------------------- pairing

MAP_EXTENSIONS = (*IMAGE_EXTENSIONS, ".npy")


def index_by_stem(folder: str | os.PathLike, what: str, extensions: tuple[str, ...] = IMAGE_EXTENSIONS
                  ) -> tuple[dict[str, Path], list[str]]:
    """{stem: file} of the files in ``folder`` with ``extensions``; two files sharing a stem are an error
    line each, and so is an entry that cannot be read (a link to nowhere) or a folder that cannot be listed."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(folder, f"{what} folder not found" if not folder.exists() else f"{what} path is not a folder")
    index: dict[str, Path] = {}
    refused: list[tuple[Path, str]] = []
    files = expand_paths([folder], problems=refused, extensions=extensions, noun=f"{what} files")
    problems = [str(InputError(p, reason)) for p, reason in refused]
    for p in files:
        if p.stem in index:
            problems.append(str(InputError(p, f"same name as {index[p.stem].name}; cannot tell which {what} to use")))
        else:
            index[p.stem] = p
    return index, problems


def pair_folders(gt_dir, images_dir=None, pred_dir=None) -> tuple[list[EvalItem], list[str], list[str]]:
    """Match masks with photos and/or maps by file stem -> (items, unmatched lines, duplicate-name errors).

    Masks are the reference set: each photo or map without a mask, and each mask without its photo
    (or map), is reported by name."""
    masks, errors = index_by_stem(gt_dir, "mask")
    unmatched: list[str] = []
    images = preds = None
    if images_dir is not None:
        images, e = index_by_stem(images_dir, "image")
        errors += e
        unmatched += [f"{images[s]}: no mask for this image in {gt_dir}" for s in sorted(images.keys() - masks.keys())]
    if pred_dir is not None:
        preds, e = index_by_stem(pred_dir, "map", MAP_EXTENSIONS)
        errors += e
        unmatched += [f"{preds[s]}: no mask for this map in {gt_dir}" for s in sorted(preds.keys() - masks.keys())]
    items = []
    for stem in sorted(masks):
        if images is not None and stem not in images:
            unmatched.append(f"{masks[stem]}: no image for this mask in {images_dir}")
            continue
        if preds is not None and stem not in preds:
            unmatched.append(f"{masks[stem]}: no map for this mask in {pred_dir}")
            continue
        items.append(EvalItem(stem, images[stem] if images else None, masks[stem], preds[stem] if preds else None))
    return items, unmatched, errors


def read_map(path: str | os.PathLike) -> np.ndarray:
    """A saved map -> float32 HxW in [0,1], 1 = blurred: an image (8- or 16-bit grayscale, 255/65535 =
    blurred) or a .npy array (float HxW in [0,1], 1 = blurred, as ``dbd predict --format npy`` writes)."""
    if Path(path).suffix.lower() == ".npy":
        return read_npy_map(path)
    m = decode_file(Path(path), cv2.IMREAD_GRAYSCALE | cv2.IMREAD_ANYDEPTH)
    scale = 65535.0 if m.dtype == np.uint16 else 255.0
    if m.dtype not in (np.uint8, np.uint16):
        raise InputError(path, f"unsupported map sample type {m.dtype}; expected 8- or 16-bit grayscale")
    return m.astype(np.float32) / np.float32(scale)


def read_npy_map(path: str | os.PathLike) -> np.ndarray:
    """A .npy map (float HxW, every value in [0,1], 1 = blurred) -> float32; InputError naming the file."""
    path = Path(path)
    try:
        m = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise InputError(path, "no such file") from None
    except IsADirectoryError:
        raise InputError(path, "is a folder, not a map") from None
    except OSError as e:
        raise InputError(path, f"cannot read ({e.strerror})" if e.strerror else
                         f"not a readable .npy map ({str(e)[:120]})") from None
    except ValueError as e:  # a pickled object array, or not an .npy file at all
        raise InputError(path, f"not a readable .npy map ({str(e)[:120]})") from None
    if not isinstance(m, np.ndarray):
        raise InputError(path, "not a readable .npy map (an .npz archive, not one array)")
    if not np.issubdtype(m.dtype, np.floating):
        raise InputError(path, f"map is {m.dtype}; a .npy map must be float in [0,1] (1 = blurred)")
    if m.ndim != 2 or 0 in m.shape:
        raise InputError(path, f"map has shape {m.shape}; a .npy map must be HxW")
    if not np.isfinite(m).all():
        raise InputError(path, "map contains NaN or Inf")
    lo, hi = float(m.min()), float(m.max())
    if lo < 0.0 or hi > 1.0:
        raise InputError(path, f"map values span [{lo:.4g}, {hi:.4g}]; a .npy map must be in [0,1] (1 = blurred)")
    return m.astype(np.float32, copy=False)


def predictor_info(predictor) -> dict:
    from dbd_core.weights import sha256_file

    source = getattr(predictor, "source", None)
    sha = sha256_file(source) if source and Path(source).is_file() else None
    return {"model": getattr(predictor, "name", str(predictor)), "weights": source, "weights_sha256": sha,
            "tta": getattr(predictor, "tta", "none")}


# ---------------------------------------------------------------- the run

def evaluate(items: list[EvalItem] | None = None, *, gt_polarity: str | None = None, predictor=None,
             dataset=None, pred_dir: str | os.PathLike | None = None, limit: int | None = None,
             progress: ProgressFn | None = None, cancel: Callable[[], bool] | None = None) -> EvalReport:
    """Score maps against masks.

    Either ``items`` from :func:`pair_folders` (masks read with ``gt_polarity``), or ``dataset`` (an open
    dbd dataset reader; unlabelled samples are skipped and counted). Maps come from ``predictor`` or from
    the items' ``pred`` files / ``pred_dir`` (dataset mode, matched by sample name).
    """
    has_map_files = pred_dir is not None or any(it.pred is not None for it in items or [])
    if predictor is not None and has_map_files:
        raise ValueError("give one source of maps: a predictor or map files, not both")
    if predictor is None and (pred_dir is None if dataset is not None else any(it.pred is None for it in items or [])):
        raise ValueError("no source of maps: give a predictor or map files")
    if (dataset is None) == (items is None):
        raise ValueError("give either items or a dataset")
    ev = Evaluator(keep_per_image=True)
    errors: list[str] = []
    unmatched: list[str] = []
    nonbinary: list[str] = []
    skipped = 0
    pred_times: list[float] = []
    preds_index = None
    if dataset is not None:
        if pred_dir is not None:
            preds_index, dup = index_by_stem(pred_dir, "map", MAP_EXTENSIONS)
            errors += dup
            names = set(dataset.names)
            unmatched += [f"{preds_index[s]}: no sample named {s!r} in {dataset.path}"
                          for s in sorted(preds_index.keys() - names)]
        work = sorted(dataset.names)  # by name, as in folder mode (items come sorted by stem)
    else:
        work = list(items or [])
    if limit is not None:
        work = work[:limit]
    t_start = time.perf_counter()
    for i, entry in enumerate(work):
        if cancel is not None and cancel():
            errors.append("evaluation cancelled")
            break
        name = entry if isinstance(entry, str) else entry.name
        try:
            if dataset is not None:
                pair = _dataset_pair(dataset, name, predictor, preds_index, pred_dir, pred_times)
                if pair is None:
                    skipped += 1
                    continue
                pred, gt, label = pair
                if not _dataset_mask_is_binary(dataset, name):
                    nonbinary.append(label)
            else:
                pred, gt, label, was_binary = _folder_pair(entry, gt_polarity, predictor, pred_times)
                if not was_binary:
                    nonbinary.append(str(entry.gt))
            ev.update(pred, gt, name=label)
            ev.per_image[-1]["name"] = name
        except DBDError as e:
            if isinstance(e, InputError) and e.path is None:
                e = InputError(name, e.reason)
            errors.append(str(e))
        finally:
            if progress is not None:
                progress(i + 1, len(work), name)
    seconds = time.perf_counter() - t_start
    info = {"gt_polarity": getattr(dataset, "gt_polarity", gt_polarity)}
    if predictor is not None:
        info.update(predictor_info(predictor))
    else:
        info.update({"model": None, "weights": None, "weights_sha256": None})
    ms = 1000.0 * float(np.mean(pred_times)) if pred_times else None
    return EvalReport(ev.summary(), ev.curves(), ev.per_image, errors, unmatched, nonbinary, skipped, ms,
                      seconds, info)


def _timed_predict(predictor, rgb, times: list[float]) -> np.ndarray:
    t = time.perf_counter()
    pred = predictor.predict(rgb)
    times.append(time.perf_counter() - t)
    return pred


def _folder_pair(item: EvalItem, polarity, predictor, times):
    if predictor is not None:
        rgb = read_image(item.image)
        gt, was_binary = read_mask(item.gt, polarity, expect_shape=rgb.shape[:2])
        return _timed_predict(predictor, rgb, times), gt, str(item.image), was_binary
    gt, was_binary = read_mask(item.gt, polarity)
    pred = read_map(item.pred)
    if pred.shape != gt.shape:
        raise InputError(item.pred, f"map is {pred.shape[1]}x{pred.shape[0]} but its mask {item.gt.name} is "
                                    f"{gt.shape[1]}x{gt.shape[0]}")
    return pred, gt, str(item.pred), was_binary


def _dataset_mask_is_binary(dataset, name) -> bool:
    """Whether a sample's stored mask was 0/255 (or 0/1). A folder dataset can hold masks put there by hand,
    which are thresholded at 128 on read; its reader tells (reading the mask again); .h5 masks are 0/1 by
    construction."""
    check = getattr(dataset, "mask_is_binary", None)
    return True if check is None else check(name) is not False


def _dataset_pair(dataset, name, predictor, preds_index, pred_dir, times):
    label = f"{dataset.path}: sample {name}"
    sample = dataset.sample(name)  # loads the mask only; the photo is decoded below if needed
    gt = sample.mask
    if gt is None:
        return None
    if predictor is not None:
        return _timed_predict(predictor, sample.decode(), times), gt, label
    if name not in preds_index:
        raise InputError(label, f"no map for this sample in {pred_dir}")
    pred = read_map(preds_index[name])
    if pred.shape != gt.shape:
        raise InputError(preds_index[name], f"map is {pred.shape[1]}x{pred.shape[0]} but sample {name}'s mask is "
                                            f"{gt.shape[1]}x{gt.shape[0]}")
    return pred, gt, str(preds_index[name])
