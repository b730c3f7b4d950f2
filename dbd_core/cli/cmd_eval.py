"""``dbd eval``: score a model (or saved maps) against ground-truth masks, every number named by protocol."""

from __future__ import annotations

import sys
from pathlib import Path

from dbd_core.errors import InputError
from dbd_core.images import POLARITIES
from dbd_core.metrics import INVERTED_AUC, inverted_images
from dbd_core.tta import TTA_MODES

# Short protocol tags for the table; the full wording goes to --json (metrics.PROTOCOLS).
TABLE = [
    ("mae", "per image at mask resolution, mean over images"),
    ("f_beta", "beta^2=0.3, fixed threshold 0.5, per image, mean (D-DFFNet uniform protocol)"),
    ("f_adaptive", "beta^2=0.3, threshold min(1.5 x mean(map), 1), per image, mean"),
    ("max_f", "beta^2=0.3, max over 256 thresholds of the mean per-image F curve (dataset-level)"),
    ("max_f_per_image", "beta^2=0.3, mean of each image's max over 256 thresholds (MLDBD 'Fmax')"),
    ("auc_roc", "area under ROC, all pixels pooled, trapezoid (not area under the F curve)"),
    ("iou", "blurred class at threshold 0.5, per image, mean (both empty = 1)"),
    ("f_beta_two_class", "f_beta over the images whose mask is 2-98 % blurred only"),
    ("nll", "pixel log-loss per image, mean (calibration: lower = more honest probabilities)"),
]


