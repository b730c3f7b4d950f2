"""Fine-tuning a trained network on the user's own labelled photos (``dbd finetune``).

Starts from the current weights, checks every sample of the data once (an unreadable one is named and left
out), holds out part of it (the dataset's own splits: ``test`` samples are never used, unmarked ones go to
val by a hash of their name), trains with the content loss and early stopping on the held-out metric the
recipe names (``val.score``, "mae" in the shipped recipes), keeping the best validated weights, and measures
the held-out photos before and after as ``dbd eval`` and the studio see them (full size, guided upsampling
with the parent card's window: ``validate.evaluate_photos``). Then it writes a NEW model version beside the
parent -- never over it -- with a card naming the parent (sha256), the data, the recipe and the metrics.
Nothing is written if the run is cancelled or fails, or if the result's held-out maps are not finite (a
checkpoint stays in the run folder).
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from torch.utils.data import Dataset

from dbd_core.errors import DBDError
from dbd_core.paths import configs_dir
from dbd_core.train.config import load_config, to_plain
from dbd_core.train.data import build_dataset, holdout_split, is_named_dataset, iter_check
from dbd_core.train.loop import Event, TrainJob, _cancel_fn, run_training
from dbd_core.train.validate import evaluate_photos


@dataclass
class FinetuneJob:
    data: str | Path                          # dataset folder or .h5
    model: str = "student"                    # "student" | "teacher" | a weights file
    out_dir: str | Path = "models"
    config: dict | None = None                # default: resources/configs/finetune_<arch>.toml
    device: str | None = None
    threads: int | None = None
    dataset: Dataset | None = None            # an already-open dataset (tests, the GUI's annotations)
    card: dict = field(default_factory=dict)


def parent_weights(model: str) -> Path:
    if model in ("student", "teacher"):
        from dbd_core.weights import require_shipped

        return require_shipped(model)
    return Path(model)


def next_version_path(out_dir: Path, stem: str) -> Path:
    """``<base>-ft<N>.pt`` with N one above any existing version in ``out_dir`` and above the parent's own
    number (a version of ``student-ft1`` is never called ``student-ft1`` again, wherever it is written)."""
    m = re.fullmatch(r"(.*)-ft(\d+)", stem)
    base, parent_n = (m.group(1), int(m.group(2))) if m else (stem, 0)
    taken = [int(m.group(1)) for p in out_dir.glob(f"{base}-ft*.pt") if (m := re.fullmatch(
        rf"{re.escape(base)}-ft(\d+)", p.stem))]
    return out_dir / f"{base}-ft{max(taken + [parent_n], default=0) + 1}.pt"


def default_config(arch: str) -> dict:
    name = "finetune_teacher.toml" if arch == "teacher" else "finetune_student.toml"
    return load_config(configs_dir() / name)


def run_finetune(job: FinetuneJob, cancel=None) -> Iterator[Event]:
    """Fine-tune, yielding the training loop's events; the final "done" event's summary carries the
    new version's path and the before/after metrics."""
    try:
        yield from _finetune(job, _cancel_fn(cancel))
    except DBDError as e:
        yield {"type": "error", "step": None, "message": str(e)}


