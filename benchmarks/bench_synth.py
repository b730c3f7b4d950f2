"""Throughput of the synthetic defocus renderer on one thread (what one DataLoader worker delivers).

    python benchmarks/bench_synth.py [--sharp /work/shared/data/sharp] [--n 150] [--size 320]

Pass 1 renders n samples with an empty photo cache (JPEG decoding included), pass 2 renders n
other samples of the same photos from the warm cache, which is the steady state during training.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import defaultdict
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
import cv2  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from dbd_core.data.synth import SharpPhotoSource, SynthConfig, render_sample  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sharp", default="/work/shared/data/sharp")
    ap.add_argument("--n", type=int, default=400)
    ap.add_argument("--size", type=int, default=320)
    args = ap.parse_args()
    cv2.setNumThreads(1)
    src = SharpPhotoSource(args.sharp, "train")
    cfg = SynthConfig(size=args.size)
    n = min(args.n, len(src))
    t0 = time.perf_counter()
    for i in range(n):
        render_sample(src, i, 0, cfg)
    cold = n / (time.perf_counter() - t0)
    per_scene = defaultdict(list)
    t0 = time.perf_counter()
    # Seed 1 visits the photos in another order; with n = the photo count all are cached by pass 1.
    for i in range(n):
        t = time.perf_counter()
        _, _, info = render_sample(src, i, 1, cfg)
        per_scene[info["scene"]].append(time.perf_counter() - t)
    warm_time = time.perf_counter() - t0
    print(f"photos: {len(src)} (train split), size {args.size}x{args.size}, 1 thread, n={n}")
    print(f"cold cache (decode + render): {cold:.1f} samples/s")
    print(f"warm cache (render only):     {n / warm_time:.1f} samples/s")
    for scene, ts in sorted(per_scene.items()):
        print(f"  {scene:15s} {len(ts):4d} samples, {1000 * np.mean(ts):6.1f} ms each")
    return 0


if __name__ == "__main__":
    sys.exit(main())
