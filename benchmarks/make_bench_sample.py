"""Copy the first samples of the synthetic benchmark set into tests/data/bench_sample/ (a dbd dataset folder).

The shipped-weights test (tests/test_shipped_models.py) scores the shipped models on these few images and
compares with the numbers recorded in the weights cards (benchmarks/record_bench_sample.py): a small, fast
check that the weights a fresh clone gets still behave as measured.

    python benchmarks/make_bench_sample.py --bench BENCH_DIR          # from a rendered bench set
    python benchmarks/make_bench_sample.py --sharp ../shared/data/sharp  # renders the first N itself

Sample i of the bench preset (seed 2026) is the same on every run, so rendering only the first N gives the
same files as cutting them from a full ``dbd synth --preset bench`` folder.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from dbd_core.atomic import write_bytes, write_json, write_text  # noqa: E402

DEFAULT_OUT = REPO / "tests" / "data" / "bench_sample"

README = """# bench_sample: the first {n} samples of the synthetic benchmark set

Made by `python benchmarks/make_bench_sample.py` from `dbd synth --preset bench` (seed 2026, 320x320,
BSDS500 test photos with rendered defocus; masks gt/*.png are 255 = blurred, `gt_polarity` blur-white in
dataset.json, which also holds each sample's full provenance). Used by tests/test_shipped_models.py with
the metrics recorded in the weights cards by benchmarks/record_bench_sample.py.

| sample | source photo (BSDS500) | scene | blurred fraction |
|---|---|---|---|
{rows}

Source photos: the Berkeley Segmentation Dataset BSDS500 ("BSR" release, test split), D. Martin, C. Fowlkes,
D. Tal, J. Malik, ICCV 2001; P. Arbelaez, M. Maire, C. Fowlkes, J. Malik, "Contour Detection and
Hierarchical Image Segmentation", TPAMI 2011. Licence: distributed by UC Berkeley for research use (no
explicit open licence in the release); these derived crops are included for testing only.
"""


def copy_samples(bench: Path, out: Path, n: int) -> list[dict]:
    meta = json.loads((bench / "dataset.json").read_text(encoding="utf-8"))
    samples = sorted(meta["samples"], key=lambda s: s["name"])[:n]
    if len(samples) < n:
        raise SystemExit(f"{bench}: only {len(samples)} samples, {n} wanted")
    for s in samples:
        for key in ("image", "gt"):
            write_bytes(out / s[key], (bench / s[key]).read_bytes())
    write_json(out / "dataset.json", {**meta, "samples": samples,
                                      "note": f"first {n} samples of the bench preset (benchmarks/make_bench_sample.py)"})
    rows = "\n".join(f"| {s['name']} | {s['provenance'].get('source')} | {s['provenance'].get('scene')} | "
                     f"{s['provenance'].get('blurred_fraction')} |" for s in samples)
    write_text(out / "README.md", README.format(n=n, rows=rows))
    return samples


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--bench", type=Path, help="a rendered bench set (dbd synth --preset bench --out DIR)")
    src.add_argument("--sharp", type=Path, help="sharp photo folder: render the first N bench samples")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--n", type=int, default=6)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        bench = args.bench
        if bench is None:
            from dbd_core.cli.main import main as dbd

            bench = Path(tmp) / "bench"
            if dbd(["synth", "--preset", "bench", "--n", str(args.n), "--sharp", str(args.sharp),
                    "--out", str(bench)]) != 0:
                return 1
        samples = copy_samples(bench, args.out, args.n)
    print(f"wrote {len(samples)} image/mask pairs to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
