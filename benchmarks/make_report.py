"""Regenerate benchmarks/RESULTS.md (numbers, curves, figures) from runs on this machine.

    python benchmarks/make_report.py --sharp ../shared/data/sharp --bench-data /tmp/dbd-bench \
        --events teacher=runs/teacher/events.jsonl --events student=runs/student/events.jsonl

Parts (``--only`` any of them, repeatable; the default runs all, RESULTS.md is rewritten every time from
whatever results exist in --results):
  eval     teacher, student, lbp on the synthetic benchmark set (rendered with `dbd synth --preset bench`
           into --bench-data if it is not there) -> results/eval_<model>.json (what `dbd eval --json` writes)
           + curves_<model>.npz; PR / F-vs-threshold / ROC overlays -> figures/{pr,f_threshold,roc}.png
  bench    `dbd bench --json results/bench.json` (a subprocess, so its memory figures are its own)
  figures  real photos (skimage coffee, chelsea): photo | teacher | student | lbp maps -> figures/photo_*.png
  curves   training curves from the events.jsonl files (--events NAME=FILE) -> figures/training_<name>.png
  tta      teacher and student with flip test-time augmentation (`dbd eval --tta hflip`) on the same set
           -> results/eval_<model>_hflip.json; a table beside the plain runs' numbers
  sensitivity  mean map vs a uniform defocus radius on the bench's source photos (BSDS500 test, from --sharp;
           dbd_core.sensitivity) -> results/sensitivity.json + figures/sensitivity.png
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from dbd_core.atomic import write_json, write_text  # noqa: E402

MODELS = ("teacher", "student", "lbp")
PARTS = ("eval", "bench", "figures", "curves", "sensitivity", "tta")
TTA_MODELS = ("teacher", "student")
METRICS = (("mae", "MAE"), ("f_beta", "F-beta"), ("max_f", "max-F"), ("auc_roc", "AUC"), ("iou", "IoU"))


def _model_source(name: str, args) -> str:
    return str(getattr(args, f"weights_{name}", None) or name)


def _predictor(name: str, args, tta: str = "none"):
    from dbd_core.predict import load_predictor

    return load_predictor(_model_source(name, args), threads=args.threads, tta=tta)


# ---------------------------------------------------------------- eval

def part_eval(args, log: list[str]) -> None:
    from dbd_core.plots import save_curves

    _ensure_bench(args, log)
    curves = {}
    for name in MODELS:
        report = _eval_bench(name, args)
        np.savez(args.results / f"curves_{name}.npz", **report.curves)
        curves[name] = report.curves
    save_curves(curves, args.figures, title_suffix=f"synthetic benchmark, {report.summary['n_images']} images")


def _ensure_bench(args, log: list[str]) -> None:
    if not (args.bench_data / "dataset.json").is_file():
        if args.sharp is None:
            raise SystemExit(f"{args.bench_data}: no bench set there; give --sharp DIR to render it")
        _run(["dbd", "synth", "--preset", "bench", "--sharp", str(args.sharp), "--out", str(args.bench_data)], log)


def _eval_bench(name: str, args, tta: str = "none"):
    """Evaluate one model on the bench in-process (to keep the curves) -> the report; writes
    results/eval_<name>[_<tta>].json with the equivalent `dbd eval` command."""
    from dbd_core.data.formats import open_dataset_reader
    from dbd_core.evaluate import evaluate

    src = _model_source(name, args)
    equivalent = shlex.join(["dbd", "eval", "--model" if src in MODELS else "--weights", src, "--data",
                             str(args.bench_data), "--threads", str(args.threads)]
                            + (["--tta", tta] if tta != "none" else [])
                            + (["--limit", str(args.limit)] if args.limit else []))
    print(f"make_report: eval {name}: {equivalent}", file=sys.stderr, flush=True)
    with open_dataset_reader(args.bench_data) as reader:
        report = evaluate(dataset=reader, predictor=_predictor(name, args, tta), limit=args.limit)
    doc = report.to_json()
    doc["command"] = equivalent
    doc["dataset"] = {"data": str(args.bench_data)}
    write_json(args.results / (f"eval_{name}.json" if tta == "none" else f"eval_{name}_{tta}.json"), doc)
    return report


def part_tta(args, log: list[str]) -> None:
    _ensure_bench(args, log)
    for name in TTA_MODELS:
        _eval_bench(name, args, "hflip")


def _tta_section(args, evals: dict, commands: dict) -> list[str]:
    flips = {m: _load(args.results / f"eval_{m}_hflip.json") for m in TTA_MODELS}
    if not any(flips.values()):
        return []
    keys = (*METRICS, ("nll", "log-loss"))
    lines = ["", "## Test-time augmentation", "",
             "`--tta hflip` (dbd predict, dbd eval, dbd-studio) averages each map with the mirrored map of the "
             "mirrored photo: twice the network time, for a map that is exactly mirror-equivariant. Same bench set; "
             "ms = wall time of `Predictor.predict` per 320x320 render in the evaluation run (resize, network(s), "
             "guided upsampling).", "",
             "| model | TTA | " + " | ".join(t for _, t in keys) + " | ms per render | weights sha256 |",
             "|---|---|" + "---:|" * (len(keys) + 1) + "---|"]
    for name in TTA_MODELS:
        for tta, e in (("none", evals.get(name)), ("hflip", flips[name])):
            if e:
                lines.append(f"| {name} | {tta} | " + " | ".join(_f(e.get(k), ".4f") for k, _ in keys)
                             + f" | {_f(e.get('ms_per_image'), '.1f')} | {(e.get('weights_sha256') or 'n/a')[:12]} |")
    lines += [""] + [f"- {name} + hflip: `{flips[name]['command']}`" for name in TTA_MODELS if flips[name]]
    lines.append(f"- run here by `{commands['tta']}`")
    return lines


# ---------------------------------------------------------------- bench

def part_bench(args, log: list[str]) -> None:
    cmd = ["dbd", "bench", "--json", str(args.results / "bench.json"), "--repeats", str(args.bench_repeats),
           "--photo-repeats", str(args.photo_repeats), "--threads", str(args.threads)]
    for name in ("teacher", "student"):
        if getattr(args, f"weights_{name}", None):
            cmd += [f"--weights-{name}", str(getattr(args, f"weights_{name}"))]
    _run(cmd, log, check=False)  # a failing model is reported in bench.json; the report still shows the rest


def _run(cmd: list[str], log: list[str], check: bool = True) -> None:
    print(f"make_report: {shlex.join(cmd)}", file=sys.stderr, flush=True)
    log.append(shlex.join(cmd))
    # `python -m dbd_core.cli.main` is the `dbd` entry point without relying on PATH.
    rc = subprocess.run([sys.executable, "-m", "dbd_core.cli.main", *cmd[1:]], cwd=REPO).returncode
    if check and rc != 0:
        raise SystemExit(f"`{shlex.join(cmd)}` failed (exit {rc})")


# ---------------------------------------------------------------- figures

def part_figures(args, log: list[str]) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from skimage import data

    from dbd_core.plots import save_figure

    predictors = {name: _predictor(name, args) for name in MODELS}
    for photo in ("coffee", "chelsea"):
        rgb = getattr(data, photo)()
        fig = Figure(figsize=(4 * 3.6, 3.4), dpi=110)
        FigureCanvasAgg(fig)
        axes = fig.subplots(1, 4)
        axes[0].imshow(rgb)
        axes[0].set_title(f"skimage.data.{photo}() {rgb.shape[1]}x{rgb.shape[0]}", fontsize=9)
        for ax, (name, pred) in zip(axes[1:], predictors.items()):
            t0 = time.perf_counter()
            m = pred.predict(rgb)
            ms = (time.perf_counter() - t0) * 1000
            im = ax.imshow(m, cmap="magma", vmin=0, vmax=1)
            ax.set_title(f"{name} (mean {m.mean():.2f}, {ms:.0f} ms)", fontsize=9)
            fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02, label="P(blurred)")
        for ax in axes:
            ax.set_axis_off()
        fig.suptitle(f"{photo}: blur maps at full size, 1 = blurred", fontsize=10)
        fig.tight_layout()
        save_figure(fig, args.figures / f"photo_{photo}.png")


# ---------------------------------------------------------------- blur sensitivity

def part_sensitivity(args, log: list[str]) -> None:
    import cv2
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from dbd_core.data.synth import SynthConfig
    from dbd_core.plots import save_figure
    from dbd_core.sensitivity import sensitivity_curve

    folder = None if args.sharp is None else args.sharp / "BSDS500" / "images" / "test"
    if folder is None or not folder.is_dir():
        raise SystemExit("sensitivity: give --sharp DIR holding BSDS500/images/test (the bench's source photos)")
    files = sorted(folder.glob("*.jpg"))[: args.sensitivity_photos]
    photos = [cv2.cvtColor(cv2.imread(str(f)), cv2.COLOR_BGR2RGB) for f in files]
    doc = {"photos": f"{len(files)} first BSDS500 test photos (sorted by name) in {folder}",
           "label_threshold_px": SynthConfig().coc_threshold, "models": {}}
    for name in MODELS:
        print(f"make_report: sensitivity {name}", file=sys.stderr, flush=True)
        # predict: the full-size map users get (LBP works at 480 px inside, the networks at 320).
        doc["models"][name] = sensitivity_curve(_predictor(name, args).predict, photos).to_dict()
    write_json(args.results / "sensitivity.json", doc)
    fig = Figure(figsize=(6.4, 4.0), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    for name, c in doc["models"].items():
        line, = ax.plot(c["radii"], c["mean"], marker="o", label=f"{name}: mean P(blurred)")
        ax.plot(c["radii"], c["blurred_share"], ls="--", color=line.get_color(), alpha=0.6,
                label=f"{name}: share >= 0.5")
    ax.axvline(doc["label_threshold_px"], color="grey", lw=1, ls=":", label="label threshold (1.5 px)")
    ax.set_xlabel("uniform defocus radius (px at the 320 px working size)")
    ax.set_ylabel("map over the whole photo")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    ax.set_title(f"blur sensitivity: {len(files)} sharp BSDS500 test photos, each blurred as a whole", fontsize=9)
    fig.tight_layout()
    save_figure(fig, args.figures / "sensitivity.png")


# ---------------------------------------------------------------- training curves

def read_events(path: Path) -> tuple[list[dict], list[dict], dict | None]:
    steps, vals, done = [], [], None
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            ev = json.loads(line)
        except ValueError:
            continue  # a line cut by a crash
        kind = ev.get("type")
        if kind == "step":
            steps.append(ev)
        elif kind == "val":
            vals.append(ev)
        elif kind == "done":
            done = ev
    return steps, vals, done


def part_curves(args, log: list[str]) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from dbd_core.plots import save_figure

    for name, path in args.events.items():
        steps, vals, done = read_events(path)
        fig = Figure(figsize=(10, 3.8), dpi=110)
        FigureCanvasAgg(fig)
        ax_loss, ax_val = fig.subplots(1, 2)
        x = [e["step"] for e in steps]
        terms = sorted({k for e in steps for k in e.get("losses", {})})
        for term in terms:
            y = np.array([e["losses"].get(term, np.nan) for e in steps], float)
            k = max(1, len(y) // 50)  # moving average over ~2% of the run: raw losses are noisy at batch 4
            smooth = np.convolve(np.nan_to_num(y), np.ones(k) / k, mode="valid") if len(y) >= k else y
            line, = ax_loss.plot(x[k - 1:], smooth, lw=1.3, label=term)
            ax_loss.plot(x, y, lw=0.5, alpha=0.25, color=line.get_color())
        ax_loss.set(title=f"{name}: training losses (moving average)", xlabel="step", ylabel="loss")
        vx = [e["step"] for e in vals]
        for key in ("f_beta", "max_f", "mae", "iou"):
            ax_val.plot(vx, [e["metrics"].get(key, np.nan) for e in vals], "o-", ms=3, label=key)
        ax_val.set(title=f"{name}: validation (held-out renders)", xlabel="step", ylim=(0, 1))
        for ax in (ax_loss, ax_val):
            ax.grid(True, alpha=0.3)
            ax.legend(fontsize=8)
        wall = f", {done['summary']['wall_s'] / 3600:.2f} h" if done else " (run not finished)"
        fig.suptitle(f"{path}{wall}", fontsize=9)
        fig.tight_layout()
        save_figure(fig, args.figures / f"training_{name}.png")


# ---------------------------------------------------------------- RESULTS.md

def _load(path: Path):
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def _spread(b: dict) -> str:
    from dbd_core.bench import latency_spread

    text = latency_spread(b)
    eager = b.get("latency_net_eager_ms")
    if text is None:
        return ""
    return f" ({text}" + ("" if eager is None else f"; eager {eager:.1f}") + ")"


def _f(v, spec=".3f") -> str:
    return "n/a" if v is None else format(v, spec)


def write_results(args, commands: dict[str, str]) -> Path:
    evals = {m: _load(args.results / f"eval_{m}.json") for m in MODELS}
    bench = _load(args.results / "bench.json")
    brow = {r["model"]: r for r in (bench or {}).get("models", []) if "error" not in r}
    rel = lambda p: Path(p).resolve().relative_to(args.out.parent.resolve()).as_posix()  # noqa: E731
    n = next((e["n_images"] for e in evals.values() if e), None)
    lines = ["# Results", "", f"Generated {time.strftime('%Y-%m-%d %H:%M')}; regenerate all with `{commands['report']}`.",
             "Every number comes from a run on this machine; the command that produced it is quoted below it.", ""]
    if bench:
        m = bench["machine"]
        ref = m.get("reference_gflops")
        lines += [f"Machine: {m['cpu']}, {m['logical_cpus']} logical CPUs, {m['threads']} threads; "
                  f"torch {m['torch']}, onnxruntime {m['onnxruntime'] or 'not installed'}."
                  + ("" if ref is None else f" Host compute speed during the bench: {ref:.0f} GFLOP/s on a fixed float32 "
                     "matrix product (`dbd_core.bench.reference_gflops`; it does not see memory traffic or "
                     "scheduling, which also move the latencies)."), ""]
    ph, pw = (bench or {}).get("config", {}).get("photo_size", (3000, 4000))
    lines += [f"| model | MAE | F-beta | max-F | AUC | IoU | params | GFLOPs @320 | latency 320x320 (ms; p10-p90; eager) | "
              f"ONNX Runtime 320x320 (ms) | latency {pw}x{ph} (ms) | peak memory (MB) | size on disk (MB) |",
              "|---|" + "---:|" * 12]
    for name in MODELS:
        e, b = evals[name] or {}, brow.get(name, {})
        params = b.get("params")
        lines.append(f"| {name} | " + " | ".join(_f(e.get(k)) for k, _ in METRICS) + " | "
                     + ("n/a" if params is None else f"{params / 1e6:.2f} M" if params else "0") + " | "
                     + f"{_f(b.get('gflops_320'), '.2f')} | {_f(b.get('latency_net_ms'), '.1f')}{_spread(b)} | "
                     + f"{_f(b.get('onnx_latency_net_ms'), '.1f')} | {_f(b.get('latency_photo_ms'), '.0f')} | "
                     + f"{_f(b.get('peak_mem_mb'), '.0f')} | "
                     + f"{_f(None if b.get('size_bytes') is None else b['size_bytes'] / 1e6, '.2f')} |")
    lines += ["", f"Quality on the synthetic benchmark set ({n or '?'} images, `dbd synth --preset bench`: one 320x320 "
              "render per BSDS500 test photo, seed 2026), protocols as in the README's \"Evaluation protocols\": "
              "MAE per image; F-beta (beta^2 = 0.3) at threshold 0.5 per image; max-F = max over 256 thresholds "
              "of the mean F curve; AUC = ROC area over all pixels; IoU of the blurred class at 0.5.", ""]
    for name in MODELS:
        if evals[name]:
            lines.append(f"- {name}: `{evals[name]['command']}` (weights sha256 "
                         f"{(evals[name].get('weights_sha256') or 'n/a')[:12]})")
    if evals["teacher"]:
        lines.append(f"- run here by `{commands['eval']}`, which evaluates in-process with the same code to keep "
                     f"the curves; raw numbers: {rel(args.results)}/eval_*.json")
    if bench:
        lines += ["", f"Speed and size: `{bench['command']}`", ""]
        lines += [f"- {k}: {v}" for k, v in bench["methods"].items()]
        lines.append(f"- peak memory method: "
                     + next((r["peak_mem_method"] for r in bench["models"] if "peak_mem_method" in r), "n/a"))
        s, t = brow.get("student", {}), brow.get("teacher", {})
        if s.get("latency_net_ms") and t.get("latency_net_ms"):
            ratio = s["latency_net_ms"] / t["latency_net_ms"]
            ok = s["latency_net_ms"] <= 15 and ratio <= 0.25
            lines.append(f"- student target (<= 15 ms at 320x320 and <= 1/4 of the teacher): "
                         f"{s['latency_net_ms']:.1f} ms, {ratio:.2f} x teacher -> {'met' if ok else 'NOT met'}")
        for r in bench["models"]:
            if "error" in r:
                lines.append(f"- {r['model']}: not measured ({r['error']})")
    lines += _tta_section(args, evals, commands)
    figs = [("pr.png", "Precision-recall"), ("f_threshold.png", "F-beta vs threshold"), ("roc.png", "ROC")]
    lines += ["", "## Curves on the benchmark set", ""]
    lines += [f"![{t}]({rel(args.figures / f)})" for f, t in figs if (args.figures / f).is_file()]
    lines += ["", "## Real photos (no ground truth)", "",
              f"`{commands['figures']}` (skimage.data photos; maps at full size, 1 = blurred)", ""]
    lines += [f"![{p}]({rel(args.figures / f'photo_{p}.png')})" for p in ("coffee", "chelsea")
              if (args.figures / f"photo_{p}.png").is_file()]
    sens = _load(args.results / "sensitivity.json")
    if sens:
        any_curve = next(iter(sens["models"].values()))
        lines += ["", "## Blur sensitivity", "",
                  f"Each of {sens['photos']} blurred as a whole by a defocus kernel (disk + 20 % Gaussian) of radius r "
                  "px at the 320 px working size, then JPEG-coded (quality 85); the mean map over the photo's "
                  f"interior. The bench labels a pixel blurred above {sens['label_threshold_px']} px: an ideal model "
                  "is 0 left of it and 1 right of it. At r = 0 the mean is the model's false-positive level on "
                  "sharp photos, plus whatever natural defocus these photos already have (BSDS500 has some). "
                  f"`{commands['sensitivity']}` (dbd_core.sensitivity)", "",
                  "| model | " + " | ".join(f"r={r:g}" for r in any_curve["radii"]) + " | mean crosses 0.5 at |",
                  "|---|" + "---:|" * (len(any_curve["radii"]) + 1)]
        for name, c in sens["models"].items():
            d = c.get("detection_radius")
            lines.append(f"| {name} | " + " | ".join(f"{v:.2f}" for v in c["mean"]) + " | "
                         + ("never" if d is None else f"{d:.2f} px") + " |")
        if (args.figures / "sensitivity.png").is_file():
            lines += ["", f"![blur sensitivity]({rel(args.figures / 'sensitivity.png')})"]
    lines += ["", "## Training curves", ""]
    kept = []
    for fig in sorted(args.figures.glob("training_*.png")):
        lines.append(f"![{fig.stem}]({rel(fig)})")
        if fig.stem.removeprefix("training_") not in args.events:
            kept.append(fig.name)
    lines += ["", f"Made by `{commands['curves']}` from the runs' events.jsonl"
              + (f"; kept from an earlier report run (its events are not on this machine): {', '.join(kept)}."
                 if kept else "."), "",
              "## Regenerate", "", "```bash", commands["report"]]
    lines += [f"python benchmarks/make_report.py ... --only {p}   # {what}" for p, what in
              (("eval", "quality numbers + PR/F/ROC"), ("bench", "speed/memory/size"),
               ("figures", "real-photo figures"), ("curves", "training curves"),
               ("sensitivity", "map vs uniform blur radius"), ("tta", "flip test-time augmentation"))]
    lines += ["```", ""]
    write_text(args.out, "\n".join(lines))
    return args.out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bench-data", type=Path, default=Path("/tmp/dbd-bench"), help="bench set folder")
    ap.add_argument("--sharp", type=Path, help="sharp photos, to render the bench set when it is missing")
    ap.add_argument("--events", action="append", default=[], metavar="NAME=FILE", help="a training run's events")
    ap.add_argument("--weights-teacher", type=Path, help="default: the shipped teacher")
    ap.add_argument("--weights-student", type=Path, help="default: the shipped student")
    ap.add_argument("--only", action="append", choices=PARTS, help="run only these parts (repeatable)")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "RESULTS.md",
                    help="the report file (default: the tracked benchmarks/RESULTS.md, rewritten in place)")
    ap.add_argument("--figures", type=Path, help="default: <out folder>/figures")
    ap.add_argument("--results", type=Path, help="raw JSON results, default: <out folder>/results")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--limit", type=int, help="evaluate only the first N bench images (quick checks)")
    ap.add_argument("--bench-repeats", type=int, default=20)
    ap.add_argument("--photo-repeats", type=int, default=3)
    ap.add_argument("--sensitivity-photos", type=int, default=50, help="BSDS500 test photos for the sensitivity curve")
    args = ap.parse_args(argv)
    args.figures = args.figures or args.out.parent / "figures"
    args.results = args.results or args.out.parent / "results"
    args.events = {k: Path(v) for k, _, v in (e.partition("=") for e in args.events)}
    for name, path in args.events.items():
        if not path.is_file():
            raise SystemExit(f"{path}: no such events file (for {name})")
    args.figures.mkdir(parents=True, exist_ok=True)
    args.results.mkdir(parents=True, exist_ok=True)
    import torch

    torch.set_num_threads(args.threads)
    this = shlex.join(["python", "benchmarks/make_report.py", *(sys.argv[1:] if argv is None else argv)])
    base = [a for a in shlex.split(this) if a not in PARTS and a != "--only"]
    commands = {"report": shlex.join(base), **{p: shlex.join(base + ["--only", p]) for p in PARTS}}
    # The command that last produced each part is kept beside the raw results, so a report rebuilt after
    # re-running one part still quotes the right command for the others.
    made_by = _load(args.results / "commands.json") or {}
    for part in args.only or PARTS:
        if part == "curves" and not args.events:
            print("make_report: curves: no --events NAME=FILE given, skipped", file=sys.stderr)
            continue
        if part == "sensitivity" and args.sharp is None:
            print("make_report: sensitivity: no --sharp DIR given, skipped", file=sys.stderr)
            continue
        log: list[str] = []
        globals()[f"part_{part}"](args, log)
        made_by[part] = {"command": this, "subcommands": log, "date": time.strftime("%Y-%m-%d %H:%M:%S %z")}
        write_json(args.results / "commands.json", made_by)
    commands = {"report": commands["report"],
                **{p: made_by.get(p, {}).get("command", "not run yet: " + commands[p]) for p in PARTS}}
    print(f"wrote {write_results(args, commands)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
