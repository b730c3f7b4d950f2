"""Fine-tune from the studio on real-size photos: wall time, before/after metrics, event-loop stalls.

Runs the studio's own path: a MainWindow on a project whose photos are all marked done, its Fine-tune
tab open and its Fine-tune button clicked, as a user does (dataset snapshot -> engine fine-tune on a
QThread), while a 10 ms QTimer records the longest gap of the GUI event loop. The map worker
computes the current photo's maps at the same time, as it does for a user.

Photos: synthetic defocus (dbd_core.data.synth, BSDS/Kodak sharp photos) rendered at --render px and
upscaled (cubic; masks nearest) to --size (default 4032x3024 = 12.2 MP), JPEG q92, in --work. Blur
radii and the label's CoC threshold are scaled by render/320, so that at the models' working size
(long side 320) the defocus is what a real photo shows there; unscaled, a 1.5-12 px blur at 1024 px
shrinks below a pixel at 320 and the labels could not be learnt at all.

    QT_QPA_PLATFORM=offscreen python benchmarks/bench_finetune_gui.py --weights STUDENT.pt \
        --sharp ../shared/data/sharp --out benchmarks/finetune_gui.json
    # mid-run screenshot (fewer, smaller photos are enough for the picture):
    QT_QPA_PLATFORM=offscreen python benchmarks/bench_finetune_gui.py --weights STUDENT.pt --photos 8 \
        --size 1600x1200 --screenshot docs/screenshot-finetune.png --shot-at-step 25
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cv2  # noqa: E402
import numpy as np  # noqa: E402


def make_project(work: Path, sharp: str, n: int, size: tuple[int, int], render: int, seed: int = 7) -> Path:
    """n photos with masks in work/photos, a project in work/proj with all of them done."""
    from dbd_core.annotate import ProjectStore
    from dbd_core.data.synth import SharpPhotoSource, SynthConfig, render_sample

    proj = work / "proj"
    if (proj / "project.json").exists():
        store = ProjectStore.open(proj)
        if len(store.photos) == n:
            return proj  # reuse: making 12 MP photos is not what is measured
    photos = work / "photos"
    photos.mkdir(parents=True, exist_ok=True)
    source = SharpPhotoSource(sharp, split="train")
    cfg = SynthConfig.at_render_size(render)
    w, h = size
    store = ProjectStore.open(proj)
    for i in range(n):
        img, mask, _ = render_sample(source, i, seed, cfg)
        big = cv2.resize(img, (w, h), interpolation=cv2.INTER_CUBIC)
        path = photos / f"photo{i:02d}.jpg"
        cv2.imwrite(str(path), big[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 92])
        entry = store.add_photos([path])[0]
        store.save_mask(entry, cv2.resize(mask, (w, h), interpolation=cv2.INTER_NEAREST))
        entry.status = "done"
        print(f"photo {i + 1}/{n}", flush=True)
    store.save_index()
    return proj


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--weights", required=True, help="student weights file the run starts from")
    p.add_argument("--sharp", default="../shared/data/sharp", help="folder of sharp photos for the synthetic set")
    p.add_argument("--work", default="/tmp/dbd-finetune-bench", help="where photos and the project go")
    p.add_argument("--photos", type=int, default=20)
    p.add_argument("--size", default="4032x3024", help="photo size WxH")
    p.add_argument("--render", type=int, default=1024, help="synthetic render size before upscaling")
    p.add_argument("--teacher", default="teacher", help="model of the teacher view (teacher, lbp or a file)")
    p.add_argument("--steps", type=int, help="override the recipe's run.steps")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path, help="JSON with the numbers")
    p.add_argument("--screenshot", type=Path, help="grab the window mid-run, then cancel the run")
    p.add_argument("--shot-at-step", type=int, default=20)
    p.add_argument("--baseline", type=float, default=0, help="seconds of idle-window stall measurement first")
    p.add_argument("--profile-stalls", type=Path,
                   help="text file: every GUI-thread stall > 50 ms with the stacks sampled during it")
    args = p.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    w, h = (int(v) for v in args.size.lower().split("x"))
    t0 = time.perf_counter()
    proj = make_project(Path(args.work), args.sharp, args.photos, (w, h), args.render)
    t_make = time.perf_counter() - t0

    from PySide6.QtWidgets import QApplication

    import app  # noqa: F401
    from app.finetune_worker import StallMeter
    from app.main_window import MainWindow
    from app.models import ModelProvider
    from app.theme import apply_theme
    from dbd_core.weights import load_model_file

    qapp = QApplication.instance() or QApplication([])
    apply_theme(qapp)
    win = MainWindow(ModelProvider({"teacher": args.teacher, "student": str(Path(args.weights).resolve())},
                                   threads=args.threads), project=proj)
    win.resize(1600, 950)
    win.show()
    ctl = win.finetune
    ctl.dock.raise_()  # the tab the user clicks Fine-tune in (before the idle baseline, like the user's visit)
    ctl.inform = lambda text: print("message:", text)
    ctl.ask = lambda text: True
    if args.steps:
        from dbd_core.train.finetune import default_config

        ctl.config = default_config(load_model_file(args.weights)[0].arch_name)
        ctl.config["run"]["steps"] = args.steps
    meter = StallMeter(10)
    profiler = None
    if args.profile_stalls:
        from app.stall_profiler import StallProfiler

        from PySide6.QtCore import QTimer

        profiler = StallProfiler(late_ms=50, sample_ms=20)
        QTimer.singleShot(0, profiler.start)  # inside the event loop, like the meter
    result: dict = {}
    marks: dict = {}

    def on_event(ev):
        t = time.perf_counter() - marks["start"]
        if ev["type"] == "export" and ev["done"] == ev["total"]:
            marks.setdefault("export_s", t)
        if ev["type"] == "start":
            marks.setdefault("train_start_s", t)
        if ev["type"] == "step":
            print(f"step {ev['step']}/{ev['total_steps']} loss {ev['losses'].get('total', 0):.4f} "
                  f"eta {ev['eta_s']:.0f}s  max stall so far {meter.max_stall_ms:.0f} ms", flush=True)
            if args.screenshot and ev["step"] >= args.shot_at_step and "shot" not in marks:
                marks["shot"] = True
                qapp.processEvents()
                args.screenshot.parent.mkdir(parents=True, exist_ok=True)
                win.grab().save(str(args.screenshot))
                print(f"screenshot: {args.screenshot}")
                ctl.cancel()
        if ev["type"] in ("done", "cancelled", "error"):
            result.update(ev)
            marks["end_s"] = t
            meter.stop()
            qapp.quit()

    ctl.run_event.connect(on_event)
    from PySide6.QtCore import QTimer

    def begin_run():
        if args.baseline:  # the same meter with the window idle: what the machine alone costs
            meter.stop()
            marks["baseline"] = {"max_stall_ms": round(meter.max_stall_ms, 1),
                                 "p99_stall_ms": round(meter.percentile(99), 1), "seconds": args.baseline}
            print("idle baseline:", marks["baseline"], flush=True)
        marks["start"] = time.perf_counter()
        meter.start()
        ctl.panel.role.setCurrentText("student")
        ctl.panel.start.click()  # the button: the same slot a user's click reaches
        if not ctl.running:
            qapp.quit()

    # Both measurements start inside the running event loop, so start-up painting is not counted.
    if args.baseline:
        QTimer.singleShot(0, meter.start)
        QTimer.singleShot(int(args.baseline * 1000), begin_run)
    else:
        QTimer.singleShot(0, begin_run)
    qapp.exec()
    if "start" not in marks or not result:
        return 2
    summary = result.get("summary", {})
    report = {
        "photos": args.photos, "size": f"{w}x{h}", "megapixels": round(w * h / 1e6, 1), "render": args.render,
        "weights": str(args.weights), "result": result.get("type"), "message": result.get("message"),
        "wall_s": round(marks.get("end_s", float("nan")), 1), "export_s": round(marks.get("export_s", float("nan")), 1),
        "train_start_s": round(marks.get("train_start_s", float("nan")), 1), "make_photos_s": round(t_make, 1),
        "steps": result.get("step"), "n_train": summary.get("n_train"), "n_val": summary.get("n_val"),
        "before": summary.get("before"), "after": summary.get("after"),
        "max_stall_ms": round(meter.max_stall_ms, 1), "p99_stall_ms": round(meter.percentile(99), 1),
        "median_tick_ms": round(meter.percentile(50), 1), "ticks": len(meter.gaps_ms),
        "idle_baseline": marks.get("baseline"), "threads": args.threads, "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
        "load_avg_at_end": os.getloadavg(),
    }
    if profiler is not None:
        profiler.stop()
        base_s = args.baseline or 0.0
        head = (f"# GUI-thread stalls > {profiler.late_ms:g} ms; times from the first tick "
                f"(idle baseline until {base_s:g} s, then the run)\n")
        args.profile_stalls.parent.mkdir(parents=True, exist_ok=True)
        args.profile_stalls.write_text(head + profiler.report(40) + "\n")
        report["stalls_over_50ms"] = len(profiler.stalls)
        print(f"stall profile: {args.profile_stalls}")
    print(json.dumps(report, indent=1))
    if args.out:
        args.out.write_text(json.dumps(report, indent=1) + "\n")
    if ctl.candidate is not None:
        ctl.discard()  # the benchmark keeps no version
    win.close()
    return 0 if result.get("type") in ("done", "cancelled") else 1


if __name__ == "__main__":
    sys.exit(main())
