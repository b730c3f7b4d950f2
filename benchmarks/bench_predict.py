"""Peak memory and time of one full-size prediction (guided upsampling in row strips).

    python benchmarks/bench_predict.py --size 7000 --model lbp
    python benchmarks/bench_predict.py --size 7000 --arch student   # untrained net: cost only

Reports the peak RSS increase during ``predict`` beyond the input photo, and how much of it is the
output map itself (float32 HxW, which the caller keeps).
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np
import torch


def rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=7000, help="square photo side in pixels")
    ap.add_argument("--model", default=None, help="lbp, a weights file, teacher/student (shipped)")
    ap.add_argument("--arch", default=None, help="registry architecture with untrained weights (timing only)")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from dbd_core.predict import Predictor, load_predictor

    if args.arch:
        from dbd_core.nets.registry import build_model

        pred = Predictor.from_model(build_model(args.arch, pretrained=False) if args.arch != "tiny"
                                    else build_model("tiny"), name=args.arch)
    else:
        pred = load_predictor(args.model or "lbp", threads=args.threads)
    rng = np.random.default_rng(0)
    small = rng.integers(0, 256, (600, 900, 3), dtype=np.uint8)
    t = time.perf_counter()
    pred.predict(small)  # warm-up: imports, allocator, one-time setup
    t_small = (time.perf_counter() - t) * 1000
    # a smooth photo with edges (pure noise would be an unfair case for nobody in particular)
    photo = np.empty((args.size, args.size, 3), np.uint8)
    for y0 in range(0, args.size, 500):
        rows = np.arange(y0, min(args.size, y0 + 500))[:, None]
        cols = np.arange(args.size)[None, :]
        photo[y0:y0 + len(rows), :, 0] = ((rows // 700 + cols // 900) % 2 * 150 + 50).astype(np.uint8)
        photo[y0:y0 + len(rows), :, 1] = (cols * 255 // args.size).astype(np.uint8)
        photo[y0:y0 + len(rows), :, 2] = 90
    base_rss, base_peak = rss_mb(), peak_mb()
    t = time.perf_counter()
    out = pred.predict(photo)
    dt = time.perf_counter() - t
    extra = max(0.0, peak_mb() - base_rss) if peak_mb() > base_peak else max(0.0, rss_mb() - base_rss)
    out_mb = out.nbytes / 2**20
    print(f"model {pred.name}: {args.size}x{args.size} ({args.size**2 / 1e6:.0f} MP) in {dt:.2f} s; "
          f"900x600 in {t_small:.0f} ms (first call)")
    print(f"input photo {photo.nbytes / 2**20:.0f} MB; peak RSS increase during predict {extra:.0f} MB "
          f"of which the output map {out_mb:.0f} MB -> working memory {extra - out_mb:.0f} MB")


if __name__ == "__main__":
    main()
