"""An annotation project's masks as a labelled dataset: the studio's Export dialog and `dbd dataset export`
both go through here, so a project exports the same way with or without the GUI.

Samples keep the original photo bytes; masks are 1 = blurred (written blur-white by dbd_core.data.formats);
each sample's provenance says where its mask came from (the source and threshold it was seeded with, hand
edits, status).
"""

from __future__ import annotations

import os
from typing import Mapping

import numpy as np

from dbd_core.annotate.project import PhotoEntry, ProjectStore
from dbd_core.data.formats import Sample, write_samples
from dbd_core.errors import InputError


def export_candidates(store: ProjectStore, only_done: bool, masks: Mapping[str, np.ndarray] | None = None,
                      saved: bool = True) -> list[PhotoEntry]:
    """The photos an export would take, without reading a mask file (a dialog can ask "anything to export?"
    on the GUI thread): those with a mask in ``masks`` (held in memory, newer than the saved ones) or, with
    ``saved``, a mask file in the project. Photos that failed to load and, with ``only_done``, photos not
    marked done are left out."""
    masks = masks or {}
    return [e for e in store.photos if not e.error and (not only_done or e.status == "done")
            and (e.name in masks or (saved and store.mask_path(e).is_file()))]


def project_samples(store: ProjectStore, only_done: bool, masks: Mapping[str, np.ndarray] | None = None,
                    saved: bool = True, errors: list[str] | None = None) -> list[Sample]:
    """The export candidates as dataset samples, their masks read; a photo whose saved mask cannot be read
    is left out, with a line naming it appended to ``errors``."""
    masks = masks or {}
    out = []
    for e in export_candidates(store, only_done, masks, saved):
        if e.name in masks:
            mask = np.array(masks[e.name], copy=True)  # held by the GUI, which may paint on while this runs
        else:
            try:
                mask = store.load_mask(e)
            except InputError as err:  # one bad file: named, left out, the rest exported
                if errors is not None:
                    errors.append(f"{err} (photo {e.name} left out)")
                continue
            if mask is None:  # removed since the candidates were listed
                continue
        seed = e.seeded_with or {"source": e.source, "threshold": e.threshold}  # projects from before the field
        prov = {"source": str(store.resolve(e)), "model": e.models or None, "threshold": seed["threshold"],
                "mask_source": seed["source"], "hand_edited": e.hand_edited, "status": e.status,
                "tool": "dbd-studio"}
        out.append(Sample(e.name, image_path=store.resolve(e), mask=mask, provenance=prov))
    return out


def export_project(store: ProjectStore, path: str | os.PathLike, only_done: bool,
                   masks: Mapping[str, np.ndarray] | None = None, saved: bool = True, progress=None, cancel=None,
                   overwrite: bool = False, errors: list[str] | None = None) -> int:
    """Write the samples to ``path`` (a folder, or .h5); returns how many. Nothing is written when there is no
    sample (an empty dataset would only block the next export to the same place) or when ``cancel()`` turns
    true."""
    errors = [] if errors is None else errors
    samples = project_samples(store, only_done, masks, saved, errors)
    if not samples:
        return 0
    before = len(errors)
    ok = write_samples(path, samples, overwrite=overwrite, total=len(samples), progress=progress, cancel=cancel,
                       skipped=errors)
    return len(samples) - (len(errors) - before) if ok else 0
