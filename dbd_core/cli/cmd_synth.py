"""``dbd synth``: render a synthetic defocus dataset (images + blur masks) from a folder of sharp photos."""

from __future__ import annotations

import sys
import time

from dbd_core import __version__
from dbd_core.errors import InputError

BENCH_SEED = 2026


def add_parser(sub) -> None:
    p = sub.add_parser(
        "synth", help="render a synthetic defocus dataset from sharp photos",
        description="Render defocus blur onto sharp photos (layered disk/Gaussian blur, depth ramps, noise, "
        "JPEG) and write a dbd dataset: images/NAME.png, gt/NAME.png (255 = blurred), dataset.json with "
        "per-sample provenance. Sample i of seed S is identical on every run. "
        "--preset bench renders the fixed benchmark: one 320x320 sample per BSDS500 test photo, seed 2026.")
    p.add_argument("--sharp", required=True, metavar="DIR", help="folder of sharp photos (searched recursively; "
                   "BSDS500 groundTruth segmentations beside BSDS images are used for object shapes)")
    p.add_argument("--out", required=True, metavar="DIR|FILE.h5", help="output dataset folder (or .h5 file)")
    p.add_argument("--n", type=int, default=None, help="number of samples (required unless --preset bench)")
    p.add_argument("--seed", type=int, default=None, help="random seed (default 0; bench: 2026)")
    p.add_argument("--size", type=int, default=320, help="square sample size in px (default 320)")
    p.add_argument("--split", choices=["train", "test", "all"], default=None,
                   help="photos to use: train = all except BSDS500/images/test (default), test = only those")
    p.add_argument("--coc-threshold", type=float, default=None,
                   help="CoC radius (px at output size) above which a pixel is labelled blurred (default 1.5)")
    p.add_argument("--exclude", metavar="SCREEN.json", default=None,
                   help="leave out the photos a screen file of dbd screen excludes (natural defocus)")
    p.add_argument("--preset", choices=["bench"], default=None, help="bench: the fixed evaluation set")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")
    p.set_defaults(func=run)


def _config(args):
    from dbd_core.data.synth import SynthConfig, bench_render_config

    cfg = bench_render_config(args.size) if args.preset == "bench" else SynthConfig(size=args.size)
    if args.coc_threshold is not None:
        cfg.coc_threshold = args.coc_threshold
    return cfg


def run(args) -> int:
    from dbd_core.data.formats import open_writer
    from dbd_core.data.sharp_source import is_bsds_test
    from dbd_core.data.synth import SharpPhotoSource, render_sample

    if args.size < 32:
        raise InputError(None, f"--size {args.size} is too small (minimum 32)")
    bench = args.preset == "bench"
    split = args.split or ("test" if bench else "train")
    if bench and split != "test":
        raise InputError(None, "--preset bench always uses the BSDS500 test split")
    seed = args.seed if args.seed is not None else (BENCH_SEED if bench else 0)
    if bench and args.exclude:
        raise InputError(args.exclude, "--preset bench renders every BSDS500 test photo; --exclude would change the benchmark")
    exclude = set()
    if args.exclude:
        from dbd_core.data.screen import read_exclusions

        exclude = read_exclusions(args.exclude)
    from dbd_core.atomic import check_writable

    check_writable(args.out, "any")  # the dataset is written beside it and renamed: refused before rendering
    source = SharpPhotoSource(args.sharp, split, exclude=exclude)
    n = args.n if args.n is not None else (len(source) if bench else None)
    if n is None or n < 1:
        raise InputError(None, "--n must be a positive number of samples")
    cfg = _config(args)
    created_by = f"dbd-studio {__version__} (dbd synth" + (" --preset bench)" if bench else ")")
    prefix = "bench" if bench else f"synth_s{seed}"
    failed = 0
    t0 = time.monotonic()
    last = 0.0
    # formats.FolderWriter writes into a temp folder and renames it into place after dataset.json:
    # an interrupted run leaves no half dataset.
    with open_writer(args.out, created_by=created_by, overwrite=args.overwrite) as writer:
        for i in range(n):
            try:
                image, mask, info = render_sample(source, i, seed, cfg)
            except InputError as e:  # a bad source photo: report it, go on, fail at the end
                print(f"dbd synth: {e}", file=sys.stderr)
                failed += 1
                continue
            photo = source.files[info["photo_index"]]
            sample_split = "test" if is_bsds_test(photo) else "train"
            prov = {"source": info["source"], "generator": "dbd synth", "split_of_source": split,
                    "coc_threshold": cfg.coc_threshold, "size": cfg.size, **info}
            if bench:
                prov["preset"] = "bench"
            if args.exclude:
                prov["screen"] = {"file": str(args.exclude), "excluded_photos": len(source.excluded)}
            writer.add(f"{prefix}_{i:06d}", image, mask, split=sample_split, provenance=prov)
            now = time.monotonic()
            if now - last > 2.0 or i == n - 1:
                last = now
                rate = (i + 1) / max(now - t0, 1e-6)
                print(f"dbd synth: {i + 1}/{n} samples ({rate:.1f}/s)", file=sys.stderr, flush=True)
    print(f"dbd synth: wrote {n - failed} samples to {args.out}" + (f"; {failed} failed" if failed else ""),
          file=sys.stderr)
    return 1 if failed else 0

