"""``dbd dataset``: import public layouts, export a studio project, convert folder <-> HDF5, check a dataset."""

from __future__ import annotations

import argparse
import sys

from dbd_core.errors import DBDError
from dbd_core.images import POLARITIES

_FORMATS_HELP = ("A dataset is a folder (images/ with the original photo files, gt/NAME.png masks, dataset.json) "
                 "or one .h5 file; both state gt_polarity (dbd writes blur-white: 255 = blurred).")


def add_parser(sub) -> None:
    p = sub.add_parser("dataset", help="import, export, convert and check labelled datasets",
                       description="Labelled datasets for training and evaluation. " + _FORMATS_HELP)
    dsub = p.add_subparsers(dest="dataset_command", metavar="SUBCOMMAND")
    p.set_defaults(func=lambda a: (p.print_help(), 2)[1])

    imp = dsub.add_parser("import", help="import an image folder + gt folder (CUHK, DUT, CTCUG layouts)",
                          description="Match images and gts by file stem and write a dbd dataset. "
                          "The gt polarity must be stated: blur-white (255 = blurred) or sharp-white "
                          "(255 = in focus). Masks are stored as blur-white.")
    imp.add_argument("--images", required=True, metavar="DIR", help="folder of photos")
    imp.add_argument("--gt", required=True, metavar="DIR", help="folder of ground-truth masks")
    imp.add_argument("--gt-polarity", required=True, choices=POLARITIES,
                     help="what white means in the gt files: blur-white = blurred, sharp-white = in focus")
    imp.add_argument("--out", required=True, metavar="DIR|FILE.h5", help="output folder, or .h5 file")
    imp.add_argument("--resize-gt", choices=["nearest"], default=None,
                     help="resize a gt of another size to its image (default: refuse such samples)")
    imp.add_argument("--split", choices=["train", "val", "test"], default=None,
                     help="mark every imported sample with this split (default: none, assigned by hash later)")
    imp.add_argument("--gt-suffix", default="", help="gt stem = image stem + this (e.g. _gt); default none")
    imp.add_argument("--include-unlabelled", action="store_true",
                     help="also import images without a gt, as unlabelled samples")
    imp.add_argument("--overwrite", action="store_true", help="replace an existing output")
    imp.set_defaults(func=_run_import)

    conv = dsub.add_parser("convert", help="convert a dataset folder <-> .h5 losslessly",
                           description="Copy every sample (original image bytes, masks, splits, provenance). "
                           "The output kind follows DST: a name ending in .h5/.hdf5 is an HDF5 file, else a folder.")
    conv.add_argument("src")
    conv.add_argument("dst")
    conv.add_argument("--overwrite", action="store_true", help="replace an existing DST")
    conv.set_defaults(func=_run_convert)

    exp = dsub.add_parser("export", help="write a studio project's masks as a dataset (as File -> Export does)",
                          description="Write the photos of a dbd-studio project folder with their saved masks "
                          "as a dataset: original photo bytes, masks blur-white (255 = blurred), each sample's "
                          "provenance (seed source and threshold, hand edits, status). By default only photos "
                          "marked done; nothing is written when there is nothing to export.")
    exp.add_argument("project", metavar="PROJECT", help="a dbd-studio project folder (with project.json)")
    exp.add_argument("--out", required=True, metavar="DIR|FILE.h5", help="output folder, or .h5 file")
    exp.add_argument("--all", action="store_true", help="every photo with a saved mask, not only those marked done")
    exp.add_argument("--overwrite", action="store_true", help="replace an existing output")
    exp.set_defaults(func=_run_export)

    chk = dsub.add_parser("check", help="read every sample; report blurred fraction and polarity doubts",
                          description="Reads every sample (reporting unreadable ones by name), reports the "
                          "fraction of blurred pixels, and with --model warns when the declared polarity "
                          "looks inverted relative to the model's prediction.")
    chk.add_argument("src")
    chk.add_argument("--model", default=None,
                     help="compare masks with this model's prediction (lbp, student, teacher or a weights file)")
    chk.add_argument("--max-side", type=int, default=512, help="predict at most at this size (default 512)")
    chk.set_defaults(func=_run_check)


def _progress(label: str):
    if not sys.stderr.isatty():
        return None

    def cb(i, n):
        print(f"\r{label} {i}/{n}", end="\n" if i == n else "", file=sys.stderr, flush=True)

    return cb


def _run_export(a) -> int:
    from pathlib import Path

    from dbd_core.annotate import ProjectStore
    from dbd_core.annotate.export import export_project
    from dbd_core.atomic import check_writable
    from dbd_core.errors import InputError

    folder = Path(a.project)
    if not (folder / "project.json").is_file():
        raise InputError(folder, "not a dbd-studio project (no project.json)")
    check_writable(a.out, "any")  # the dataset is written beside it, then renamed: refused now, not at the end
    store = ProjectStore.open(folder)
    errors: list[str] = []
    n = export_project(store, a.out, only_done=not a.all, progress=_progress("export"), overwrite=a.overwrite,
                       errors=errors)
    for line in errors:
        print(f"dbd dataset export: {line}", file=sys.stderr)
    if not n:
        which = "no photo has a saved mask" if a.all else "no photo is marked done (--all exports every saved mask)"
        print(f"dbd dataset export: nothing to export: {which}; nothing written", file=sys.stderr)
        return 1
    print(f"exported {n} photo(s) from {folder} to {a.out} ({'all with a mask' if a.all else 'marked done'}; "
          "masks blur-white, 255 = blurred)" + (f"; {len(errors)} left out" if errors else ""))
    return 1 if errors else 0


def _run_import(a) -> int:
    from dbd_core.atomic import check_writable
    from dbd_core.data.importing import import_layout

    check_writable(a.out, "any")
    rep = import_layout(a.images, a.gt, a.gt_polarity, a.out, resize_gt=a.resize_gt, split=a.split,
                        gt_suffix=a.gt_suffix, include_unlabelled=a.include_unlabelled, overwrite=a.overwrite,
                        progress=_progress("import"))
    for line in rep.lines():
        print(line, file=sys.stderr if line.startswith("error:") else sys.stdout)
    return 0 if rep.ok else 1


def _run_convert(a) -> int:
    from dbd_core.atomic import check_writable
    from dbd_core.data.formats import convert

    check_writable(a.dst, "any")
    skipped: list[str] = []
    n = convert(a.src, a.dst, overwrite=a.overwrite, progress=_progress("convert"), skipped=skipped)
    for line in skipped:
        print(line, file=sys.stderr)
    if not n:
        print(f"nothing converted: {a.src} holds no " + ("readable " if skipped else "") + "samples", file=sys.stderr)
        return 1
    print(f"converted {n} samples: {a.src} -> {a.dst}" + (f" ({len(skipped)} left out)" if skipped else ""))
    return 1 if skipped else 0


def _run_check(a) -> int:
    from dbd_core.data.importing import check_dataset

    predict = None
    if a.model:
        try:
            from dbd_core.predict import load_predictor
        except ImportError as e:
            raise DBDError(f"--model needs dbd_core.predict, which is not available ({e})") from None
        predict = load_predictor(a.model).predict
    rep = check_dataset(a.src, predict=predict, model_name=a.model, max_side=a.max_side,
                        progress=_progress("check"))
    for line in rep.lines():
        print(line, file=sys.stderr if line.startswith(("error:", "warning:")) else sys.stdout)
    return 1 if rep.errors else 0
