"""Screening sharp source photos for defocus they already have.

Synthetic defocus labels every pixel of an in-focus layer "sharp". A source photo that already shows
natural defocus (a bird against a soft background, a portrait's bokeh) then teaches that real defocus is
sharp: exactly the wrong lesson for real photos. The reference protocol says to avoid such photos; this
module scores each photo by the share of its area a blur model (a network, or ``lbp``) maps as blurred
and writes a screen file that synthetic training can exclude photos by.

Screen file (JSON, written atomically)::

    {"format": "dbd-sharp-screen", "version": 1, "model": ..., "threshold": 0.5, "exclude_above": 0.05,
     "short_side": 384, "created_by": ..., "photos": [{"name": "BSDS500/images/train/1.jpg",
     "blurred_fraction": 0.01, "mean": 0.07, "excluded": false}, ...]}

``name`` is relative to the sharp folder (POSIX separators), so a screen made on one machine applies to
the same folder layout on another. ``blurred_fraction`` is the share of pixels whose map value (1 =
blurred) is above ``threshold``. Textureless areas (clear sky) also score as blurred with some models;
the exclusion then costs a landscape, which synthetic data can spare, not a wrong label.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from dbd_core.atomic import write_json
from dbd_core.errors import InputError

FORMAT = "dbd-sharp-screen"
VERSION = 1


def score_map(blur_map: np.ndarray, threshold: float = 0.5) -> dict:
    """Area share above ``threshold`` and mean of a map (float in [0, 1], 1 = blurred)."""
    m = np.asarray(blur_map, dtype=np.float32)
    return {"blurred_fraction": float((m > threshold).mean()), "mean": float(m.mean())}


def screen_source(source, predict: Callable[[np.ndarray], np.ndarray], *, threshold: float = 0.5,
                  exclude_above: float = 0.05, short_side: int = 384) -> Iterator[dict]:
    """One row per photo of ``source`` (a SharpPhotoSource): its score and whether it is excluded.
    A photo that cannot be read yields a row with ``error`` and is excluded (it could not be used anyway)."""
    for i in range(len(source)):
        name = source.relative_name(i)
        try:
            img, _ = source.load(i, short_side)
        except InputError as e:
            yield {"name": name, "error": str(e), "excluded": True}
            continue
        row = {"name": name, **score_map(predict(img), threshold)}
        row["excluded"] = row["blurred_fraction"] > exclude_above
        yield row


def write_screen(path: str | os.PathLike, rows: list[dict], *, model: str, threshold: float,
                 exclude_above: float, short_side: int, created_by: str, model_sha256: str | None = None) -> Path:
    """``model_sha256`` names the weights exactly: "teacher" means whichever teacher was shipped then."""
    doc = {"format": FORMAT, "version": VERSION, "model": model, "model_sha256": model_sha256, "threshold": threshold,
           "exclude_above": exclude_above, "short_side": short_side, "created_by": created_by,
           "polarity": "scores are of maps with 1 = blurred",
           "n_photos": len(rows), "n_excluded": sum(bool(r["excluded"]) for r in rows), "photos": rows}
    path = Path(path)
    write_json(path, doc)
    return path


def read_exclusions(path: str | os.PathLike) -> set[str]:
    """The photo names a screen file excludes (relative to its sharp folder)."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(path, "no such screen file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(path, f"not a readable screen file ({e})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or not isinstance(doc.get("photos"), list):
        raise InputError(path, f"not a {FORMAT} file")
    if doc.get("version", 0) > VERSION:
        raise InputError(path, f"screen file version {doc.get('version')} is newer than this dbd-studio reads")
    return {str(r["name"]) for r in doc["photos"] if isinstance(r, dict) and r.get("excluded")}


def at_native_scale(predictor) -> Callable[[np.ndarray], np.ndarray]:
    """A map function that runs ``predictor`` (a dbd_core.predict.Predictor) at the photo's own size.
    Synthetic training crops see source photos at about native scale, and blur is a matter of pixels at
    that scale: screening at a smaller working size would shrink the natural defocus out of sight."""

    def predict(img: np.ndarray) -> np.ndarray:
        return predictor.predict_small(img, work_size=max(img.shape[:2]))

    return predict
