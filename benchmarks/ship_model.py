"""Ship a trained run as resources/models/<name>.pt with a complete model card.

    python benchmarks/ship_model.py teacher --run runs/teacher --config resources/configs/teacher.toml --half
    python benchmarks/ship_model.py student --run runs/student --config resources/configs/student.toml \
        --teacher-weights resources/models/teacher.pt
    python benchmarks/ship_model.py teacher --run runs/teacher_stage12 --weights runs/teacher_stage12/interp.pt \
        --config resources/configs/teacher_stage12.toml --half   # a WiSE-FT point (interpolate_weights.py)
    python benchmarks/record_bench_sample.py          # then: bench_sample metrics into the cards

The card records the architecture, parameters, the recipe (path and full TOML text), the data, the wall time
summed over every segment of the run (a run resumed after an interruption has several), the steps, the
final validation metrics with their protocol, and (written by save_model) the sha256 of the weights file.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def run_segments(events_path: Path) -> dict:
    """Wall time and steps over all segments of a run (each 'start' event opens one)."""
    segments, current, last_done = [], None, None
    for line in events_path.read_text(encoding="utf-8").splitlines():
        try:
            ev = json.loads(line)
        except ValueError:
            continue
        if ev.get("type") == "start":
            if current:
                segments.append(current)
            current = {"t0": ev["time"], "t1": ev["time"], "start_step": ev.get("start_step", 0),
                       "total_steps": ev.get("total_steps")}
        elif current is not None:
            current["t1"] = ev.get("time", current["t1"])
            if "step" in ev:
                current["end_step"] = ev["step"]
        if ev.get("type") == "done":
            last_done = ev
    if current:
        segments.append(current)
    if last_done is None:
        raise SystemExit(f"{events_path}: the run has no 'done' event (it did not finish)")
    return {
        "wall_time_s": round(sum(s["t1"] - s["t0"] for s in segments), 1),
        "segments": [{"from_step": s["start_step"], "to_step": s.get("end_step"), "total_steps": s["total_steps"],
                      "wall_s": round(s["t1"] - s["t0"], 1)} for s in segments],
        "steps": last_done.get("step"),
        "summary": last_done.get("summary", {}),
    }


def validation_protocol(val: dict) -> str:
    """What the card's validation numbers were measured on, in words, from the recipe's [val]."""
    if val.get("holdout") == "photos":
        what = (f"renders of held-out source photos ({val['fraction']:g} of them, never rendered for training)"
                + (f", rendered as the bench renders (native-scale centre crops at {val.get('size') or 'data.size'} px,"
                   " no one-class scene)" if val.get("render") == "bench" else ", rendered as the training renders"))
    else:
        what = f"held-out synthetic renders of the training distribution ({val['fraction']:g} of the items)"
    return f"{what}, {val.get('batches') or 'all'} batches, selected by val.score = {val.get('score')!r}; " \
           "dbd_core.metrics.Evaluator"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("name", choices=["teacher", "student"])
    ap.add_argument("--run", type=Path, required=True, help="run folder with model.pt and events.jsonl")
    ap.add_argument("--config", type=Path, required=True, help="the recipe the run used")
    ap.add_argument("--weights", type=Path, help="the weights to ship (default: RUN/model.pt); an interpolation "
                    "written by benchmarks/interpolate_weights.py brings its report into the card")
    ap.add_argument("--half", action="store_true", help="store float16 weights (half the size)")
    ap.add_argument("--teacher-weights", type=Path, help="student: the teacher it was distilled from")
    ap.add_argument("--models-dir", type=Path, default=REPO / "resources" / "models")
    ap.add_argument("--note", default="", help="free text for the card (e.g. how the run was interrupted)")
    ap.add_argument("--guided-radius", type=int, default=None, metavar="PX",
                    help="the guided filter's window for these weights (card inference.guided_radius), as "
                         "measured by benchmarks/upsample_radius.py; default: upsample.default_radius")
    args = ap.parse_args(argv)

    import torch

    from dbd_core.train.config import load_config
    from dbd_core.weights import card_path, load_model_file, save_model, sha256_file

    model, weights_card = load_model_file(args.weights or args.run / "model.pt")
    interp = None
    run_card = weights_card
    if args.weights is not None:  # the run's own card still says how it was trained; its network is not needed
        interp = weights_card.get("interpolation")
        run_card = json.loads(card_path(args.run / "model.pt").read_text(encoding="utf-8"))
    cfg = load_config(args.config)
    run = run_segments(args.run / "events.jsonl")
    summary = run["summary"]
    data = dict(cfg["data"])
    data["sources"] = "BSDS500 train+val, Kodak24, McMaster (../shared/data/sharp; BSDS500 test photos excluded: "\
                      "they are the benchmark's)"
    data["rendering"] = "synthetic defocus rendered on the fly (dbd_core.data.synth), deterministic by seed and index"
    card = {
        "name": args.name,
        "description": {"teacher": "DeFusionNet-style teacher on EfficientNet-Lite0 (FSHF/FSEF, FFRM with CAM, FAM, "
                                   "3 recurrent cross-layer refinement steps, deep supervision, DenseASPP + non-local)",
                        "student": "compact student distilled from the teacher with the Distill-DBDGAN objective"
                        }[args.name],
        "polarity": "output probability 1 = blurred (out of focus)",
        "recipe": {"config": str(args.config), "toml": args.config.read_text(encoding="utf-8"),
                   "command": run_card.get("command") or f"dbd train {args.name} --config {args.config}"},
        "data": data,
        "training": {"steps": run["steps"], "segments": run["segments"], "device": "cpu (2 cores)",
                     "torch": torch.__version__, "note": args.note},
        "wall_time_s": run["wall_time_s"],
        "metrics": {"validation": summary.get("best_metrics") or summary.get("metrics"),
                    "best_step": summary.get("best_step"),
                    "protocol": validation_protocol(cfg["val"])},
        "shipped_by": shlex.join(["python", "benchmarks/ship_model.py", *(argv if argv is not None else sys.argv[1:])]),
    }
    if interp is not None:
        # The run's own choice (its best step) is not what ships: the interpolation's kept alpha is, chosen by
        # the same rule on the same held-out renders, so its row is the card's validation.
        kept = next(r for r in interp["alphas"] if r["alpha"] == interp["kept_alpha"])
        card["interpolation"] = interp
        card["metrics"]["validation"] = kept
        card["metrics"]["best_step"] = None
        card["metrics"]["selected"] = (f"WiSE-FT: alpha {interp['kept_alpha']:g} between {interp['start']} (sha256 "
                                       f"{interp['start_sha256'][:12]}) and {interp['end']}; {interp['verdict']}")
        card["recipe"]["command"] += " && " + interp.get("command", "python benchmarks/interpolate_weights.py ...")
    if args.teacher_weights:
        card["teacher"] = {"file": args.teacher_weights.name, "sha256": sha256_file(args.teacher_weights)}
    if args.guided_radius is not None:
        if args.guided_radius < 1:
            raise SystemExit("--guided-radius must be >= 1")
        card["inference"] = {"guided_radius": args.guided_radius,
                             "why": "measured for these weights with benchmarks/upsample_radius.py"}
    shipped = card_path(args.models_dir / f"{args.name}.pt")
    if args.guided_radius is None and shipped.exists():
        old = (json.loads(shipped.read_text(encoding="utf-8")).get("inference") or {}).get("guided_radius")
        if old is not None:  # a window belongs to the weights it was measured on: never carried over silently
            print(f"note: the shipped {args.name} used a {old} px guided window; these weights get the default. "
                  "Measure them (benchmarks/upsample_radius.py) and ship with --guided-radius N to choose one.",
                  file=sys.stderr)
    out = save_model(args.models_dir / f"{args.name}.pt", model, card, half=args.half)
    print(f"shipped {out} ({out.stat().st_size / 1e6:.2f} MB), wall time {run['wall_time_s'] / 60:.1f} min, "
          f"{run['steps']} steps")
    return 0


if __name__ == "__main__":
    sys.exit(main())
