"""``dbd export-onnx``: export a network to ONNX (probabilities out) and check it against PyTorch."""

from __future__ import annotations

import argparse
from pathlib import Path

from dbd_core.errors import InputError


def add_parser(sub) -> None:
    p = sub.add_parser(
        "export-onnx", help="export teacher/student (or a weights file) to ONNX, checked against PyTorch",
        description="Write an ONNX model: input 'image' B x 3 x H x W float RGB in [0,1], output 'blur' "
        "B x 1 x H x W probabilities (1 = blurred), opset 17. Height and width are dynamic when the "
        "exported graph gives the PyTorch result at a second size, else fixed at --size. With onnxruntime "
        "installed the export is run on real photos (skimage coffee and chelsea) and the max abs difference "
        "to PyTorch is reported; above 1e-3 nothing is written and the command fails. "
        "Needs the optional extra: pip install 'dbd-studio[onnx]'.")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--model", choices=("teacher", "student"), help="a shipped model")
    src.add_argument("--weights", type=Path, metavar="FILE", help="a weights file (dbd-weights .pt)")
    p.add_argument("--out", type=Path, required=True, metavar="FILE.onnx", help="output file")
    p.add_argument("--size", type=int, default=320, help="working size (square) traced and checked (default 320)")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset, >= 17 (default 17)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dbd_core.export import TOLERANCE, export_onnx, require
    from dbd_core.weights import load_model_file, require_shipped

    require("onnx")  # fail before loading anything when the extra is missing
    if args.size < 32:
        raise InputError(None, f"--size {args.size} is too small (minimum 32)")
    if args.opset < 17:
        raise InputError(None, f"--opset {args.opset}: need 17 or newer")
    if args.out.suffix.lower() != ".onnx":
        raise InputError(args.out, "output name must end in .onnx")
    from dbd_core.atomic import check_writable

    check_writable(args.out, "file")
    path = require_shipped(args.model) if args.model else args.weights
    model, card = load_model_file(path)
    report = export_onnx(model, args.out, size=args.size, opset=args.opset)
    shape = "dynamic height/width" if report.dynamic else f"fixed {args.size}x{args.size}"
    print(f"wrote {report.path} ({report.path.stat().st_size / 1e6:.1f} MB; {card.get('arch')} from {path}; "
          f"opset {report.opset}; {shape}; batch dynamic)")
    if report.note:
        print(f"note: {report.note}")
    for row in report.checks:
        print(f"  check {row['photo']:8s} {row['size']:>8s}: max abs difference vs PyTorch {row['max_abs_diff']:.2e}")
    if report.checks:
        print(f"max abs difference {report.max_abs_diff:.2e} (tolerance {TOLERANCE:g}) on real photos: ok")
    return 0
