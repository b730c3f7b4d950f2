"""Fine-tuning a model on a project's corrected photos: the one code path behind the studio's
Fine-tune action (and benchmarks/bench_finetune_gui.py).

The project's *done* photos and their saved masks are written as a dataset snapshot
(``<project>/work/finetune-data.h5``, original photo bytes + masks, via dbd_core.data.formats), so the
user can keep editing while the run trains on a fixed set. The samples are the ones File -> Export writes
(``annotate.export.project_samples``, with its provenance); a photo whose saved mask or file cannot be read
is named in a "skipped" event and left out, and the rest trains. Then the training engine's fine-tune mode
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


def _samples(store: ProjectStore, entries: list[PhotoEntry], errors: list[str]):
    """The snapshot's samples as File -> Export makes them (``annotate.export.project_samples``: provenance
    from ``seeded_with``, an unreadable saved mask named in ``errors`` and left out), one photo at a time: one
    mask in memory at a time, 12 MP masks add up."""
    import copy

    from dbd_core.annotate.export import project_samples

    view = copy.copy(store)  # the same project, seen one photo at a time
    for e in entries:
        view.photos = [e]
        yield from project_samples(view, only_done=True, errors=errors)


def project_finetune(store: ProjectStore, role: str, parent: str | Path, cancel=None, config: dict | None = None,
                     threads: int | None = None, min_photos: int = MIN_DONE_PHOTOS) -> Iterator[dict]:
    """Events: ``{"type": "export", "done": i, "total": n}`` while the snapshot is written, a
    ``{"type": "skipped", "message"}`` per photo left out of it (its saved mask or photo cannot be read), then
    the engine's events (check/skipped/start/step/val/checkpoint/cancelled/error/done; ``done.summary`` has
    output, before, after). Problems (too few usable photos, divergence) end in an "error" event."""
    from dbd_core.train.loop import _cancel_fn

    cancelled = _cancel_fn(cancel)
    run_dir = None
    try:
        entries = check_ready(store, min_photos)
        data = store.folder / DATA_FILE
        data.parent.mkdir(parents=True, exist_ok=True)
        left_out: list[str] = []
        ok = yield from _export(data, store, entries, cancelled, left_out)
        for line in left_out:  # named, left out; the rest trains
            yield {"type": "skipped", "step": None, "message": line}
        if cancelled():
            yield {"type": "cancelled", "step": 0, "checkpoint": None}
            return
        usable = len(entries) - len(left_out)
        if not ok or usable < min_photos:
            data.unlink(missing_ok=True)
            raise NotEnoughPhotos(
                f"fine-tuning needs at least {min_photos} photos marked done with a mask; this project has "
                f"{len(entries)}, of which {len(left_out)} could not be read ({'; '.join(left_out)}). "
                "Correct more masks and mark them done (Ctrl+Enter).")
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


def _export(data: Path, store, entries, cancelled, left_out: list[str]):
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
            # An unreadable mask (project_samples) or photo (write_samples) is named in left_out and
            # skipped; write_samples is False when it was cancelled or nothing was left to write.
            result["ok"] = write_samples(data, _samples(store, entries, left_out), created_by="dbd-studio fine-tune",
                                         total=len(entries), progress=lambda i, n: q.put((i, n)),
                                         cancel=cancelled, overwrite=True, skipped=left_out)
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
