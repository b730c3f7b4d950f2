"""Render 16 synthetic training samples into a contact sheet for checking them by eye.

    python benchmarks/contact_sheet.py [--sharp /work/shared/data/sharp] [--seed 1] [--out benchmarks/synth_contact_sheet.jpg]

Each cell: the rendered photo with the blur mask's outline (yellow), a mask thumbnail at the top
right (white = blurred) and the scene type with its layer radii (px).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from dbd_core.atomic import atomic_path  # noqa: E402
from dbd_core.data.synth import SharpPhotoSource, SynthConfig, render_sample  # noqa: E402


def cell(image: np.ndarray, mask: np.ndarray, info: dict) -> np.ndarray:
    out = image[..., ::-1].copy()  # BGR for OpenCV drawing
    contours, _ = cv2.findContours(mask, cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE)
    cv2.drawContours(out, contours, -1, (0, 255, 255), 1)
    t = 80
    thumb = cv2.resize(mask * 255, (t, t), interpolation=cv2.INTER_AREA)
    out[2:2 + t, -t - 2:-2] = thumb[..., None]
    radii = ",".join(f"{r:.1f}" if not isinstance(r, list) else f"{r[0]:.1f}-{r[1]:.1f}" for r in info["radii"])
    label = f"{info['scene']} r={radii}"
    cv2.putText(out, label, (4, out.shape[0] - 6), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(out, label, (4, out.shape[0] - 6), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sharp", default="/work/shared/data/sharp")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--start", type=int, default=0)
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "synth_contact_sheet.jpg"))
    args = ap.parse_args()
    cv2.setNumThreads(1)
    src = SharpPhotoSource(args.sharp, "train")
    cfg = SynthConfig()
    cells = [cell(*render_sample(src, args.start + i, args.seed, cfg)) for i in range(16)]
    rows = [np.concatenate(cells[r * 4:(r + 1) * 4], axis=1) for r in range(4)]
    sheet = np.concatenate(rows, axis=0)
    out = Path(args.out)
    params = [cv2.IMWRITE_JPEG_QUALITY, 88] if out.suffix.lower() in (".jpg", ".jpeg") else \
        [cv2.IMWRITE_PNG_COMPRESSION, 9]
    ok, buf = cv2.imencode(out.suffix, sheet, params)
    with atomic_path(out) as tmp:
        buf.tofile(str(tmp))
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
