"""Contact sheet of a `dbd screen` file: the photos it excludes, most-blurred first, each beside the map
that flagged it (red = mapped blurred, above the screen's threshold), to check the screen by eye.

    python benchmarks/screen_sheet.py --screen resources/data/sharp_screen.json --sharp ../shared/data/sharp \
        [--model teacher] [--n 24] [--out benchmarks/figures/sharp_screen.jpg]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from dbd_core.atomic import atomic_path  # noqa: E402
from dbd_core.data.screen import at_native_scale  # noqa: E402
from dbd_core.data.sharp_source import SharpPhotoSource  # noqa: E402
from dbd_core.predict import load_predictor  # noqa: E402

CELL_W, CELL_H = 240, 160


def cell(img: np.ndarray, blur_map: np.ndarray, threshold: float, label: str) -> np.ndarray:
    photo = cv2.resize(img, (CELL_W, CELL_H), interpolation=cv2.INTER_AREA)
    m = cv2.resize(blur_map, (CELL_W, CELL_H), interpolation=cv2.INTER_LINEAR) > threshold
    marked = photo.copy()
    marked[m] = (0.45 * marked[m] + 0.55 * np.array([255, 0, 0])).astype(np.uint8)
    out = np.concatenate([photo, marked], 1)[..., ::-1].copy()  # BGR for OpenCV
    cv2.putText(out, label, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (0, 0, 0), 3)
    cv2.putText(out, label, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (0, 255, 255), 1)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--screen", type=Path, required=True)
    ap.add_argument("--sharp", type=Path, required=True)
    ap.add_argument("--model", default=None, help="default: the model the screen names")
    ap.add_argument("--n", type=int, default=24, help="excluded photos shown")
    ap.add_argument("--cols", type=int, default=3)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "figures" / "sharp_screen.jpg")
    args = ap.parse_args(argv)
    doc = json.loads(args.screen.read_text())
    rows = sorted((r for r in doc["photos"] if r.get("excluded") and "error" not in r),
                  key=lambda r: -r["blurred_fraction"])[: args.n]
    source = SharpPhotoSource(args.sharp, "all")
    index = {source.relative_name(i): i for i in range(len(source))}
    predict = at_native_scale(load_predictor(args.model or doc["model"], threads=2, jit=False))
    cells = []
    for r in rows:
        img, _ = source.load(index[r["name"]], doc["short_side"])
        cells.append(cell(img, predict(img), doc["threshold"], f"{r['blurred_fraction']:.2f} {Path(r['name']).name}"))
    while len(cells) % args.cols:
        cells.append(np.zeros_like(cells[0]))
    sheet = np.concatenate([np.concatenate(cells[i:i + args.cols], 1) for i in range(0, len(cells), args.cols)], 0)
    with atomic_path(args.out) as tmp:
        ext = args.out.suffix.lower() or ".jpg"
        params = [cv2.IMWRITE_JPEG_QUALITY, 85] if ext in (".jpg", ".jpeg") else []
        ok, buf = cv2.imencode(ext, sheet, params)
        if not ok:
            raise SystemExit(f"{args.out}: cannot encode the sheet as {ext}")
        tmp.write_bytes(buf.tobytes())
    print(f"{len(rows)} of {doc['n_excluded']} excluded photos -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
