"""``dbd finetune``: adapt the student or the teacher to your own labelled photos; writes a new model
version (weights + card) beside the old one, never over it."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub) -> None:
    p = sub.add_parser("finetune", help="fine-tune a model on your labelled photos (writes a new version)",
                       description="Fine-tune from the current weights on a dataset folder or .h5 file. Part of "
                                   "the data is held out: metrics before/after are measured on it, training "
                                   "stops early when it stops improving. The new version (<parent>-ftN.pt + "
                                   ".json card) is written in --out only when the run completes.")
    p.add_argument("--data", required=True, help="dataset folder or .h5 (see `dbd dataset`)")
    p.add_argument("--model", default="student", help="student, teacher, or a weights file (default student)")
    p.add_argument("--out", required=True, type=Path, help="folder for the new version")
    p.add_argument("--config", type=Path, help="recipe (default resources/configs/finetune_<arch>.toml)")
    p.add_argument("--steps", type=int, help="override run.steps")
    p.add_argument("--device", help="auto, cpu, cuda")
    p.add_argument("--threads", type=int, help="CPU threads")
    p.add_argument("--quiet", action="store_true", help="no step or validation lines: only the start, errors and "
                                                        "the summary")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dbd_core.atomic import check_writable
    from dbd_core.cli._progress import drive
    from dbd_core.errors import InputError
    from dbd_core.train.config import load_config
    from dbd_core.train.finetune import FinetuneJob, run_finetune

    if not Path(args.data).exists():
        raise InputError(args.data, "no such dataset folder or file")
    check_writable(args.out, "folder")  # before the model is loaded and trained, not after
    cfg = load_config(args.config) if args.config else None
    if args.steps is not None:
        if cfg is None:
            from dbd_core.train.finetune import default_config, parent_weights

            arch = "teacher" if args.model == "teacher" else "student"
            if args.model not in ("student", "teacher"):
                from dbd_core.weights import load_model_file

                arch = load_model_file(parent_weights(args.model))[0].arch_name
            cfg = default_config(arch)
        cfg["run"]["steps"] = args.steps
    job = FinetuneJob(data=args.data, model=args.model, out_dir=args.out, config=cfg, device=args.device,
                      threads=args.threads)
    return drive(lambda cancel: run_finetune(job, cancel), args.out / "runs" / "finetune-events.jsonl",
                 quiet=args.quiet, prog="dbd finetune", resumable=False)
