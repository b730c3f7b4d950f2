"""Weights between a released model and its continuation (WiSE-FT), judged on the continuation's held-out renders.

    python benchmarks/interpolate_weights.py --config resources/configs/teacher_stage10.toml \
        --start resources/models/teacher.pt --end runs/teacher_stage10/last_weights.pt \
        --sharp ../shared/data/sharp --out runs/teacher_stage10/interpolated.pt --json runs/teacher_stage10/interp.json

For each alpha in --alphas the network ``start + alpha * (end - start)`` is scored on the validation set the
recipe defines (val.fraction, val.holdout, val.render, val.batches: the renders its run validated on, never
the benchmark), and the kept alpha is chosen as the run chooses its weights under val.score = "release": the
lowest held-out MAE whose F-beta and log-loss stay within the release rule's bounds of alpha = 0 (the released
model). Written (atomically) only when that alpha is not 0. Stage 8 is why: its continuation lowered the bench
MAE by 0.011 while its log-loss rose beyond the rule; a point between the two may keep most of one and none of
the other, and choosing it on held-out photos keeps the benchmark out of the choice.

The interpolation is exact for a continuation trained with frozen BatchNorm statistics (model.freeze_bn: both
ends share them); otherwise the running statistics are interpolated too, which is only approximate.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _alphas(text: str) -> list[float]:
    vals = sorted({float(a) for a in text.split(",") if a.strip()} | {0.0})
    if any(not 0.0 <= a <= 1.0 for a in vals):
        raise SystemExit(f"--alphas: every alpha must be in [0, 1], got {text!r}")
    return vals


def _end_state(path: str, swa: bool, start_model) -> dict:
    """The continuation's state dict from a weights file or a training checkpoint (same network as start)."""
    from dbd_core.errors import InputError
    from dbd_core.train.checkpoint import load_checkpoint
    from dbd_core.weights import load_model_file

    # The weights loader first (weights_only, and it checks the card's sha256); a training checkpoint is
    # what it refuses, so each file is read as what it is, once.
    try:
        end_model, _ = load_model_file(path)
    except InputError as not_weights:
        try:
            payload = load_checkpoint(path)
        except InputError:
            raise SystemExit(f"{not_weights}; nor is it a training checkpoint") from None
    else:
        if swa:
            raise SystemExit("--end-swa needs a run's checkpoint.pt, not a weights file")
        return _same_network(path, end_model.arch_name, end_model.arch_kwargs, start_model, end_model.state_dict())
    arch, kwargs = payload["arch"]["model"]
    state = payload["modules"]["model"]
    if swa:
        mean = ((payload.get("extra") or {}).get("swa") or {}).get("mean")
        if not mean:
            raise SystemExit(f"{path}: the checkpoint holds no weight average ([swa] off, or no snapshot yet)")
        state = {k: (mean[k].to(v.dtype) if k in mean else v) for k, v in state.items()}
    return _same_network(path, arch, kwargs, start_model, state)


def _same_network(path, arch, kwargs, start_model, state: dict) -> dict:
    if (arch, dict(kwargs)) != (start_model.arch_name, dict(start_model.arch_kwargs)):
        raise SystemExit(f"{path}: network {arch} {kwargs} is not the start's {start_model.arch_name} "
                         f"{start_model.arch_kwargs}")
    return state


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", required=True, help="the continuation's recipe (its [val] defines the held-out set)")
    ap.add_argument("--start", required=True, help="the released weights (alpha = 0)")
    ap.add_argument("--end", required=True, help="the continuation's weights (alpha = 1): a weights file, or a run's "
                    "checkpoint.pt (its last step's network)")
    ap.add_argument("--end-swa", action="store_true", help="with a checkpoint: its weight average ([swa]) instead")
    ap.add_argument("--alphas", default="0.25,0.5,0.75,1", help="comma-separated alphas in [0, 1] (0 is always scored)")
    ap.add_argument("--sharp", default=None, help="folder of sharp photos (overrides the recipe's data.sharp)")
    ap.add_argument("--out", default=None, help="where to write the kept interpolation (nothing written without it)")
    ap.add_argument("--json", default=None, help="write every alpha's metrics and the verdict here")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    from dbd_core.weights import card_path

    if args.json and args.out and Path(args.json).resolve() == card_path(args.out).resolve():
        raise SystemExit(f"--json {args.json} is the card of --out {args.out} (same stem, .json): the report would "
                         "overwrite the card and its sha256; name it differently")

    import torch

    from dbd_core.atomic import write_json
    from dbd_core.release import within_bounds
    from dbd_core.train.config import load_config
    from dbd_core.train.data import build_dataset, train_and_validation
    from dbd_core.train.swa import interpolate_states
    from dbd_core.train.validate import evaluate
    from dbd_core.weights import load_model_file, save_model, sha256_file

    torch.set_num_threads(args.threads)
    cfg = load_config(args.config)
    if cfg["val"]["fraction"] <= 0:
        raise SystemExit(f"{args.config}: the recipe holds nothing out (val.fraction = 0): nothing to judge on")
    _, val = train_and_validation(cfg, build_dataset(cfg, path=args.sharp))
    n = cfg["val"]["batches"] * cfg["data"]["batch_size"] or len(val)
    renders = [val[i] for i in range(min(n, len(val)))]  # rendered once, scored for every alpha
    model, _ = load_model_file(args.start)
    start_state = {k: v.clone() for k, v in model.state_dict().items()}
    end_state = _end_state(args.end, args.end_swa, model)
    bn_same = all(torch.equal(start_state[k], end_state[k]) for k in start_state if "running_" in k)

    rows = []
    for a in _alphas(args.alphas):
        model.load_state_dict(interpolate_states(start_state, end_state, a))
        m = evaluate(model, renders, torch.device("cpu"), batch_size=cfg["data"]["batch_size"])
        rows.append({"alpha": a, **{k: m[k] for k in ("mae", "f_beta", "nll", "auc_roc", "iou") if k in m}})
        r = rows[-1]
        print(f"alpha {a:.2f}: MAE {r['mae']:.4f}  F-beta {r['f_beta']:.4f}  log-loss {r['nll']:.4f}  "
              f"AUC {r['auc_roc']:.4f}", flush=True)
    base = rows[0]
    ok = [r for r in rows if within_bounds(r, base).ship]
    best = min(ok, key=lambda r: (r["mae"], r["alpha"]))
    verdict = str(within_bounds(best, base))
    print(f"kept alpha {best['alpha']:.2f} ({len(renders)} held-out renders of {len(val.source) if hasattr(val, 'source') else '?'} "
          f"photos; {verdict})")
    if not bn_same:
        print("note: the two ends' BatchNorm statistics differ (no freeze_bn): the interpolated statistics are approximate")
    report = {"command": shlex.join(["python", "benchmarks/interpolate_weights.py",
                                     *(sys.argv[1:] if argv is None else argv)]),
              "config": str(args.config), "start": str(args.start), "start_sha256": sha256_file(args.start),
              "end": str(args.end), "end_sha256": sha256_file(args.end), "held_out_renders": len(renders),
              "batchnorm_shared": bn_same, "alphas": rows, "kept_alpha": best["alpha"], "verdict": verdict}
    if args.out and best["alpha"] > 0:
        model.load_state_dict(interpolate_states(start_state, end_state, best["alpha"]))
        save_model(args.out, model, card={"interpolation": report})
        print(f"wrote {args.out}")
    elif args.out:
        print(f"nothing written: no alpha above 0 has a lower held-out MAE within the rule's bounds of {args.start}")
    if args.json:
        write_json(args.json, report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