def _finetune(job: FinetuneJob, cancelled) -> Iterator[Event]:
    from dbd_core.weights import load_model_file, sha256_file

    t0 = time.perf_counter()
    parent = parent_weights(job.model)
    model, parent_card = load_model_file(parent)
    cfg = job.config or default_config(getattr(model, "arch_name", "student"))
    cfg["run"]["kind"] = "finetune"
    data_path = Path(job.data)
    if job.dataset is not None:
        dataset = job.dataset
    else:
        cfg["data"]["kind"] = "hdf5" if data_path.suffix.lower() in (".h5", ".hdf5") else "folder"
        dataset = build_dataset(cfg, path=str(data_path), check=False)
    skipped: list[str] = []
    if is_named_dataset(dataset):  # read every sample once (into the cache); name and leave out bad ones
        for ev in iter_check(dataset, cancelled):
            if ev["type"] == "skipped":
                skipped.append(ev["message"])
            yield ev
        if cancelled():
            yield {"type": "cancelled", "step": 0, "checkpoint": None}
            return
    train, val = holdout_split(dataset, max(cfg["val"]["fraction"], 1e-6), cfg["run"]["seed"])
    bs = cfg["data"]["batch_size"]
    if len(train) < bs:  # a few photos, and the hash put more than a quarter of them aside
        cfg["data"]["batch_size"] = bs = len(train)
    out_dir = Path(job.out_dir)
    target = next_version_path(out_dir, parent.stem)
    run_dir = out_dir / "runs" / target.stem
    device = job.device or cfg["run"]["device"]
    from dbd_core.train.ddp import resolve_device

    dev = resolve_device(device)
    model.to(dev)
    # The held-out photos as dbd eval and the studio see them: full size, the parent's guided window.
    before = evaluate_photos(model, val, parent_card)
    if before["n_nonfinite"]:
        raise DBDError(f"{parent}: its maps of {before['n_nonfinite']} of {len(val)} held-out photo(s) hold NaN or "
                       "Inf: the weights are damaged; nothing to fine-tune from")
    if not before["n_images"]:
        raise DBDError(f"none of the {len(val)} held-out photo(s) has a mask: nothing to measure a fine-tune by")
    yield {"type": "val", "step": 0, "metrics": before, "best": True, "phase": "before"}

    cfg["val"]["restore_best"] = True
    tjob = TrainJob(cfg, run_dir=run_dir, output="", device=device, threads=job.threads, model=model,
                    train_dataset=train, val_dataset=val)
    final = None
    for ev in run_training(tjob, cancelled):
        if ev["type"] in ("cancelled", "error"):
            yield ev
            return
        if ev["type"] == "done":
            final = ev
            break
        yield ev
    after = evaluate_photos(model, val, parent_card)
    bad = not_finite(after)
    if bad:
        where = f"; its checkpoint stays in {run_dir}" if final and final["summary"].get("checkpoint") else ""
        yield {"type": "error", "step": final["step"] if final else None,
               "message": f"the fine-tuned network diverged: {bad} on the held-out photos, so no version was "
                          f"written{where}"}
        return
    from dbd_core.weights import save_model

    card = {
        "kind": "finetune",
        "version": target.stem,
        "parent": {"file": str(parent), "sha256": sha256_file(parent), "version": parent_card.get("version",
                                                                                                  parent.stem)},
        "data": {"path": str(data_path), "n_photos": len(dataset), "n_train": len(train), "n_val": len(val),
                 **({"left_out": skipped} if skipped else {})},
        "recipe": to_plain(cfg),
        "metrics": {"before": before, "after": after},
        "steps": final["step"] if final else None,
        "stopped_early": final["summary"]["stopped_early"] if final else False,
        "wall_s": round(time.perf_counter() - t0, 2),
        **({"inference": parent_card["inference"]} if parent_card.get("inference") else {}),  # as the parent maps
        **job.card,
    }
    save_model(target, model, card, half=cfg["model"]["save_half"])
    yield {"type": "done", "step": card["steps"], "summary": {
        "kind": "finetune", "steps": card["steps"], "output": str(target), "parent": str(parent), "before": before, "after": after,
        "n_train": len(train), "n_val": len(val), "left_out": skipped, "wall_s": card["wall_s"],
        "stopped_early": card["stopped_early"],
        "checkpoint": final["summary"]["checkpoint"] if final else None}}


def not_finite(metrics: dict) -> str:
    """Why held-out metrics must not be kept ("" when they may): maps with NaN/Inf, no photo scored, or a
    non-finite number."""
    if metrics.get("n_nonfinite"):
        return f"the maps of {metrics['n_nonfinite']} photo(s) hold NaN or Inf"
    if not metrics.get("n_images"):
        return "no held-out photo could be scored"
    bad = [k for k, v in metrics.items() if isinstance(v, float) and not math.isfinite(v)]
    return f"non-finite {', '.join(bad)}" if bad else ""
