"""Cost of one live threshold step, Otsu and a re-seed on a big photo, old path vs cached path.

The studio re-seeds the mask on every slider step of an untouched photo. The old path rebuilt the
mean of the teacher's and student's maps, thresholded the whole map and compared the whole mask at
every step; the cached path (dbd_core.annotate.threshold.SeedSource) makes the mean, Otsu and each
tile's value range once per photo and re-thresholds only the tiles a step can change
(MaskModel.set_mask with a tile hint). Both give the same mask; this checks it at every step.
Qt-free: the overlay's redraw of the changed tiles comes on top (see benchmarks/threshold.md).

    python benchmarks/bench_threshold.py                      # skimage coffee upscaled to 8000x6000, shipped models
    python benchmarks/bench_threshold.py --maps t.npy s.npy   # saved full-size maps instead
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from dbd_core.annotate import MaskModel, combine_maps, otsu_threshold, threshold_map  # noqa: E402
from dbd_core.annotate.threshold import SeedSource  # noqa: E402


def _maps(size: str, paths) -> list[np.ndarray]:
    if paths:
        return [np.load(p) for p in paths]
    from skimage import data

    from app.models import ModelProvider

    w, h = (int(v) for v in size.lower().split("x"))
    rgb = cv2.resize(data.coffee(), (w, h), interpolation=cv2.INTER_CUBIC)
    provider = ModelProvider({"teacher": "teacher", "student": "student"})
    return [np.clip(np.asarray(provider.get(r).predict(rgb), np.float32), 0, 1) for r in ("teacher", "student")]


def _ms(f) -> float:
    t0 = time.perf_counter()
    f()
    return (time.perf_counter() - t0) * 1e3


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--size", default="8000x6000")
    p.add_argument("--maps", nargs=2, metavar=("TEACHER.npy", "STUDENT.npy"))
    p.add_argument("--steps", type=int, default=15)
    args = p.parse_args(argv)
    maps = _maps(args.size, args.maps)
    h, w = maps[0].shape
    steps = [0.30 + 0.01 * i for i in range(args.steps + 1)]  # a slider dragged one notch at a time
    print(f"{w}x{h} maps (teacher, student), mean source, {args.steps} slider steps from {steps[0]:.2f}")

    # old: every step rebuilds the mean, thresholds all of it and compares the whole mask
    old_model, old = MaskModel((h, w)), []
    buf = np.empty((h, w), bool)
    old_model.set_mask(threshold_map(combine_maps(maps), steps[0], out=buf))
    for t in steps[1:]:
        old.append(_ms(lambda: old_model.set_mask(threshold_map(combine_maps(maps), t, out=buf))))
    old_otsu = _ms(lambda: otsu_threshold(combine_maps(maps)))

    # cached: one SeedSource per photo and maps
    src = SeedSource(maps)
    prep = _ms(lambda: (src.map, src._ranges()))
    model, new, checked = MaskModel((h, w)), [], True
    seed = np.empty((h, w), bool)
    src.threshold(steps[0], out=seed)
    model.set_mask(seed.view(np.uint8))
    for t0, t in zip(steps, steps[1:]):
        new.append(_ms(lambda: model.set_mask(seed.view(np.uint8), tiles=src.update(seed, t0, t))))
        checked &= np.array_equal(model.mask, old_model.mask if t == steps[-1] else threshold_map(src.map, t))
    first_otsu = _ms(src.otsu)
    again_otsu = _ms(src.otsu)
    reseed = _ms(lambda: model.set_mask(src.threshold(0.5, out=seed).view(np.uint8)))

    med = lambda xs: float(np.median(xs))  # noqa: E731
    print(f"old step (mean + threshold + full compare): median {med(old):.1f} ms, max {max(old):.1f} ms")
    print(f"cached step (changed tiles only):           median {med(new):.1f} ms, max {max(new):.1f} ms")
    print(f"once per photo: mean + tile ranges {prep:.0f} ms; Otsu {first_otsu:.1f} ms first, {again_otsu:.3f} ms after "
          f"(old: {old_otsu:.0f} ms every time); whole re-seed from the cached mean {reseed:.1f} ms")
    print("masks identical to the old path at every step:", bool(checked))
    return 0 if checked else 1


if __name__ == "__main__":
    sys.exit(main())
