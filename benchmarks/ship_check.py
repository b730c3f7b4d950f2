"""Score a candidate weights file against the shipped model on the bench and apply the release rule.

    python benchmarks/ship_check.py student --candidate runs/student_stage7/model.pt --data BENCH [--json FILE]

Both are evaluated with the same code as `dbd eval` (dbd_core.evaluate); the rule is dbd_core.release.judge
(lower MAE, F-beta at most 0.003 lower, pixel log-loss at most 0.005 higher). Exit code 0 = ship, 1 = keep.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", help="the shipped model to compare with (teacher, student) or a weights file")
    ap.add_argument("--candidate", type=Path, required=True, help="weights file of the run to judge")
    ap.add_argument("--data", type=Path, required=True, help="bench folder (dbd synth --preset bench)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", type=Path, help="write both summaries and the verdict here")
    args = ap.parse_args(argv)

    from dbd_core.data.formats import open_dataset_reader
    from dbd_core.evaluate import evaluate
    from dbd_core.predict import load_predictor
    from dbd_core.release import judge

    summaries = {}
    for label, source in (("shipped", args.model), ("candidate", str(args.candidate))):
        with open_dataset_reader(args.data) as reader:
            report = evaluate(dataset=reader, predictor=load_predictor(source, threads=args.threads))
        if report.errors:
            raise SystemExit(f"{label} ({source}): {report.errors[0]}")
        summaries[label] = report.summary
    verdict = judge(summaries["candidate"], summaries["shipped"])
    print(verdict)
    if args.json:
        from dbd_core.atomic import write_text

        clean = {k: {m: v for m, v in s.items() if m != "protocols"} for k, s in summaries.items()}
        write_text(args.json, json.dumps({**clean, "ship": verdict.ship, "reasons": verdict.reasons}, indent=2))
    return 0 if verdict.ship else 1


if __name__ == "__main__":
    sys.exit(main())
