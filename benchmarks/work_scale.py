"""Which working resolution to run the networks at: false alarms on sharp photos against defocus found on real
shallow-depth-of-field photos, at the default 320 px long side, at each photo's native size, and at a fixed
larger size.

The networks learnt blur in pixels at BSDS500's native scale (the renderer shrinks a photo by at most 1.25x and
blurs at output scale), so the working size decides which real blur they can see: 320 px shrinks coffee's
600 px photo by 1.9x, and with it the defocus of its table. Running larger sees more of it, but a photo whose own
pixels are soft (film scans, demosaiced sensors, any upscaling) then looks blurred everywhere. This measures both
sides on photos whose answer is known without labels:
  * sharp: Kodak24 and McMaster (all in focus; ``--sharp`` folder): share of the area mapped above 0.5, and
    how many photos have more than 5 % of their area there;
  * real defocus (scikit-image): coffee (defocused top and bottom band), chelsea (blurred right background),
    rocket (a night scene, all in focus), astronaut (a studio portrait on a soft backdrop).

    python benchmarks/work_scale.py --sharp ../shared/data/sharp [--out benchmarks/work_scale.md]
"""

from __future__ import annotations

import argparse
import sys
import time
from functools import lru_cache
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SIZES = ("320", "native", "640")


def _sharp_photos(root: Path) -> list[np.ndarray]:
    from dbd_core.images import read_image

    files = sorted((root / "Kodak24").glob("*.png")) + sorted((root / "McMaster").glob("*.tif"))
    if not files:
        raise SystemExit(f"{root}: no Kodak24/*.png or McMaster/*.tif photos")
    return [read_image(f) for f in files]


@lru_cache(maxsize=None)
def _predictor(model: str, work_size: int, threads: int):
    """One loaded network per (model, working size): the photos come in a handful of native sizes."""
    from dbd_core.predict import load_predictor

    return load_predictor(model, threads=threads, work_size=work_size, jit=False)


def _map(model: str, rgb: np.ndarray, size: str, threads: int) -> np.ndarray:
    ws = max(rgb.shape[:2]) if size == "native" else int(size)
    return _predictor(model, ws, threads).predict(rgb)


def _real_photo_scores(m: np.ndarray, name: str) -> str:
    h, w = m.shape
    if name == "coffee":
        return f"top {m[: h // 6].mean():.2f} / cup {m[h // 3: 2 * h // 3, w // 3: 2 * w // 3].mean():.2f} / bottom {m[-h // 6:].mean():.2f}"
    if name == "chelsea":
        return f"right fifth {m[:, -w // 5:].mean():.2f} / face {m[h // 4:, w // 4: w // 2].mean():.2f}"
    return f"mean {m.mean():.2f}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sharp", type=Path, required=True, help="the sharp-photo folder (Kodak24/, McMaster/)")
    ap.add_argument("--models", default="teacher,student")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, help="also write the tables (markdown) here")
    args = ap.parse_args(argv)
    import skimage.data

    from dbd_core.atomic import write_text

    sharp = _sharp_photos(args.sharp)
    real = {n: getattr(skimage.data, n)() for n in ("coffee", "chelsea", "rocket", "astronaut")}
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    t0 = time.time()
    lines = [f"Sharp photos: {len(sharp)} (Kodak24, McMaster), all in focus; lower is better.", "",
             "| model | working size | area mapped > 0.5 | photos > 5 % blurred | mean map |", "|---|---|---:|---:|---:|"]
    for model in models:
        for size in SIZES:
            area, mean = [], []
            for rgb in sharp:
                m = _map(model, rgb, size, args.threads)
                area.append(float((m > 0.5).mean()))
                mean.append(float(m.mean()))
            a = np.asarray(area)
            lines.append(f"| {model} | {size} | {a.mean():.3f} | {int((a > 0.05).sum())} of {len(a)} | {np.mean(mean):.3f} |")
    lines += ["", "Real photos (scikit-image), mean map per region (1 = blurred):", "",
              "| model | working size | " + " | ".join(f"{n} ({real[n].shape[1]} px)" for n in real) + " |",
              "|---|---|" + "---|" * len(real)]
    for model in models:
        for size in SIZES:
            cells = [_real_photo_scores(_map(model, rgb[..., :3], size, args.threads), n) for n, rgb in real.items()]
            lines.append(f"| {model} | {size} | " + " | ".join(cells) + " |")
    lines += ["", f"`python benchmarks/work_scale.py --sharp {args.sharp} --models {args.models}` "
                  f"({time.strftime('%Y-%m-%d')}, {time.time() - t0:.0f} s)"]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        write_text(args.out, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
