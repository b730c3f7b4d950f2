"""Are the blur maps calibrated probabilities? Reliability, and what temperature scaling would do to MAE.

MAE is the field's headline number, and a soft map pays for every pixel it is unsure of. If a model were
merely under-confident (its 0.8s blurred 98 % of the time), dividing its logits by a temperature T < 1
would lower MAE *and* make the map a better probability, and the fix would belong in the Predictor. If it
is calibrated or over-confident, the soft pixels are pixels the model cannot tell apart, and only better
discrimination (a better network or training) lowers MAE. This script says which, on held-out renders of
the training distribution (fit there, never on the bench):

    dbd synth --sharp ../shared/data/sharp --out CALIB --n 240 --seed 777 --split train
    python benchmarks/calibration.py --data CALIB [--check BENCH] --models teacher,student [--out FILE.md]

Per model: the reliability table (pixels binned by predicted probability: share of pixels, mean
prediction, observed blurred frequency), expected calibration error, pixel NLL at T = 1 and at the
NLL-optimal T (a grid over 0.2-5), the MAE at both, the MAE of the calibrated map (each pixel replaced by
its bin's observed blurred frequency q: share x 2q(1-q) summed over bins), and the MAE floor of any
remapping of the map's values (each of 100 bins sent to 0 or 1, whichever q is nearer: share x min(q, 1-q)):
no threshold, temperature or curve applied to these maps gets below it; only better discrimination does.
MAE rewards confidence over calibration (a calibrated map scores worse than a slightly over-confident one).
Maps are the Predictor's (`Predictor.predict`, as `dbd eval` scores them).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

EDGES = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0 + 1e-9]
FLOOR_BINS = 100
EPS = 1e-4  # probabilities are clipped to [EPS, 1-EPS] before taking logits (maps saturate at 0 and 1)


def maps_and_masks(data: Path, model: str, threads: int):
    import numpy as np

    from dbd_core.images import read_image, read_mask
    from dbd_core.predict import load_predictor

    samples = json.loads((data / "dataset.json").read_text(encoding="utf-8"))["samples"]
    pred = load_predictor(model, threads=threads)
    probs, gts = [], []
    for s in samples:
        gt, _ = read_mask(data / s["gt"], "blur-white")
        probs.append(pred.predict(read_image(data / s["image"])).ravel())
        gts.append(gt.ravel().astype(np.float32))
    return probs, gts


def at_temperature(probs, T: float):
    import numpy as np

    out = []
    for p in probs:
        q = np.clip(p, EPS, 1 - EPS)
        out.append((1.0 / (1.0 + np.exp(-np.log(q / (1 - q)) / T))).astype(np.float32))
    return out


def pixel_nll(probs, gts) -> float:
    import numpy as np

    p = np.clip(np.concatenate(probs), EPS, 1 - EPS)
    y = np.concatenate(gts)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def image_mae(probs, gts) -> float:
    import numpy as np

    return float(np.mean([np.abs(p - y).mean() for p, y in zip(probs, gts)]))


def reliability(probs, gts) -> dict:
    import numpy as np

    p, y = np.concatenate(probs), np.concatenate(gts)
    idx = np.clip(np.digitize(p, EDGES) - 1, 0, len(EDGES) - 2)
    rows, ece, calibrated = [], 0.0, 0.0
    for b in range(len(EDGES) - 1):
        m = idx == b
        share = float(m.mean())
        if not m.any():
            continue
        mp, q = float(p[m].mean()), float(y[m].mean())
        rows.append({"bin": f"{EDGES[b]:.1f}-{min(EDGES[b + 1], 1.0):.1f}", "share": share, "mean_p": mp, "freq": q})
        ece += share * abs(mp - q)
        calibrated += share * 2 * q * (1 - q)
    fine = np.clip((p * FLOOR_BINS).astype(np.int64), 0, FLOOR_BINS - 1)
    n = np.bincount(fine, minlength=FLOOR_BINS)
    pos = np.bincount(fine, weights=y, minlength=FLOOR_BINS)
    floor = float(np.minimum(pos, n - pos).sum() / max(1, len(p)))
    return {"rows": rows, "ece": ece, "calibrated_mae": calibrated, "mae_floor": floor}


def analyse(probs, gts, temps) -> dict:
    nll = [pixel_nll(at_temperature(probs, T), gts) for T in temps]
    best = float(temps[min(range(len(temps)), key=nll.__getitem__)])
    return {"T_best": best, "nll_T1": pixel_nll(probs, gts), "nll_best": min(nll),
            "mae_T1": image_mae(probs, gts), "mae_best": image_mae(at_temperature(probs, best), gts),
            **reliability(probs, gts)}


def describe(name: str) -> str:
    """Which weights a row measured: the card's release and sha256, so the report says when it is stale."""
    from dbd_core import weights

    if name not in weights.SHIPPED_MODELS:
        path = Path(name)
        return f"{name} (sha256 {weights.sha256_file(path)[:12]})" if path.is_file() else name
    card = json.loads(weights.card_path(weights.require_shipped(name)).read_text(encoding="utf-8"))
    return f"{name} {card.get('release', '')} (sha256 {str(card.get('sha256', ''))[:12]})".replace("  ", " ")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, required=True, help="held-out renders to fit on (dbd synth --split train)")
    ap.add_argument("--check", type=Path, help="a second set (the bench) to apply the fitted T to, never fit on")
    ap.add_argument("--models", default="teacher,student")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, help="also write the tables (markdown) here")
    args = ap.parse_args(argv)

    import numpy as np

    from dbd_core.atomic import write_text

    temps = np.exp(np.linspace(np.log(0.2), np.log(5.0), 49))
    cmd = "python benchmarks/calibration.py " + " ".join(sys.argv[1:] if argv is None else argv)
    lines = [f"Held-out renders: {args.data} (fit); `{cmd}`", "",
             "| model | set | ECE | NLL (T=1) | NLL-optimal T | NLL there | MAE (T=1) | MAE at that T | "
             "MAE of the calibrated map | MAE floor of any remapping |", "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    names = [m for m in args.models.split(",") if m]
    lines[:0] = [f"Measured {time.strftime('%Y-%m-%d')} on " + ", ".join(describe(n) for n in names) + ".", ""]
    tables = []
    for name in names:
        probs, gts = maps_and_masks(args.data, name, args.threads)
        a = analyse(probs, gts, temps)
        lines.append(f"| {name} | fit | {a['ece']:.3f} | {a['nll_T1']:.4f} | {a['T_best']:.2f} | {a['nll_best']:.4f} | "
                     f"{a['mae_T1']:.4f} | {a['mae_best']:.4f} | {a['calibrated_mae']:.4f} | {a['mae_floor']:.4f} |")
        if args.check:
            cp, cg = maps_and_masks(args.check, name, args.threads)
            c = reliability(cp, cg)
            lines.append(f"| {name} | check | {c['ece']:.3f} | {pixel_nll(cp, cg):.4f} | {a['T_best']:.2f} (fit) | "
                         f"{pixel_nll(at_temperature(cp, a['T_best']), cg):.4f} | {image_mae(cp, cg):.4f} | "
                         f"{image_mae(at_temperature(cp, a['T_best']), cg):.4f} | {c['calibrated_mae']:.4f} | "
                         f"{c['mae_floor']:.4f} |")
        tables.append((name, a["rows"]))
    for name, rows in tables:
        lines += ["", f"{name}, reliability on the fit set (pixels pooled):", "",
                  "| predicted | share of pixels | mean prediction | observed blurred |", "|---|---:|---:|---:|"]
        lines += [f"| {r['bin']} | {r['share']:.1%} | {r['mean_p']:.3f} | {r['freq']:.3f} |" for r in rows]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        write_text(args.out, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
