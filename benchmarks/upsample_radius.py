"""How the working-size map is brought to the photo's full size: bilinear, or the guided filter
(`dbd_core.upsample.guided_upsample`) at several window radii, scored against the labels.

The guided filter makes a map's edges follow the photo's; its window radius (at the working size) trades
that against smoothing the map. Two renderings, both of training photos, never the benchmark's:
  * `--data DIR`: a dbd dataset at the working size (e.g. `dbd synth --sharp S --out CALIB --n 240 --seed 777`),
    where the filter only refines;
  * `--hires N`: N renders at `--hires-size` px with radii and label threshold scaled by size/320
    (`SynthConfig.at_render_size`), so the working size sees a 320 px render's defocus and the filter upsamples 3x.

    python benchmarks/upsample_radius.py --sharp ../shared/data/sharp --data CALIB --hires 60 [--out benchmarks/upsample_radius.md]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

RADII = (1, 2, 3, 4)
HIRES_SEED = 9100


def _labelled(args):
    """(name, photo RGB uint8, label HxW float {0,1}) for each dataset sample and hi-res render."""
    from dbd_core.data.formats import open_dataset_reader
    from dbd_core.data.synth import SharpPhotoSource, SynthConfig, render_sample

    if args.data:
        with open_dataset_reader(args.data) as reader:
            for s in reader:
                yield "data", s.decode(), s.mask.astype(np.float32)
    if args.hires:
        source = SharpPhotoSource(args.sharp, "train")
        cfg = SynthConfig.at_render_size(args.hires_size)
        for i in range(args.hires):
            image, mask, _ = render_sample(source, i, HIRES_SEED, cfg)
            yield "hires", image, (np.asarray(mask) > 0.5).astype(np.float32)


def score(predictor, samples, radii=RADII) -> dict:
    """{set: {variant: [MAE, F-beta, log-loss, AUC] means}} for bilinear and each guided radius."""
    from dbd_core import metrics
    from dbd_core.predict import resize_to_work
    from dbd_core.upsample import bilinear_upsample, default_radius, guided_upsample

    rows: dict = {}
    for which, rgb, gt in samples:
        small = resize_to_work(rgb, predictor.work_size)
        low = np.clip(predictor._map_small(small), 0, 1).astype(np.float32)
        maps = {"bilinear": bilinear_upsample(low, gt.shape)}
        for r in radii:
            tag = f"guided r={r}" + (" (default)" if r == default_radius(low.shape) else "")
            maps[tag] = guided_upsample(low, rgb, guide_lr=small, radius=r)
        for tag, m in maps.items():
            r = metrics.image_metrics(m, gt)  # dbd eval's per-image numbers, its log-loss clipping included
            rows.setdefault(which, {}).setdefault(tag, []).append((r["mae"], r["f_beta"], r["nll"], r["auc"]))
    with warnings.catch_warnings():  # AUC is NaN on every one-class render of a set: its mean stays NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        return {w: {t: [float(x) for x in np.nanmean(v, 0)] for t, v in d.items()} for w, d in rows.items()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sharp", required=True, help="sharp photo folder (for --hires renders)")
    ap.add_argument("--data", help="a dbd dataset at the working size")
    ap.add_argument("--hires", type=int, default=0, metavar="N", help="N renders at --hires-size")
    ap.add_argument("--hires-size", type=int, default=960)
    ap.add_argument("--models", default="teacher,student")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", help="write the tables as Markdown here")
    ap.add_argument("--json", help="write the numbers as JSON here")
    args = ap.parse_args(argv)
    if not args.data and not args.hires:
        ap.error("give --data, --hires N, or both")
    from dbd_core.atomic import write_text
    from dbd_core.predict import load_predictor

    t0 = time.time()
    results = {}
    for name in args.models.split(","):
        predictor = load_predictor(name, threads=args.threads, jit=False)
        results[name] = score(predictor, _labelled(args))
    lines = ["# Bringing maps to full size: bilinear or guided filter, by window radius", "",
             "Per-image means; the guided radius is in working-size pixels. `data`: "
             f"{args.data} (at the working size); `hires`: {args.hires} training-photo renders at "
             f"{args.hires_size} px, radii scaled.", "",
             "| model | set | upsampling | MAE | F-beta | log-loss | AUC |", "|---|---|---|---:|---:|---:|---:|"]
    for name, sets in results.items():
        for which, variants in sets.items():
            for tag, (m, f, nll, auc) in variants.items():
                lines.append(f"| {name} | {which} | {tag} | {m:.4f} | {f:.4f} | {nll:.4f} | {auc:.4f} |")
    cmd = " ".join(["python benchmarks/upsample_radius.py", *(argv if argv is not None else sys.argv[1:])])
    lines += ["", f"`{cmd}` ({time.strftime('%Y-%m-%d')}, {time.time() - t0:.0f} s)"]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        write_text(args.out, text)
    if args.json:
        write_text(args.json, json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
