"""``dbd info``: the models, their size and cost, and where their weights come from."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from dbd_core.errors import InputError

FLOPS_SIZE = (320, 320)


def add_parser(sub) -> None:
    p = sub.add_parser(
        "info",
        help="models: parameters, GFLOPs at 320x320, where the weights come from",
        description="List the models (teacher, student, lbp and any other weights in the models folder, "
        "plus --weights files): parameter count, GFLOPs of one 320x320 forward pass (2 x multiply-adds), "
        "and where the weights come from (file + sha256 check against its card, or how to get them).",
    )
    p.add_argument("--weights", nargs="*", default=[], metavar="FILE", help="also describe these weights files")
    p.add_argument("--no-flops", action="store_true", help="skip the FLOP count (faster)")
    p.add_argument("--json", action="store_true", help="print the table as JSON")
    p.set_defaults(func=run)


def _gflops(model) -> float | None:
    try:
        from dbd_core.nets.flops import count_flops  # written separately; absent -> "n/a"
    except ImportError:
        return None
    try:
        return count_flops(model, size=FLOPS_SIZE) / 1e9
    except Exception:  # a counting failure must not hide the rest of the report
        return None


def _describe_network(model, flops: bool) -> dict:
    from dbd_core.nets.registry import count_parameters

    return {"parameters": count_parameters(model), "gflops_320": _gflops(model) if flops else None}


def _weights_entry(name: str, path: Path, flops: bool) -> dict:
    from dbd_core.weights import load_model_file, verify_weights

    status, detail = verify_weights(path)
    entry = {"model": name, "source": str(path), "sha256_status": status, "sha256_detail": detail}
    try:
        model, card = load_model_file(path, verify=False)
    except InputError as e:
        entry.update(error=e.reason)
        return entry
    entry.update(_describe_network(model, flops))
    entry["arch"] = card.get("arch")
    entry["sha256"] = card.get("sha256")
    return entry


def collect(extra_weights=(), flops: bool = True) -> list[dict]:
    from dbd_core.nets.registry import build_model
    from dbd_core.paths import models_dir
    from dbd_core.weights import SHIPPED_MODELS, how_to_get, shipped_weights

    rows = []
    for name in SHIPPED_MODELS:
        path = shipped_weights(name)
        if path is not None:
            rows.append(_weights_entry(name, path, flops))
            continue
        row = {"model": name, "source": f"not installed: {how_to_get(name)}", "sha256_status": "missing"}
        try:  # the architecture's size and cost are known without trained weights
            row.update(_describe_network(build_model(name, pretrained=False), flops))
            row["arch"] = name
        except (KeyError, TypeError, ImportError) as e:
            row["error"] = f"architecture unavailable ({e})"
        rows.append(row)
    from dbd_core.lbp import LBPPredictor

    lbp = LBPPredictor()
    rows.append({"model": "lbp", "source": "built-in, no weights (Yi & Eramian 2016 LBP sharpness)",
                 "parameters": 0, "gflops_320": None, "sha256_status": "n/a",
                 "detail": f"windows {lbp.card['windows']} at {lbp.work_size} px, T_LBP {lbp.threshold}"})
    known = {r.get("source") for r in rows}
    others = sorted(models_dir().glob("*.pt")) if models_dir().is_dir() else []
    for path in [*others, *map(Path, extra_weights)]:
        if str(path) not in known:
            known.add(str(path))
            rows.append(_weights_entry(path.stem, path, flops))
    return rows


def _fmt_params(n) -> str:
    return "n/a" if n is None else (f"{n / 1e6:.2f} M" if n >= 1e5 else f"{n:,}")


def _fmt_flops(row) -> str:
    if row.get("model") == "lbp":
        return "n/a (not a network)"
    g = row.get("gflops_320")
    return "n/a" if g is None else f"{g:.2f}"


def run(args: argparse.Namespace) -> int:
    from dbd_core import __version__

    rows = collect(args.weights, flops=not args.no_flops)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 1 if any("error" in r for r in rows) else 0
    print(f"dbd {__version__}: maps are float [0,1], 1 = blurred; PNG maps 255 = blurred")
    for r in rows:
        print(f"\n{r['model']}")
        if "arch" in r and r["arch"] != r["model"]:
            print(f"  architecture: {r['arch']}")
        print(f"  parameters:   {_fmt_params(r.get('parameters'))}")
        print(f"  GFLOPs @320:  {_fmt_flops(r)}")
        print(f"  weights:      {r['source']}")
        if r.get("sha256_status") not in (None, "n/a", "missing"):
            print(f"  sha256:       {r['sha256_status']} ({r['sha256_detail']})")
        if r.get("detail"):
            print(f"  settings:     {r['detail']}")
        if r.get("error"):
            print(f"  error:        {r['error']}")
    return 1 if any("error" in r for r in rows) else 0
