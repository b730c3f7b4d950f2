"""Fine-tuning a model on a project's corrected photos: the one code path behind the studio's
Fine-tune action (and benchmarks/bench_finetune_gui.py).

The project's *done* photos and their saved masks are written as a dataset snapshot
(``<project>/work/finetune-data.h5``, original photo bytes + masks, via dbd_core.data.formats), so the
user can keep editing while the run trains on a fixed set. Then the training engine's fine-tune mode
runs from the parent weights and writes a candidate version into ``<project>/models/`` (never over the
parent); ``annotate.versions`` adopts or discards it. The engine's run folder (checkpoint) is removed
when the run ends: the studio does not resume runs, and a checkpoint per run would bloat the project.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Iterator

from dbd_core.annotate.project import PhotoEntry, ProjectStore
from dbd_core.annotate.versions import MODELS_DIR
from dbd_core.errors import DBDError

MIN_DONE_PHOTOS = 5  # fewer: the held-out part is one photo or none, and the metrics mean nothing
DATA_FILE = "work/finetune-data.h5"


class NotEnoughPhotos(DBDError):
    """Too few done photos with masks to fine-tune; the message says how many are needed."""


def done_entries(store: ProjectStore) -> list[PhotoEntry]:
    """Photos marked done that could be read and have a saved mask."""
    return [e for e in store.photos if e.status == "done" and not e.error and store.mask_path(e).is_file()]


def check_ready(store: ProjectStore, min_photos: int = MIN_DONE_PHOTOS) -> list[PhotoEntry]:
    entries = done_entries(store)
    if len(entries) < min_photos:
        raise NotEnoughPhotos(
            f"fine-tuning needs at least {min_photos} photos marked done with a mask; this project has "
            f"{len(entries)}. Correct more masks and mark them done (Ctrl+Enter).")
    return entries


def _samples(store: ProjectStore, entries: list[PhotoEntry]):
    from dbd_core.data.formats import Sample

    for e in entries:  # one mask in memory at a time: 12 MP masks add up
        mask = store.load_mask(e)
        yield Sample(e.name, image_path=store.resolve(e), mask=mask,
                     provenance={"source": str(store.resolve(e)), "threshold": e.threshold,
                                 "mask_source": e.source, "hand_edited": e.hand_edited, "tool": "dbd-studio"})


def project_finetune(store: ProjectStore, role: str, parent: str | Path, cancel=None, config: dict | None = None,
                     threads: int | None = None, min_photos: int = MIN_DONE_PHOTOS) -> Iterator[dict]:
    """Events: ``{"type": "export", "done": i, "total": n}`` while the snapshot is written, then the
    engine's events (start/step/val/checkpoint/cancelled/error/done; ``done.summary`` has output,
    before, after). Problems (too few photos, unreadable files, divergence) end in an "error" event."""
    from dbd_core.train.loop import _cancel_fn

    cancelled = _cancel_fn(cancel)
    run_dir = None
    try:
        entries = check_ready(store, min_photos)
        data = store.folder / DATA_FILE
        data.parent.mkdir(parents=True, exist_ok=True)
        ok = yield from _export(data, store, entries, cancelled)
        if not ok:
            yield {"type": "cancelled", "step": 0, "checkpoint": None}
            return
        from dbd_core.train.finetune import FinetuneJob, run_finetune

        job = FinetuneJob(data=data, model=str(parent), out_dir=store.folder / MODELS_DIR, config=config,
                          threads=threads, card={"role": role, "project": str(store.folder)})
        for ev in run_finetune(job, cancelled):
            if ev["type"] == "start":
                run_dir = ev.get("run_dir")
            if ev["type"] in ("done", "cancelled", "error"):
                _remove_run(run_dir)  # before the last event: a consumer may stop iterating there
                run_dir = None
            if ev["type"] == "done":
                ev["summary"]["role"] = role
            yield ev
    except DBDError as e:
        yield {"type": "error", "step": None, "message": str(e)}
    finally:
        _remove_run(run_dir)


def _remove_run(run_dir: str | None) -> None:
    if run_dir:
        shutil.rmtree(run_dir, ignore_errors=True)
        try:
            Path(run_dir).parent.rmdir()  # models/runs/, when no other run is in it
        except OSError:
            pass


def _export(data: Path, store, entries, cancelled):
    """Write the snapshot on a helper thread: write_samples reports progress through a callback, and a
    generator cannot yield from inside one. So the progress bar moves during the export, and Cancel
    is honoured between photos."""
    import queue
    import threading

    from dbd_core.data.formats import write_samples

    q: queue.Queue = queue.Queue()
    result: dict = {}

    def work():
        try:
            result["ok"] = write_samples(data, _samples(store, entries), created_by="dbd-studio fine-tune",
                                         total=len(entries), progress=lambda i, n: q.put((i, n)),
                                         cancel=cancelled, overwrite=True)
        except BaseException as e:  # handed to the generator's thread below
            result["error"] = e
        finally:
            q.put(None)

    t = threading.Thread(target=work, name="finetune-export", daemon=True)
    t.start()
    yield {"type": "export", "done": 0, "total": len(entries)}
    while (item := q.get()) is not None:
        yield {"type": "export", "done": item[0], "total": item[1]}
    t.join()
    if "error" in result:
        raise result["error"]
    return bool(result.get("ok"))
