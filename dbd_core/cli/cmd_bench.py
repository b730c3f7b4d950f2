"""``dbd bench``: speed, memory and size of teacher / student / lbp on this machine."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from dbd_core.errors import InputError

KNOWN = ("teacher", "student", "lbp")


def _size(text: str) -> tuple[int, int]:
    """"4000x3000" (W x H) -> (H, W)."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected WIDTHxHEIGHT, e.g. 4000x3000") from None
    if min(w, h) < 32:
        raise argparse.ArgumentTypeError(f"{text!r}: each side must be >= 32 px")
    return h, w


def add_parser(sub) -> None:
    p = sub.add_parser(
        "bench", help="parameters, GFLOPs, latency (320x320 and a full photo), peak memory, size on disk",
        description="Measure each model on this machine: parameters; GFLOPs of one 320x320 forward (2 x MACs); "
        "median latency of the network at 320x320 (warm-up, then the median of --repeats forwards); median "
        "latency of a full photo (4000x3000) to a full-size map through the Predictor; peak memory of that "
        "(RSS growth, VmHWM); weights size on disk; with onnxruntime installed, ONNX Runtime latency at 320x320 "
        "(exported to a temp folder unless --onnx-* files are given). Close other programs: the numbers are "
        "only as quiet as the machine.")
    p.add_argument("--models", default="teacher,student,lbp", help="comma-separated: teacher, student, lbp")
    p.add_argument("--weights-teacher", type=Path, metavar="FILE", help="teacher weights (default: shipped)")
    p.add_argument("--weights-student", type=Path, metavar="FILE", help="student weights (default: shipped)")
    p.add_argument("--onnx-teacher", type=Path, metavar="FILE", help="time this exported teacher .onnx")
    p.add_argument("--onnx-student", type=Path, metavar="FILE", help="time this exported student .onnx")
    p.add_argument("--no-onnx", action="store_true", help="skip the ONNX Runtime measurement")
    p.add_argument("--repeats", type=int, default=20, help="timed forwards at 320x320 (median; default 20)")
    p.add_argument("--warmup", type=int, default=5, help="untimed forwards before timing (default 5)")
    p.add_argument("--photo-repeats", type=int, default=3, help="timed full-photo predictions (default 3)")
    p.add_argument("--photo-size", type=_size, default=(3000, 4000), metavar="WxH",
                   help="full photo size (default 4000x3000)")
    p.add_argument("--threads", type=int, default=2, help="CPU threads for torch, OpenCV, onnxruntime (default 2)")
    p.add_argument("--json", type=Path, metavar="FILE", help="also write the results, machine facts and command")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=run)


def command_line(args: argparse.Namespace) -> str:
    """The exact command, rebuilt from the parsed options (independent of how dbd was started)."""
    parts = ["dbd", "bench", "--models", args.models, "--repeats", str(args.repeats),
             "--warmup", str(args.warmup),
             "--photo-repeats", str(args.photo_repeats),
             "--photo-size", f"{args.photo_size[1]}x{args.photo_size[0]}", "--threads", str(args.threads)]
    for opt in ("weights_teacher", "weights_student", "onnx_teacher", "onnx_student", "json"):
        if getattr(args, opt) is not None:
            parts += ["--" + opt.replace("_", "-"), str(getattr(args, opt))]
    if args.no_onnx:
        parts.append("--no-onnx")
    return shlex.join(parts)


def run(args: argparse.Namespace) -> int:
    from dbd_core.bench import BenchConfig, format_table, run_bench

    models = [m.strip() for m in args.models.split(",") if m.strip()]
    bad = [m for m in models if m not in KNOWN]
    if bad or not models:
        raise InputError(None, f"--models: unknown {', '.join(bad) or '(none given)'}; use {', '.join(KNOWN)}")
    if min(args.repeats, args.photo_repeats, args.threads) < 1 or args.warmup < 0:
        raise InputError(None, "--repeats, --photo-repeats and --threads must be >= 1, --warmup >= 0")
    for opt in ("weights_teacher", "weights_student", "onnx_teacher", "onnx_student"):
        f = getattr(args, opt)
        if f is not None and not f.is_file():
            raise InputError(f, "no such file" if not f.exists() else "not a file")
    if args.json is not None:
        from dbd_core.atomic import check_writable

        check_writable(args.json, "file")  # before the benchmark runs, not after
    cfg = BenchConfig(threads=args.threads, repeats=args.repeats, warmup=args.warmup, photo_size=args.photo_size,
                      photo_repeats=args.photo_repeats, onnx=not args.no_onnx)
    weights = {k: v for k, v in (("teacher", args.weights_teacher), ("student", args.weights_student)) if v}
    onnx = {k: v for k, v in (("teacher", args.onnx_teacher), ("student", args.onnx_student)) if v}
    progress = None if args.quiet else (lambda msg: print(f"dbd bench: {msg}", file=sys.stderr, flush=True))
    if args.repeats < 20:
        print(f"dbd bench: note: median of {args.repeats} forwards (< 20: a quick check, not a measurement)",
              file=sys.stderr)
    result = run_bench(models, weights, onnx, cfg, command=command_line(args), progress=progress)
    print(format_table(result))
    if args.json is not None:
        from dbd_core.atomic import write_json

        write_json(args.json, result)
        print(f"wrote {args.json}")
    failed = [r for r in result["models"] if "error" in r]
    for r in failed:
        print(f"dbd bench: {r['model']}: {r['error']}", file=sys.stderr)
    return 1 if failed else 0
