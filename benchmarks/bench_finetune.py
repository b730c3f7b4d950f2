"""Fine-tune benchmark: `dbd finetune` of the student on 20 photos of ~12 megapixels (4000x3000 JPEG).

    python benchmarks/bench_finetune.py [--data FOLDER_DATASET] [--weights resources/models/student.pt]
                                        [--sharp ../shared/data/sharp] [--threads 2] [--keep DIR]

Without --data it builds a temporary dbd-dataset folder: 20 synthetic-defocus samples rendered by
dbd_core.data.synth at 400x400 from the sharp photos (BSDS500 etc.; blur radii scaled by 400/320 so they
match the training renders at the working size), upscaled to 4000x3000 (bicubic photo,
nearest-neighbour mask; the 4:3 stretch and the 10x upscale are fine for a timing benchmark: the network
sees the same pixel counts and JPEG decode costs as a camera photo), light sensor-like noise added at full
size so the JPEGs are not unrealistically smooth, stored as JPEG quality 92 (~12 MP each). Building the set
is not timed. Without --weights' file it saves an untrained student (ImageNet backbone) to a temporary file.

Then it runs the real command path -- dbd_core.cli.main.main(["finetune", ...]) -- with the shipped recipe
(resources/configs/finetune_student.toml) and prints the wall time broken down from the run's events:
  load + resize cache  decoding the photos (reduced JPEG decode) and caching them at data.max_side,
                       which happens inside the first "before" validation and the first training steps
  training steps       sum of step time (from the step events' timestamps, minus the validations)
  validation           before / during / after validations
  writing              saving the new version (weights + card)
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def build_dataset(out: Path, sharp: Path, n: int = 20, size=(4000, 3000), seed: int = 7) -> None:
    import cv2

    from dbd_core.data.formats import open_writer
    from dbd_core.data.synth import SharpPhotoSource, SynthConfig, render_sample

    src = SharpPhotoSource(sharp, split="train")
    cfg = SynthConfig.at_render_size(400, p_jpeg=0.0)  # blur as a 320 px render's at the working size
    rng = np.random.default_rng(seed)
    with open_writer(out, created_by="benchmarks/bench_finetune.py") as w:
        for i in range(n):
            img, mask, info = render_sample(src, i, seed, cfg)
            big = cv2.resize(img, size, interpolation=cv2.INTER_CUBIC).astype(np.float32)
            big += rng.normal(0, 2.0, big.shape).astype(np.float32)
            big = np.clip(big, 0, 255).astype(np.uint8)
            m = cv2.resize(mask, size, interpolation=cv2.INTER_NEAREST)
            ok, buf = cv2.imencode(".jpg", big[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 92])
            assert ok
            w.add(f"bench{i:02d}", buf.tobytes(), m, provenance={"synth": info, "upscaled_to": list(size)},
                  image_ext=".jpg")


def breakdown(events: list[dict], total_s: float) -> dict:
    """Wall time by phase from the events' timestamps (each event is logged when it happens)."""
    t = [e["time"] for e in events]
    start = events[0]["time"]
    val_s, step_s, first_val_s = 0.0, 0.0, 0.0
    for prev, ev in zip(events, events[1:]):
        dt = ev["time"] - prev["time"]
        if ev["type"] == "val":
            val_s += dt
            if ev.get("phase") == "before":
                first_val_s = dt
        elif ev["type"] == "step":
            step_s += dt
    done = events[-1]
    write_s = max(0.0, total_s - (t[-1] - start))
    return {"total_s": total_s, "before_eval_incl_val_decode_s": first_val_s, "validation_s": val_s,
            "training_steps_s": step_s, "other_s": (t[-1] - start) - val_s - step_s, "after_done_s": write_s,
            "steps": done.get("step"), "stopped_early": done.get("summary", {}).get("stopped_early")}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, help="an existing dbd-dataset folder (default: build 20 x 12 MP)")
    ap.add_argument("--weights", type=Path, default=REPO / "resources/models/student.pt")
    ap.add_argument("--sharp", type=Path, default=REPO.parent / "shared/data/sharp")
    ap.add_argument("--config", type=Path, help="recipe (default: the shipped finetune_student.toml)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--keep", type=Path, help="work folder to keep (default: a temporary one)")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    work = args.keep or Path(tempfile.mkdtemp(prefix="bench_finetune_"))
    work.mkdir(parents=True, exist_ok=True)
    data = args.data
    if data is None:
        data = work / "photos"
        if not data.exists():
            t = time.perf_counter()
            build_dataset(data, args.sharp)
            print(f"built 20 x 4000x3000 JPEG dataset in {time.perf_counter() - t:.1f} s (not timed): {data}")
    weights = args.weights
    if not weights.is_file():
        from dbd_core.nets import build_model
        from dbd_core.weights import save_model

        weights = save_model(work / "models" / "student.pt", build_model("student"), {"note": "untrained, benchmark"})
        print(f"{args.weights} missing: using an untrained student (ImageNet backbone) {weights}")
    out = work / "out"

    # The decode + resize-to-cache cost, measured on its own (the run pays it once, inside its first
    # validation and first training steps).
    from dbd_core.train.config import load_config
    from dbd_core.train.data import build_dataset as training_dataset
    from dbd_core.paths import configs_dir

    cfg = load_config(args.config or configs_dir() / "finetune_student.toml")
    t = time.perf_counter()
    ds = training_dataset(cfg, path=str(data))
    for name in ds.names:
        ds.reader.get(name)
    load_s = time.perf_counter() - t
    print(f"decode + resize {len(ds)} photos to max_side {cfg['data']['max_side']}: {load_s:.1f} s "
          f"(reduction 1/{ds.reader.reduction_for(ds.names[0])})")
    del ds

    from dbd_core.cli.main import main as dbd

    argv = ["finetune", "--data", str(data), "--model", str(weights), "--out", str(out), "--quiet",
            "--threads", str(args.threads)] + (["--config", str(args.config)] if args.config else [])
    print("dbd " + " ".join(argv))
    t0, wall0 = time.perf_counter(), time.time()
    rc = dbd(argv)
    total = time.perf_counter() - t0
    if rc != 0:
        print(f"dbd finetune failed (exit {rc})")
        return rc
    events = [json.loads(x) for x in (out / "runs" / "finetune-events.jsonl").read_text().splitlines()]
    events = events[[i for i, e in enumerate(events) if e["type"] == "val" and e.get("phase") == "before"][-1]:]
    b = breakdown(events, total)
    b["before_eval_incl_val_decode_s"] = events[0]["time"] - wall0  # load model, build data, first eval
    s = events[-1]["summary"]
    card = json.loads(Path(s["output"]).with_suffix(".json").read_text())
    print(f"\nwall time {total:.1f} s ({'within' if total < 120 else 'OVER'} the 2-minute budget), "
          f"{b['steps']} steps{' (stopped early)' if b['stopped_early'] else ''}")
    print(f"  start: load model + 'before' eval (decodes the held-out photos) {b['before_eval_incl_val_decode_s']:6.1f} s")
    print(f"  training steps (incl. first decode + cache of training photos) {b['training_steps_s']:6.1f} s")
    print(f"  validation (all, incl. 'before')                                {b['validation_s']:6.1f} s")
    print(f"  of which decode + resize cache (measured separately above)     {load_s:6.1f} s")
    print(f"  final eval + writing the new version                            {b['after_done_s'] + b['other_s']:6.1f} s")
    for k in ("before", "after"):
        m = s[k]
        print(f"  {k:6s} mae={m['mae']:.4f} f_beta={m['f_beta']:.4f} max_f={m.get('max_f', float('nan')):.4f}")
    print(f"  new version {s['output']} (parent sha256 {card['parent']['sha256'][:12]}...)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