def add_parser(sub) -> None:
    p = sub.add_parser(
        "eval", help="evaluate a model or saved maps against ground-truth masks",
        description="Score blur maps against ground-truth masks with the field's protocols side by side. "
        "Photos, masks and maps are matched by file stem. Positive class = blurred.")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--model", choices=("teacher", "student", "lbp"), help="a shipped model, or lbp (needs no trained weights)")
    src.add_argument("--weights", type=Path, metavar="FILE", help="a weights file (dbd-weights .pt)")
    src.add_argument("--pred", type=Path, metavar="DIR",
                     help="folder of saved maps, as dbd predict writes them: PNG (255 = blurred) or .npy "
                     "(float [0,1], 1 = blurred)")
    p.add_argument("--images", type=Path, metavar="DIR", help="photo folder (needed with --model/--weights)")
    p.add_argument("--gt", type=Path, metavar="DIR", help="ground-truth mask folder")
    p.add_argument("--gt-polarity", choices=POLARITIES,
                   help="what white means in the --gt masks: blur-white (255 = blurred, CUHK/DUT style) or "
                   "sharp-white (255 = in focus). Required with --gt: the public sets disagree.")
    p.add_argument("--data", metavar="DIR|FILE.h5",
                   help="a dbd dataset (folder with dataset.json, or .h5) instead of --images/--gt; "
                   "its gt_polarity is read from the dataset")
    p.add_argument("--json", type=Path, metavar="FILE", help="write all numbers, protocols and per-image scores")
    p.add_argument("--curves", type=Path, metavar="DIR", help="write pr.png, f_threshold.png, roc.png here")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for the model (default: torch's)")
    p.add_argument("--tta", choices=TTA_MODES, default="none",
                   help="with --model/--weights: hflip averages each map with its mirror's (default none)")
    p.add_argument("--limit", type=int, default=None, metavar="N",
                   help="evaluate only the first N pairs (by name; with --data, the first N sample names)")
    p.add_argument("--quiet", action="store_true", help="no progress line")
    p.set_defaults(func=run)


def _progress(quiet: bool):
    if quiet or not sys.stderr.isatty():
        return None

    def show(done, total, name):
        print(f"\r  {done}/{total} {name[:50]:<50}", end="" if done < total else "\n", file=sys.stderr, flush=True)

    return show


def _check_args(args) -> None:
    if args.limit is not None and args.limit < 1:
        raise InputError(None, "--limit must be >= 1")
    if args.pred is not None and args.tta != "none":
        raise InputError(args.pred, "--tta applies to a model run; saved maps are scored as they are")
    if args.data is not None:
        if args.gt is not None or args.images is not None:
            raise InputError(args.data, "give either --data or --images/--gt, not both")
        if args.gt_polarity is not None:
            raise InputError(args.data, "--gt-polarity is read from the dataset; do not pass it with --data")
        return
    if args.gt is None:
        raise InputError(None, "give --gt DIR (with --gt-polarity) or --data DIR|FILE.h5")
    if args.gt_polarity is None:
        raise InputError(args.gt, "--gt-polarity is required: say whether white means blurred (blur-white) "
                                  "or in focus (sharp-white)")
    if args.pred is None and args.images is None:
        raise InputError(None, "--images DIR is required to run a model")


def run(args) -> int:
    from dbd_core import evaluate as E

    _check_args(args)
    # Outputs that cannot be written are refused now, not after the whole evaluation has run.
    from dbd_core.atomic import check_writable

    if args.json is not None:
        check_writable(args.json, "file")
    if args.curves is not None:
        check_writable(args.curves, "folder")
    predictor = None
    if args.pred is None:
        from dbd_core.predict import load_predictor

        predictor = load_predictor(args.model if args.model else args.weights, threads=args.threads, tta=args.tta)
    elif args.threads:
        from dbd_core.predict import set_threads

        set_threads(args.threads)
    progress = _progress(args.quiet)
    if args.data is not None:
        from dbd_core.data.formats import open_dataset_reader

        with open_dataset_reader(args.data) as reader:
            report = E.evaluate(dataset=reader, predictor=predictor, pred_dir=args.pred, limit=args.limit,
                                progress=progress)
        dataset = {"data": str(args.data), "pred": None if args.pred is None else str(args.pred)}
    else:
        items, unmatched, dup_errors = E.pair_folders(args.gt, args.images, args.pred)
        report = E.evaluate(items, gt_polarity=args.gt_polarity, predictor=predictor, limit=args.limit,
                            progress=progress)
        report.unmatched[:0] = unmatched
        report.errors[:0] = dup_errors
        dataset = {k: None if v is None else str(v) for k, v in
                   (("images", args.images), ("gt", args.gt), ("pred", args.pred))}
    report.info["dataset"] = dataset
    if predictor is None:
        report.info["model"] = f"maps from {args.pred}"
    _print_report(report)
    failed_output = False
    if args.json is not None:
        from dbd_core.atomic import write_json

        try:
            write_json(args.json, report.to_json())
            print(f"wrote {args.json}")
        except OSError as e:  # checked at the start; a full disk, or a change since, still ends here
            print(f"dbd eval: error: {args.json}: cannot write ({e.strerror or e})", file=sys.stderr)
            failed_output = True
    if args.curves is not None:
        if report.summary["n_images"] == 0:
            print("dbd eval: no curves written: no image was evaluated", file=sys.stderr)
        else:
            from dbd_core.plots import save_curves

            label = str(report.info.get("model") or "maps")
            try:
                for path in save_curves({label: report.curves}, args.curves,
                                        title_suffix=f"{report.summary['n_images']} images"):
                    print(f"wrote {path}")
            except OSError as e:
                where = e.filename or args.curves
                print(f"dbd eval: error: {where}: cannot write ({e.strerror or e})", file=sys.stderr)
                failed_output = True
    return 0 if report.ok and report.summary["n_images"] > 0 and not failed_output else 1


def _print_report(report) -> None:
    for line in report.unmatched:
        print(f"dbd eval: unmatched: {line}", file=sys.stderr)
    for line in report.errors:
        print(f"dbd eval: error: {line}", file=sys.stderr)
    info, s = report.info, report.summary
    parts = {k: v for k, v in info.get("dataset", {}).items() if v}
    src = str(parts["data"]) if set(parts) == {"data"} else ", ".join(f"{k} {v}" for k, v in parts.items())
    tta = f", test-time augmentation {info['tta']}" if info.get("tta", "none") != "none" else ""
    print(f"model: {info.get('model')}" + (f" ({info['weights']})" if info.get("weights") else "") + tta)
    print(f"data: {src}; gt polarity {info.get('gt_polarity')}")
    timing = f", {report.ms_per_image:.1f} ms/image" if report.ms_per_image is not None else ""
    print(f"{s['n_images']} images evaluated in {report.seconds:.1f} s{timing}")
    if report.nonbinary_masks:
        print(f"note: {len(report.nonbinary_masks)} mask(s) had grey levels (neither 0/255 nor 0/1) and were "
              f"thresholded at 128")
    if report.skipped_unlabelled:
        print(f"note: {report.skipped_unlabelled} unlabelled sample(s) skipped")
    inverted = inverted_images(report.per_image)
    if inverted:
        names = ", ".join(inverted[:10]) + (f" ... (+{len(inverted) - 10} more)" if len(inverted) > 10 else "")
        print(f"note: {len(inverted)} mask(s) agree far better with the map inverted (per-image ROC AUC < "
              f"{INVERTED_AUC}): {names}; if they mark in-focus pixels white, their polarity is the other one")
    print(f"{'metric':<16} {'value':>7}  protocol")
    for key, proto in TABLE:
        v = s[key]
        print(f"{key:<16} {v:>7.4f}  {proto}" if v == v else f"{key:<16} {'n/a':>7}  {proto}")
    if s["n_images"]:
        print(f"(max_f reached at threshold {s['max_f_threshold']:.3f})")
    problems = len(report.errors) + len(report.unmatched)
    if problems:
        print(f"dbd eval: {problems} problem(s) reported above", file=sys.stderr)
