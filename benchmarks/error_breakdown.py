"""Where a model's errors on the benchmark set come from: scores on subsets of the bench renders.

The bench labels a pixel blurred when its circle of confusion exceeds 1.5 px, and radii run
continuously from 0 to 12 px, so some renders put a "blurred" layer at 1.6 px next to a "sharp"
one at 0.5 px: on a 320 px JPEG that difference is often invisible. This script splits the
set by what its provenance records (scene type, layer radii, blurred share) and scores each part
with the same protocol as ``dbd eval`` (maps from the Predictor, MAE and F-beta at 0.5 per image).

    python benchmarks/error_breakdown.py --data BENCH --models teacher,student [--out FILE.md]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

NEAR = (1.0, 2.5)  # radii (px at 320) where the sharp/blurred call is a matter of a pixel


def _radii(prov: dict) -> list[float]:
    out = []
    for r in prov.get("radii", []):
        out.extend(r if isinstance(r, list) else [r])
    return [float(x) for x in out]


def subsets(samples: list[dict]) -> dict[str, list[int]]:
    prov = [s["provenance"] for s in samples]
    near = {i for i, p in enumerate(prov) if any(NEAR[0] < r < NEAR[1] for r in _radii(p))}
    two = {i for i, p in enumerate(prov) if p.get("scene") in ("sharp_object", "blurred_object")}
    one_class = {i for i, p in enumerate(prov) if not 0.02 < p.get("blurred_fraction", 0.5) < 0.98}
    every = set(range(len(samples)))
    parts = {"all": every,
             f"a layer's radius in ({NEAR[0]:g}, {NEAR[1]:g}) px": near,
             f"no layer's radius in ({NEAR[0]:g}, {NEAR[1]:g}) px": every - near,
             "two-layer scenes (sharp or blurred object)": two,
             f"two-layer scenes, no radius in ({NEAR[0]:g}, {NEAR[1]:g}) px": two - near,
             "nearly one class (< 2 % or > 98 % blurred)": one_class}
    for scene in sorted({p.get("scene") for p in prov}):
        parts[f"scene {scene}"] = {i for i, p in enumerate(prov) if p.get("scene") == scene}
    return {k: sorted(v) for k, v in parts.items()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, required=True, help="bench folder (dbd synth --preset bench)")
    ap.add_argument("--models", default="teacher,student")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, help="also write the table (markdown) here")
    args = ap.parse_args(argv)

    import numpy as np

    from dbd_core import metrics
    from dbd_core.images import read_image, read_mask
    from dbd_core.predict import load_predictor

    samples = json.loads((args.data / "dataset.json").read_text(encoding="utf-8"))["samples"]
    parts = subsets(samples)
    models = [m for m in args.models.split(",") if m]
    scores = {}
    for name in models:
        pred = load_predictor(name, threads=args.threads)
        f, mae = [], []
        for s in samples:
            gt, _ = read_mask(args.data / s["gt"], "blur-white")
            p = pred.predict(read_image(args.data / s["image"]))
            f.append(metrics.f_beta(p, gt))
            mae.append(metrics.mae(p, gt))
        scores[name] = (np.array(f), np.array(mae))
    head = "| subset | n | " + " | ".join(f"{m} F-beta | {m} MAE" for m in models) + " |"
    lines = [head, "|---|---:|" + "---:|---:|" * len(models)]
    for label, idx in parts.items():
        if not idx:
            continue
        cells = [f"{scores[m][0][idx].mean():.3f} | {scores[m][1][idx].mean():.3f}" for m in models]
        lines.append(f"| {label} | {len(idx)} | " + " | ".join(cells) + " |")
    cmd = "python benchmarks/error_breakdown.py " + " ".join(sys.argv[1:] if argv is None else argv)
    text = "\n".join(lines) + f"\n\n`{cmd}` ({time.strftime('%Y-%m-%d')})\n"
    print(text)
    if args.out:
        from dbd_core.atomic import write_text

        write_text(args.out, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
