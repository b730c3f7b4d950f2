"""Record the shipped models' metrics on tests/data/bench_sample/ into their weights cards (run when shipping).

    python benchmarks/record_bench_sample.py                       # resources/models/{teacher,student}.json
    python benchmarks/record_bench_sample.py --events teacher=runs/teacher/events.jsonl \
        --events student=runs/student/events.jsonl                # also fill wall_time_s from the runs

Writes ``card["bench_sample"] = {n_images, mae, f_beta, max_f, auc_roc, iou, protocol, command, torch,
recorded_at}`` into ``<model>.json`` atomically; tests/test_shipped_models.py checks the shipped weights
still give these numbers. Only the JSON card changes: the sha256 in it covers the .pt weights file, which
is not touched. With --events it also records ``wall_time_s`` (the run's "done" event) and, if the card has
no ``data`` field, the recipe's [data] section, so the card carries every field the tests require.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SAMPLE = REPO / "tests" / "data" / "bench_sample"
KEYS = ("mae", "f_beta", "max_f", "auc_roc", "iou")


def sample_metrics(model: str | Path, sample: Path = SAMPLE, threads: int = 2) -> dict:
    """Metrics of a model (name or weights file) on the bench sample, via the same code as `dbd eval`."""
    from dbd_core.data.formats import open_dataset_reader
    from dbd_core.evaluate import evaluate
    from dbd_core.predict import load_predictor

    predictor = load_predictor(model, threads=threads)
    with open_dataset_reader(sample) as reader:
        report = evaluate(dataset=reader, predictor=predictor)
    if not report.ok:
        raise SystemExit("; ".join(report.errors + report.unmatched))
    s = report.summary
    return {"n_images": s["n_images"], **{k: float(s[k]) for k in KEYS}}


def record(name: str, weights: Path, events: Path | None, command: str) -> dict:
    import torch

    from dbd_core.atomic import write_json
    from dbd_core.weights import card_path, verify_weights

    status, detail = verify_weights(weights)
    if status != "ok":
        raise SystemExit(f"{weights}: {detail}")
    cp = card_path(weights)
    card = json.loads(cp.read_text(encoding="utf-8"))
    metrics = sample_metrics(weights)
    card["bench_sample"] = {
        **metrics,
        "data": str(SAMPLE.relative_to(REPO)),
        "protocol": "dbd eval protocols (metrics.Evaluator): mae per image; f_beta beta^2=0.3 at 0.5; max_f "
                    "dataset-level over 256 thresholds; auc_roc pooled pixels; iou at 0.5",
        "command": command, "torch": torch.__version__,
        "recorded_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    if events is not None:
        # Summed over every segment: a run resumed after an interruption has several, and its last
        # "done" event times only the final one.
        from ship_model import run_segments

        card["wall_time_s"] = run_segments(events)["wall_time_s"]
        card["events"] = str(events)
    if "data" not in card and isinstance(card.get("recipe"), dict) and "data" in card["recipe"]:
        card["data"] = card["recipe"]["data"]
    write_json(cp, card)
    return card["bench_sample"]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="teacher,student")
    ap.add_argument("--models-dir", type=Path, default=REPO / "resources" / "models")
    ap.add_argument("--events", action="append", default=[], metavar="NAME=FILE",
                    help="training events.jsonl of a model, for wall_time_s")
    args = ap.parse_args(argv)
    events = {}
    for item in args.events:
        name, _, path = item.partition("=")
        events[name] = Path(path)
    command = shlex.join(["python", "benchmarks/record_bench_sample.py", *(argv if argv is not None else sys.argv[1:])])
    import torch

    torch.set_num_threads(2)
    for name in [m.strip() for m in args.models.split(",") if m.strip()]:
        rec = record(name, args.models_dir / f"{name}.pt", events.get(name), command)
        print(f"{name}: " + ", ".join(f"{k} {rec[k]:.4f}" for k in KEYS) + f" on {rec['n_images']} images")
    return 0


if __name__ == "__main__":
    sys.exit(main())
