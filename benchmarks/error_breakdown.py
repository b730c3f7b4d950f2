"""Where a model's errors on the benchmark set come from: scores on subsets of the bench renders.

The bench labels a pixel blurred when its circle of confusion exceeds 1.5 px, and radii run
continuously from 0 to 12 px, so some renders put a "blurred" layer at 1.6 px next to a "sharp"
one at 0.5 px: on a 320 px JPEG that difference is often invisible. This script splits the
set by what its provenance records (scene type, layer radii, blurred share) and scores each part
with the same protocol as ``dbd eval`` (maps from the Predictor, MAE and F-beta at 0.5 per image).

    python benchmarks/error_breakdown.py --data BENCH --models teacher,student [--screen SCREEN.json] [--out FILE.md]

``--screen``: a screen file of the bench's source photos (``dbd screen --split test``) adds the renders whose
source photo carries natural defocus of its own, which the renderer labels sharp all the same.
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


def subsets(samples: list[dict], screen: dict | None = None) -> dict[str, list[int]]:
    prov = [s["provenance"] for s in samples]
    near = {i for i, p in enumerate(prov) if any(NEAR[0] < r < NEAR[1] for r in _radii(p))}
    two = {i for i, p in enumerate(prov) if p.get("scene") in ("sharp_object", "blurred_object")}
    from dbd_core.metrics import TWO_CLASS

    one_class = {i for i, p in enumerate(prov) if not TWO_CLASS[0] < p.get("blurred_fraction", 0.5) < TWO_CLASS[1]}
    every = set(range(len(samples)))
    parts = {"all": every,
             f"a layer's radius in ({NEAR[0]:g}, {NEAR[1]:g}) px": near,
             f"no layer's radius in ({NEAR[0]:g}, {NEAR[1]:g}) px": every - near,
             "two-layer scenes (sharp or blurred object)": two,
             f"two-layer scenes, no radius in ({NEAR[0]:g}, {NEAR[1]:g}) px": two - near,
             "nearly one class (< 2 % or > 98 % blurred)": one_class}
    if screen is not None:
        flagged = {ph["name"] for ph in screen["photos"] if ph["excluded"]}
        known = {ph["name"] for ph in screen["photos"]}
        missing = sorted({p.get("source") for p in prov} - known)
        if missing:
            raise SystemExit(f"screen file does not cover the bench's source photos, e.g. {missing[0]}")
        natural = {i for i, p in enumerate(prov) if p.get("source") in flagged}
        share = f"> {screen['exclude_above']:.0%} of the area above {screen['threshold']:g} (dbd screen)"
        parts[f"source photo with natural defocus ({share})"] = natural
        parts["source photo without it"] = every - natural
        parts[f"without it, no radius in ({NEAR[0]:g}, {NEAR[1]:g}) px"] = every - natural - near
    for scene in sorted({p.get("scene") for p in prov}):
        parts[f"scene {scene}"] = {i for i, p in enumerate(prov) if p.get("scene") == scene}
    return {k: sorted(v) for k, v in parts.items()}


class MaeAnatomy:
    """Splits the pooled absolute error by kind of pixel: on the wrong side of 0.5 or right but soft; near
    a label edge; in low-texture areas, where a photo carries no blur evidence of its own."""

    LOW_TEXTURE = 4.0

    def __init__(self):
        self.sums = {k: 0.0 for k in ("abs", "wrong", "soft", "edge", "low", "high")}
        self.counts = {k: 0 for k in ("all", "edge", "low", "high")}

    def add(self, prob, gt, rgb) -> None:
        import cv2
        import numpy as np

        e = np.abs(np.asarray(prob, np.float32) - gt.astype(np.float32))
        grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)
        low = cv2.GaussianBlur(np.abs(cv2.Laplacian(grey, cv2.CV_32F)), (0, 0), 3) < self.LOW_TEXTURE
        g8 = gt.astype(np.uint8)
        edge = cv2.dilate(cv2.morphologyEx(g8, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)),
                          np.ones((5, 5), np.uint8)) > 0
        self.sums["abs"] += float(e.sum())
        self.sums["wrong"] += float(e[e > 0.5].sum())
        self.sums["soft"] += float(e[e <= 0.5].sum())
        self.sums["edge"] += float(e[edge].sum())
        self.sums["low"] += float(e[low].sum())
        self.sums["high"] += float(e[~low].sum())
        self.counts["all"] += e.size
        self.counts["edge"] += int(edge.sum())
        self.counts["low"] += int(low.sum())
        self.counts["high"] += int((~low).sum())

    def shares(self) -> dict:
        n = max(1, self.counts["all"])
        return {"mae": self.sums["abs"] / n, "wrong": self.sums["wrong"] / n, "soft": self.sums["soft"] / n,
                "edge": self.sums["edge"] / n, "edge_area": self.counts["edge"] / n,
                "low": self.sums["low"] / n, "low_area": self.counts["low"] / n,
                "low_mean": self.sums["low"] / max(1, self.counts["low"]),
                "high": self.sums["high"] / n, "high_mean": self.sums["high"] / max(1, self.counts["high"])}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, required=True, help="bench folder (dbd synth --preset bench)")
    ap.add_argument("--models", default="teacher,student",
                    help="comma-separated: teacher, student, lbp, a weights file, or LABEL=WEIGHTS (a run's "
                         "model.pt under a short column name, e.g. stage4=runs/teacher_stage4/model.pt)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--screen", type=Path, metavar="SCREEN.json",
                    help="dbd screen file of the bench's source photos (--split test): adds natural-defocus subsets")
    ap.add_argument("--out", type=Path, help="also write the table (markdown) here")
    args = ap.parse_args(argv)

    import numpy as np

    from dbd_core import metrics
    from dbd_core.images import read_image, read_mask
    from dbd_core.predict import load_predictor

    samples = json.loads((args.data / "dataset.json").read_text(encoding="utf-8"))["samples"]
    screen = json.loads(args.screen.read_text(encoding="utf-8")) if args.screen else None
    parts = subsets(samples, screen)
    sources = dict(m.split("=", 1) if "=" in m else (m, m) for m in args.models.split(",") if m)
    models = list(sources)
    scores, anatomy = {}, {}
    for name in models:
        pred = load_predictor(sources[name], threads=args.threads)
        f, mae = [], []
        acc = MaeAnatomy()
        for s in samples:
            gt, _ = read_mask(args.data / s["gt"], "blur-white")
            rgb = read_image(args.data / s["image"])
            p = pred.predict(rgb)
            f.append(metrics.f_beta(p, gt))
            mae.append(metrics.mae(p, gt))
            acc.add(p, gt, rgb)
        scores[name] = (np.array(f), np.array(mae))
        anatomy[name] = acc.shares()
    head = "| subset | n | " + " | ".join(f"{m} F-beta | {m} MAE" for m in models) + " |"
    lines = [head, "|---|---:|" + "---:|---:|" * len(models)]
    for label, idx in parts.items():
        if not idx:
            continue
        cells = [f"{scores[m][0][idx].mean():.3f} | {scores[m][1][idx].mean():.3f}" for m in models]
        lines.append(f"| {label} | {len(idx)} | " + " | ".join(cells) + " |")
    lines += ["", "Where the MAE comes from (pooled over all pixels of all renders, which equals the per-image mean "
              "here since every render has the same size; \"wrong side\" + \"right side\" and \"low texture\" + "
              "\"textured\" each add up to it, and the label-edge part is inside it):", "",
              "| model | pooled MAE | wrong side of 0.5 | right side, soft | within 3 px of a label edge "
              "(share of area) | low texture (share of area; mean error there) | textured (mean error) |",
              "|---|---:|---:|---:|---:|---:|---:|"]
    for name, a in anatomy.items():
        lines.append(f"| {name} | {a['mae']:.3f} | {a['wrong']:.3f} | {a['soft']:.3f} | {a['edge']:.3f} "
                     f"({a['edge_area']:.1%}) | {a['low']:.3f} ({a['low_area']:.1%}; {a['low_mean']:.3f}) | "
                     f"{a['high']:.3f} ({a['high_mean']:.3f}) |")
    lines += ["", f"Low texture: Gaussian-smoothed (sigma 3) |Laplacian| of the rendered grey image below "
              f"{MaeAnatomy.LOW_TEXTURE:g} (8-bit units)."]
    cmd = "python benchmarks/error_breakdown.py " + " ".join(sys.argv[1:] if argv is None else argv)
    text = "\n".join(lines) + f"\n\n`{cmd}` ({time.strftime('%Y-%m-%d')})\n"
    print(text)
    if args.out:
        from dbd_core.atomic import write_text

        write_text(args.out, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
