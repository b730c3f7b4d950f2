"""Fine-tuning a trained network on the user's own labelled photos (``dbd finetune``).

Starts from the current weights, holds out part of the data (deterministic split), trains with the
content loss and early stopping on the validation loss (keeping the best weights), measures the
held-out metrics before and after, and writes a NEW model version beside the parent -- never over it --
with a card naming the parent (sha256), the data, the recipe and the metrics. Nothing is written if
the run is cancelled or fails (a checkpoint stays in the run folder).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from torch.utils.data import Dataset

from dbd_core.errors import DBDError
from dbd_core.paths import configs_dir
from dbd_core.train.config import load_config, to_plain
from dbd_core.train.data import build_dataset, split_holdout
from dbd_core.train.loop import Event, TrainJob, _cancel_fn, run_training
from dbd_core.train.validate import evaluate


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
        dataset = build_dataset(cfg, path=str(data_path))
    train, val = split_holdout(dataset, max(cfg["val"]["fraction"], 1e-6), cfg["run"]["seed"])
    out_dir = Path(job.out_dir)
    target = next_version_path(out_dir, parent.stem)
    run_dir = out_dir / "runs" / target.stem
    bs = cfg["data"]["batch_size"]
    device = job.device or cfg["run"]["device"]
    from dbd_core.train.ddp import resolve_device

    dev = resolve_device(device)
    model.to(dev)
    before = evaluate(model, val, dev, batch_size=bs)
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
    after = evaluate(model, val, dev, batch_size=bs)
    from dbd_core.weights import save_model

    card = {
        "kind": "finetune",
        "version": target.stem,
        "parent": {"file": str(parent), "sha256": sha256_file(parent), "version": parent_card.get("version",
                                                                                                  parent.stem)},
        "data": {"path": str(data_path), "n_photos": len(dataset), "n_train": len(train), "n_val": len(val)},
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
        "n_train": len(train), "n_val": len(val), "wall_s": card["wall_s"], "stopped_early": card["stopped_early"],
        "checkpoint": final["summary"]["checkpoint"] if final else None}}

