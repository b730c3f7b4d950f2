"""``dbd screen``: score sharp source photos for the defocus they already have, and write a screen file
that synthetic training (``data.exclude``) and ``dbd synth --exclude`` leave the flagged photos out by."""

from __future__ import annotations

import sys
import time

from dbd_core import __version__


def add_parser(sub) -> None:
    p = sub.add_parser(
        "screen", help="flag sharp source photos that already show natural defocus",
        description="Run a blur model on every photo of a sharp-photo folder at the photo's own scale and "
        "flag the photos whose map calls more than --exclude-above of the area blurred (map value above "
        "--threshold, 1 = blurred). Synthetic defocus labels every in-focus layer sharp, so such photos "
        "would teach that natural defocus is sharp. Writes a JSON screen file (all scores, and which "
        "photos are excluded) for data.exclude in a training config or dbd synth --exclude.")
    p.add_argument("--sharp", required=True, metavar="DIR", help="folder of sharp photos (searched recursively)")
    p.add_argument("--out", required=True, metavar="FILE.json", help="screen file to write")
    p.add_argument("--model", default="teacher", help="teacher, student, lbp or a weights file (default teacher)")
    p.add_argument("--split", choices=["train", "test", "all"], default="train",
                   help="photos to screen (default train: all but BSDS500/images/test)")
    p.add_argument("--threshold", type=float, default=0.5, help="map value counted as blurred (default 0.5)")
    p.add_argument("--exclude-above", type=float, default=0.05,
                   help="exclude a photo when more than this share of its area is blurred (default 0.05)")
    p.add_argument("--short-side", type=int, default=384,
                   help="photos are shrunk to this short side at most, as synthetic training caches them "
                   "(default 384: 1.5 x a 256 px crop)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads")
    p.set_defaults(func=run)


def run(args) -> int:
    from dbd_core.data.screen import at_native_scale, screen_source, write_screen
    from dbd_core.atomic import check_writable
    from dbd_core.data.sharp_source import SharpPhotoSource
    from dbd_core.predict import load_predictor

    check_writable(args.out, "file")  # before every photo is screened, not after
    source = SharpPhotoSource(args.sharp, args.split)
    predictor = load_predictor(args.model, threads=args.threads, jit=False)
    rows, t0, last = [], time.monotonic(), 0.0
    for row in screen_source(source, at_native_scale(predictor), threshold=args.threshold,
                             exclude_above=args.exclude_above, short_side=args.short_side):
        rows.append(row)
        if "error" in row:
            print(f"dbd screen: {row['error']}", file=sys.stderr)
        now = time.monotonic()
        if now - last > 2.0 or len(rows) == len(source):
            last = now
            print(f"dbd screen: {len(rows)}/{len(source)} photos", file=sys.stderr, flush=True)
    write_screen(args.out, rows, model=predictor.name, model_sha256=predictor.card.get("sha256"),
                 threshold=args.threshold,
                 exclude_above=args.exclude_above, short_side=args.short_side,
                 created_by=f"dbd-studio {__version__} (dbd screen --model {args.model})")
    n_ex = sum(r["excluded"] for r in rows)
    print(f"dbd screen: {n_ex} of {len(rows)} photos excluded (blurred area > {args.exclude_above:g}) -> {args.out}",
          file=sys.stderr)
    return 1 if any("error" in r for r in rows) else 0
