"""``dbd predict``: blur maps for photos and folders, written as DIR/<stem>.png (255 = blurred)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from dbd_core.errors import InputError
from dbd_core.tta import TTA_MODES

FORMATS = ("png", "npy", "mask")
SUFFIX = {"png": "png", "npy": "npy", "mask": "png"}


def add_parser(sub) -> None:
    p = sub.add_parser(
        "predict",
        help="blur maps for photos (PNG 255 = blurred, full size)",
        description="Write one blur map per photo: DIR/<stem>.png, 8-bit grayscale, same size as the photo, "
        "255 = blurred (out of focus), 0 = in focus; or DIR/<stem>.npy float32 in [0,1] (1 = blurred); or, with "
        "--format mask, DIR/<stem>.png binary masks (255 = blurred, 0 = in focus) thresholded at --threshold. "
        "Folders are expanded to their image files. Bad files are reported one line each and skipped; "
        "the exit code is 1 if any file failed.",
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="photos and/or folders of photos")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--model", choices=("teacher", "student", "lbp"), default=None,
                     help="shipped model (default: student); lbp needs no weights")
    src.add_argument("--weights", metavar="FILE", help="a weights file saved by dbd (e.g. from dbd train)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (created if missing)")
    p.add_argument("--format", choices=FORMATS, default="png",
                   help="png (8-bit map, 255 = blurred), npy (float32 map) or mask (binary PNG, 255 = blurred)")
    p.add_argument("--threshold", default=None, metavar="T|otsu",
                   help="with --format mask: blurred where the map >= T (0 < T < 1; default 0.5), or otsu "
                        "(each photo's own Otsu threshold)")
    p.add_argument("--threads", type=int, default=None, metavar="N", help="CPU threads (default: torch's)")
    p.add_argument("--device", default="cpu", help="torch device for networks (cpu, cuda, cuda:1, ...)")
    p.add_argument("--work-size", type=int, default=None, metavar="PX",
                   help="long side of the working resolution (default: 320 networks, 480 lbp)")
    p.add_argument("--tta", choices=TTA_MODES, default="none",
                   help="test-time augmentation: hflip averages each map with its mirror's "
                        "(better maps, twice the network time; default none)")
    p.add_argument("--recursive", action="store_true", help="also take photos in sub-folders")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.add_argument("--quiet", action="store_true", help="only errors and the summary")
    p.set_defaults(func=run)


def _plan(paths: list[Path], out_dir: Path, fmt: str, overwrite: bool):
    """Pair inputs with outputs. Returns (jobs, problems) where problems are (path, reason) lines:
    two inputs with the same stem would write the same file, so the later ones are refused."""
    jobs, problems, taken = [], [], {}
    for p in paths:
        target = out_dir / f"{p.stem}.{SUFFIX[fmt]}"
        key = target.name.lower()  # case-insensitive file systems collide on case too
        if key in taken:
            problems.append((p, f"output name {target.name} already used by {taken[key]} in this batch; "
                                f"rename one or predict them into different --out folders"))
            continue
        taken[key] = p
        if target.is_dir():
            problems.append((target, "cannot write (Is a directory)"))
            continue
        if target.exists() and not overwrite:
            problems.append((p, f"{target} exists (use --overwrite to replace it)"))
            continue
        jobs.append((p, target))
    return jobs, problems


def _threshold(value: str | None, fmt: str) -> float | str | None:
    """--threshold as a number in (0, 1) or "otsu"; only meaningful for masks."""
    if fmt != "mask":
        if value is not None:
            raise InputError(None, "--threshold applies to --format mask (maps keep every value)")
        return None
    if value is None:
        return 0.5
    if value == "otsu":
        return value
    try:
        t = float(value)
    except ValueError:
        raise InputError(None, f"--threshold must be a number in (0, 1) or otsu, not {value!r}") from None
    if not 0.0 < t < 1.0:
        raise InputError(None, f"--threshold {value} is outside (0, 1): the mask would be all one class")
    return t


def _write(target: Path, blur_map: np.ndarray, fmt: str, threshold: float | str | None = None) -> None:
    from dbd_core.atomic import atomic_path
    from dbd_core.images import write_map_png, write_png

    if fmt == "mask":
        from dbd_core.annotate.threshold import otsu_threshold, threshold_map

        t = otsu_threshold(blur_map) if threshold == "otsu" else float(threshold)
        write_png(target, threshold_map(blur_map, t) * np.uint8(255))
    elif fmt == "png":
        write_map_png(target, blur_map)
    else:
        with atomic_path(target) as tmp:
            np.save(tmp, blur_map.astype(np.float32), allow_pickle=False)


def _summary(done: int, failed: int, out_dir: Path, model: str, times_ms: list[float], what: str = "map") -> str:
    if not done:
        return f"dbd predict: no {what} written ({failed} failed)"
    # the first map pays for loading the network's kernels and caches: quoted apart, not averaged in
    timing = (f", {times_ms[0]:.0f} ms for the first image, then {np.median(times_ms[1:]):.0f} ms median"
              if done > 1 else f", {times_ms[0]:.0f} ms")
    return f"dbd predict: {done} {what}(s) written to {out_dir} with {model}{timing}; {failed} failed"


def run(args: argparse.Namespace) -> int:
    from dbd_core.atomic import check_writable
    from dbd_core.images import expand_paths
    from dbd_core.predict import load_predictor

    if args.threads is not None and args.threads < 1:
        raise InputError(None, "--threads must be >= 1")
    threshold = _threshold(args.threshold, args.format)
    out_dir = Path(args.out)
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(out_dir, "--out exists and is not a folder")
    check_writable(out_dir, "folder")  # a refused --out is said once, before any photo is read
    name = args.weights or args.model or "student"
    predictor = load_predictor(name, threads=args.threads, device=args.device, work_size=args.work_size,
                               tta=args.tta)
    unreadable: list[tuple[Path, str]] = []
    paths = expand_paths(args.paths, recursive=args.recursive, problems=unreadable)
    jobs, problems = _plan(paths, out_dir, args.format, args.overwrite)
    failed = 0
    for p, reason in unreadable + problems:
        print(f"{p}: {reason}", file=sys.stderr)
        failed += 1
    if not jobs and not problems and not unreadable:
        print("dbd predict: no image files found in the given paths", file=sys.stderr)
        return 1
    tty = sys.stderr.isatty() and not args.quiet
    times_ms: list[float] = []
    for i, (p, target) in enumerate(jobs, 1):
        t0 = time.perf_counter()
        try:
            try:
                blur_map = predictor.predict(p)
            except OSError as e:  # the photo's own read errors are InputErrors already; this is the rest
                raise InputError(p, f"cannot read ({e.strerror or e})") from None
            except MemoryError:
                raise InputError(p, "out of memory (photo too large for this machine)") from None
            try:
                _write(target, blur_map, args.format, threshold)
            except OSError as e:  # a full disk, a folder that turned read-only, a name the file system refuses
                raise InputError(target, f"cannot write ({e.strerror or e})") from None
        except InputError as e:
            if tty:
                sys.stderr.write("\r\x1b[K")
            print(e if e.path == str(target) else f"{p}: {e.reason}", file=sys.stderr)
            failed += 1
            continue
        ms = (time.perf_counter() - t0) * 1000
        times_ms.append(ms)
        h, w = blur_map.shape
        line = f"[{i}/{len(jobs)}] {p.name} -> {target} ({w}x{h}, {ms:.0f} ms)"
        if tty:  # one updating progress line on a terminal
            sys.stderr.write("\r\x1b[K" + line)
            sys.stderr.flush()
        elif not args.quiet:
            print(line, file=sys.stderr)
    if tty:
        sys.stderr.write("\n")
    what = "mask" if args.format == "mask" else "map"
    print(_summary(len(times_ms), failed, out_dir, predictor.name, times_ms, what), file=sys.stderr)
    return 1 if failed else 0
