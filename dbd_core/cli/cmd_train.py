"""``dbd train teacher|student``: train a network from a TOML recipe (resources/configs/*.toml).
Works unchanged under ``torchrun --nproc_per_node=N`` (DistributedDataParallel)."""

from __future__ import annotations

import argparse
from pathlib import Path

from dbd_core.errors import DBDError


def add_parser(sub) -> None:
    p = sub.add_parser("train", help="train the teacher, or distill the student from it",
                       description="Train from a TOML recipe. Progress on stderr, every event in "
                                   "<run folder>/events.jsonl, final weights in <run folder>/model.pt. "
                                   "Ctrl-C stops after the current step with a checkpoint; --resume continues.")
    p.add_argument("kind", choices=("teacher", "student"))
    p.add_argument("--config", required=True, type=Path, help="TOML recipe (e.g. resources/configs/teacher.toml)")
    p.add_argument("--teacher", type=Path, help="student: the trained teacher's weights file")
    p.add_argument("--sharp", help="synthetic data: folder of sharp photos (overrides data.sharp)")
    p.add_argument("--data", help="folder or .h5 dataset (overrides data.path; sets data.kind)")
    p.add_argument("--run-dir", type=Path, help="run folder (default <run.out_dir>/<run.name>)")
    p.add_argument("--out", type=Path, help="final weights file (default <run folder>/model.pt)")
    p.add_argument("--steps", type=int, help="override run.steps")
    p.add_argument("--resume", action="store_true", help="continue from the run folder's checkpoint")
    p.add_argument("--unpin", action="store_true",
                   help="accept other weights than the sha256 the recipe pins for model.init / --teacher (the run "
                        "then continues from, or distils, what those paths hold now, not the release it reproduced)")
    p.add_argument("--restart", action="store_true",
                   help="start over in a run folder that holds a checkpoint (its checkpoint and weights are replaced)")
    p.add_argument("--device", help="auto (CUDA when present, else CPU), cpu, cuda, cuda:N")
    p.add_argument("--threads", type=int, help="CPU threads per process")
    p.add_argument("--seed", type=int, help="override run.seed")
    p.add_argument("--quiet", action="store_true", help="no progress bar (events still logged)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dbd_core.cli._progress import drive
    from dbd_core.train import ddp
    from dbd_core.train.config import ConfigError, load_config
    from dbd_core.train.loop import TrainJob, run_training

    cfg = load_config(args.config)
    if cfg["run"]["kind"] != args.kind:
        raise ConfigError(f"{args.config}: run.kind is {cfg['run']['kind']!r}, but `dbd train {args.kind}` was asked")
    overrides = cfg.setdefault("_overrides", {})  # error messages then name the option, not the config key
    if args.sharp:
        cfg["data"]["kind"], cfg["data"]["sharp"] = "synthetic", args.sharp
        overrides["data.sharp"] = "--sharp"
    if args.data:
        cfg["data"]["kind"] = "hdf5" if args.data.lower().endswith((".h5", ".hdf5")) else "folder"
        cfg["data"]["path"] = args.data
        overrides["data.path"] = "--data"
    if args.steps is not None:
        cfg["run"]["steps"] = args.steps
    if args.seed is not None:
        cfg["run"]["seed"] = args.seed
    if args.unpin:  # said in the card: this run does not reproduce the recipe's release
        pins = {k: cfg["model"][k] for k in ("init_sha256", "teacher_sha256") if cfg["model"].get(k)}
        cfg["model"]["init_sha256"] = cfg["model"]["teacher_sha256"] = ""
    teacher = None
    if args.kind == "student":
        if not args.teacher:
            raise DBDError("a student is distilled from a teacher: give --teacher WEIGHTS")
        from dbd_core.weights import load_pinned

        teacher, _ = load_pinned(args.teacher, cfg["model"]["teacher_sha256"], "model.teacher_sha256")
    job = TrainJob(cfg, run_dir=args.run_dir, output=args.out, resume=args.resume, device=args.device,
                   threads=args.threads, teacher=teacher,
                   card={**({"teacher": str(args.teacher)} if args.teacher else {}),
                         **({"unpinned": pins} if args.unpin else {})})
    from dbd_core.train.config import resolve_path

    run_dir = Path(args.run_dir or Path(resolve_path(cfg["run"]["out_dir"], cfg)) / cfg["run"]["name"])
    if args.resume and args.restart:
        raise DBDError("--resume continues a run and --restart replaces it: give one")
    checkpoint = run_dir / "checkpoint.pt"
    if checkpoint.exists() and not (args.resume or args.restart):  # a re-run after Ctrl-C must not erase hours
        raise DBDError(f"{run_dir} already holds a run (checkpoint.pt): --resume continues it, --restart starts "
                       "over and replaces it, or choose another --run-dir")
    rank_is_main = ddp.is_main_process()
    if rank_is_main:  # refused now, not after hours of training
        from dbd_core.atomic import check_writable

        check_writable(run_dir, "folder")
        if args.out is not None:
            check_writable(args.out, "file")
    return drive(lambda cancel: run_training(job, cancel), run_dir / "events.jsonl", quiet=args.quiet,
                 is_main=rank_is_main, prog=f"dbd train {args.kind}")
