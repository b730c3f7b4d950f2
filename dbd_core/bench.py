"""Speed, memory and size of the models on this machine (behind ``dbd bench``).

Per model: parameters, GFLOPs at 320x320 (2 x MACs, ``nets.flops``), median latency of the network alone
at 320x320 (warm-up, then the median of ``repeats`` forwards), median latency of a full photo (4000x3000 by
default) to a full-size map through the Predictor (resize, network, guided upsampling), the peak memory of
that full-photo prediction, the size on disk, and -- with onnxruntime installed -- the ONNX Runtime latency
at 320x320 of the exported network.

Peak memory = growth of the process's resident set (RSS) during one full-photo prediction: the kernel's
high-water mark (VmHWM in /proc/self/status) is reset through /proc/self/clear_refs before the call and read
after it, minus VmRSS before. It counts numpy, OpenCV and torch allocations alike (tracemalloc sees none of
torch's). It runs in a fresh process per model (see ``peak_memory``). Where the reset is not allowed, a thread samples VmRSS every 2 ms instead (may miss short peaks).
"""

from __future__ import annotations

import os
import platform
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from dbd_core.errors import DBDError

ProgressFn = Callable[[str], None]


@dataclass
class BenchConfig:
    threads: int = 2
    repeats: int = 20  # network forwards at 320x320 (after `warmup`)
    warmup: int = 5
    net_size: tuple[int, int] = (320, 320)  # H, W
    photo_size: tuple[int, int] = (3000, 4000)  # H, W of the full photo
    photo_repeats: int = 3
    onnx: bool = True


# ---------------------------------------------------------------- machine facts

def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_facts(threads: int) -> dict:
    import cv2
    import torch

    facts = {"cpu": cpu_model(), "logical_cpus": os.cpu_count(), "threads": threads,
             "torch": torch.__version__, "opencv": cv2.__version__, "numpy": np.__version__,
             "python": platform.python_version(), "platform": platform.platform()}
    try:
        import onnxruntime

        facts["onnxruntime"] = onnxruntime.__version__
    except ImportError:
        facts["onnxruntime"] = None
    facts["reference_gflops"] = reference_gflops(threads)
    return facts


def reference_gflops(threads: int, n: int = 384, repeats: int = 30) -> float:
    """GFLOP/s of a fixed float32 matrix product (n x n by n x n, median of ``repeats``) with ``threads``
    threads: the host's compute speed at the time of a bench, quoted beside its latencies (cloud hosts
    change speed from day to day: the same student measured 11.6 ms one day, 17-21 ms another). It sees
    compute only, not memory traffic or scheduling: within one hour it stayed at 110-125 GFLOP/s while
    the student's median moved between 16 and 21 ms."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        a, b = torch.rand(n, n), torch.rand(n, n)
        ms = _median_ms(lambda: torch.mm(a, b), 5, repeats)
    finally:
        torch.set_num_threads(old)
    return round(2.0 * n ** 3 / (ms * 1e6), 1)


# ---------------------------------------------------------------- memory

def _status_kb(*keys: str) -> dict[str, int]:
    out = {}
    with open("/proc/self/status") as fh:
        for line in fh:
            k, _, v = line.partition(":")
            if k in keys:
                out[k] = int(v.split()[0])
    return out


class PeakRSS:
    """``with PeakRSS() as p: work()`` -> ``p.peak_mb`` = peak RSS growth during the block, ``p.method``."""

    def __enter__(self):
        self.peak_mb = None
        self._stop = threading.Event()
        self._thread = None
        self.base_kb = _status_kb("VmRSS")["VmRSS"]
        try:
            with open("/proc/self/clear_refs", "w") as fh:
                fh.write("5")  # resets VmHWM to the current RSS (Linux >= 4.0)
            self.method = "VmHWM after reset via /proc/self/clear_refs, minus VmRSS before"
        except OSError:
            self.method = "VmRSS sampled every 2 ms (clear_refs not allowed), minus VmRSS before"
            self._max_kb = self.base_kb
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def _sample(self):
        while not self._stop.wait(0.002):
            self._max_kb = max(self._max_kb, _status_kb("VmRSS")["VmRSS"])

    def __exit__(self, *exc):
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            top = max(self._max_kb, _status_kb("VmRSS")["VmRSS"])
        else:
            top = _status_kb("VmHWM")["VmHWM"]
        self.peak_mb = max(0, top - self.base_kb) / 1024.0
        return False


# ---------------------------------------------------------------- measurements

def _median_ms(fn, warmup: int, repeats: int) -> float:
    times = []
    for i in range(warmup + repeats):
        t0 = time.perf_counter()
        fn()
        if i >= warmup:
            times.append((time.perf_counter() - t0) * 1000.0)
    return statistics.median(times)


def _spread(times_ms: list[float], key: str) -> dict:
    """Median plus the 10th and 90th percentiles: on a shared host the same code's median moved by a
    third between minutes (14-23 ms for the student), and the spread says how quiet the run was."""
    q = np.percentile(np.asarray(times_ms, np.float64), [10, 50, 90])
    return {f"{key}_ms": float(q[1]), f"{key}_p10_ms": float(q[0]), f"{key}_p90_ms": float(q[2])}


def sample_photo(size: tuple[int, int]) -> np.ndarray:
    """A real photo (skimage coffee) resized to ``size`` (H, W): textured like a camera photo, so the
    guided filter does real work (a constant image would flatter it)."""
    import cv2
    from skimage import data

    return cv2.resize(data.coffee(), (size[1], size[0]), interpolation=cv2.INTER_CUBIC)


def _load(name: str, weights: str | os.PathLike | None, threads: int):
    from dbd_core.predict import load_predictor

    return load_predictor(weights if weights is not None else name, threads=threads)


def bench_model(name: str, weights: str | os.PathLike | None, cfg: BenchConfig, photo: np.ndarray,
                onnx_file: str | os.PathLike | None = None, progress: ProgressFn | None = None) -> dict:
    """One row of the table. Raises DBDError (missing/bad weights, failed export) for the caller to report."""
    import cv2
    import torch

    from dbd_core.nets.flops import describe_model, latency_by_mode

    say = progress or (lambda msg: None)
    pred = _load(name, weights, cfg.threads)
    row = {"model": name, "source": pred.source, "work_size": pred.work_size}
    model = getattr(pred, "model", None)
    h, w = cfg.net_size
    if model is not None:
        row["arch"] = getattr(model, "arch_name", None)
        say(f"{name}: parameters and FLOPs")
        row.update({k: v for k, v in describe_model(model, cfg.net_size).items() if k != "trainable_params"})
        say(f"{name}: network latency at {w}x{h}")
        times = latency_by_mode(model, cfg.net_size, threads=cfg.threads, warmup=cfg.warmup, repeats=cfg.repeats)
        row.update(_spread(times["frozen"], "latency_net"))
        row.update(_spread(times["eager"], "latency_net_eager"))
        row["latency_net_what"] = ("network forward (random input), torch.inference_mode, through the frozen "
                                   "TorchScript trace the Predictor runs (eager: the module as written)")
        path = Path(pred.source)
        row["size_bytes"] = path.stat().st_size if path.is_file() else None
        row["sha256"] = pred.card.get("sha256")
    else:  # LBP: no network; its map computation at the same size stands in (windows scaled to 320)
        from dbd_core.lbp import LBPPredictor

        small = LBPPredictor(work_size=max(h, w))
        rgb = cv2.resize(photo, (w, h), interpolation=cv2.INTER_AREA)
        row.update(params=0, gflops_320=None, size_bytes=0, sha256=None)
        say(f"{name}: map latency at {w}x{h}")
        row["latency_net_ms"] = _median_ms(lambda: small._predict_small(rgb), min(cfg.warmup, 2), cfg.repeats)
        row["latency_net_what"] = f"LBP map of a {w}x{h} photo (no network)"
    ph, pw = photo.shape[:2]
    say(f"{name}: peak memory of a full {pw}x{ph} photo (fresh process)")
    row.update(peak_memory(name, weights, cfg))
    say(f"{name}: full {pw}x{ph} photo -> full-size map")
    pred.predict(photo)  # warm-up of the full-size path
    row["latency_photo_ms"] = _median_ms(lambda: pred.predict(photo), 0, cfg.photo_repeats)
    row["photo_size"] = f"{pw}x{ph}"
    if model is not None and cfg.onnx:
        row.update(_onnx_row(name, model, onnx_file, cfg, say))
    torch.set_num_threads(cfg.threads)
    return row


def peak_memory(name: str, weights, cfg: BenchConfig) -> dict:
    """Peak RSS growth of one full-photo prediction, measured in a fresh Python process.

    In this process, memory freed by earlier measurements stays in the allocator's heap and would be reused
    without growing RSS, so the figure would depend on what ran before. The child loads the model and the
    photo, warms the model up on a small photo (one-time initialisation is not per-photo cost), then
    measures one ``predict`` of the full photo with :class:`PeakRSS`."""
    import json
    import subprocess
    import sys

    spec = json.dumps({"name": name, "weights": None if weights is None else os.fspath(weights),
                       "threads": cfg.threads, "photo_size": list(cfg.photo_size)})
    proc = subprocess.run([sys.executable, "-m", "dbd_core.bench", spec], capture_output=True, text=True)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise DBDError(f"{name}: peak-memory process failed: {last}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _peak_memory_child(spec: dict) -> dict:
    from dbd_core.predict import set_threads

    set_threads(spec["threads"])
    photo = sample_photo(tuple(spec["photo_size"]))
    pred = _load(spec["name"], spec["weights"], spec["threads"])
    pred.predict(sample_photo((480, 640)))
    with PeakRSS() as mem:
        pred.predict(photo)
    return {"peak_mem_mb": mem.peak_mb,
            "peak_mem_method": f"fresh process, after a 640x480 warm-up: {mem.method}"}


def _onnx_row(name, model, onnx_file, cfg: BenchConfig, say) -> dict:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return {"onnx_latency_net_ms": None, "onnx_note": "onnxruntime not installed"}
    from dbd_core.export import export_onnx, onnx_latency

    with tempfile.TemporaryDirectory(prefix="dbd-bench-") as tmp:
        note = f"given file {onnx_file}"
        if onnx_file is None:
            say(f"{name}: ONNX export (temporary)")
            onnx_file = Path(tmp) / f"{name}.onnx"
            rep = export_onnx(model, onnx_file, size=cfg.net_size)
            note = f"exported to a temp file, max abs diff vs PyTorch {rep.max_abs_diff:.1e}"
        say(f"{name}: ONNX Runtime latency")
        ms = onnx_latency(onnx_file, cfg.net_size, threads=cfg.threads, warmup=cfg.warmup, repeats=cfg.repeats)
    return {"onnx_latency_net_ms": ms, "onnx_note": note}


def run_bench(models: list[str], weights: dict[str, str | os.PathLike] | None = None,
              onnx_files: dict[str, str | os.PathLike] | None = None, cfg: BenchConfig | None = None,
              command: str | None = None, progress: ProgressFn | None = None) -> dict:
    """Bench each model; a model that fails (e.g. weights not installed) gets an ``error`` and the rest go on.
    Returns ``dict(command, machine, config, models=[rows], methods)``, JSON-able."""
    from dbd_core.predict import set_threads

    cfg = cfg or BenchConfig()
    weights, onnx_files = dict(weights or {}), dict(onnx_files or {})
    set_threads(cfg.threads)
    photo = sample_photo(cfg.photo_size)
    rows = []
    for name in models:
        try:
            rows.append(bench_model(name, weights.get(name), cfg, photo, onnx_files.get(name), progress))
        except DBDError as e:
            rows.append({"model": name, "error": str(e)})
    return {
        "command": command,
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "machine": machine_facts(cfg.threads),
        "config": asdict(cfg),
        "models": rows,
        "methods": {
            "gflops_320": "torch FlopCounterMode, 2 x multiply-accumulates, one 320x320 forward",
            "latency_net_ms": f"median of {cfg.repeats} forwards after {cfg.warmup} warm-up, "
                              f"{cfg.threads} threads, frozen TorchScript trace as the Predictor runs it "
                              f"(p10-p90: their 10th-90th percentiles)",
            "latency_net_eager_ms": "the same network run eagerly (the module as written), alternating "
                                    "forward by forward with the frozen one",
            "latency_photo_ms": f"median of {cfg.photo_repeats} Predictor.predict calls on a "
                                f"{cfg.photo_size[1]}x{cfg.photo_size[0]} photo (resize, model, guided "
                                f"upsampling to full size) after one warm-up call; a run this short stays eager (the Predictor "
                                f"traces a shape on its 16th map), as a one-off `dbd predict` does",
            "peak_mem_mb": "peak RSS growth during one full-photo prediction (see peak_mem_method)",
            "size_bytes": "weights file on disk",
            "onnx_latency_net_ms": "onnxruntime CPUExecutionProvider, same input size, repeats and threads",
        },
    }


# ---------------------------------------------------------------- table

def _fmt(v, spec: str, none: str = "n/a") -> str:
    return none if v is None else format(v, spec)


def latency_spread(row: dict) -> str | None:
    """A bench row's network latency spread as "p10-p90" text, None when it was not measured (LBP)."""
    lo, hi = row.get("latency_net_p10_ms"), row.get("latency_net_p90_ms")
    return None if lo is None or hi is None else f"{lo:.1f}-{hi:.1f}"


def format_table(result: dict) -> str:
    cfg, m = result["config"], result["machine"]
    nh, nw = cfg["net_size"]
    ph, pw = cfg["photo_size"]
    head = (f"{'model':<9} {'params':>8} {'GFLOPs':>7} {f'net {nw}x{nh} ms':>15} {'p10-p90':>11} {'eager ms':>8} "
            f"{'ONNX ms':>8} "
            f"{f'photo {pw}x{ph} ms':>19} {'peak MB':>8} {'size MB':>8}")
    ref = m.get("reference_gflops")
    lines = [f"machine: {m['cpu']} ({m['logical_cpus']} logical CPUs), {cfg['threads']} threads, "
             f"torch {m['torch']}, onnxruntime {m['onnxruntime'] or 'not installed'}"
             + ("" if ref is None else f"; host speed now: {ref:.0f} GFLOP/s (float32 matmul)"), head, "-" * len(head)]
    for r in result["models"]:
        if "error" in r:
            lines.append(f"{r['model']:<9} error: {r['error']}")
            continue
        params = f"{r['params'] / 1e6:.2f} M" if r["params"] >= 1e5 else f"{r['params']:,}"
        size = _fmt(None if r["size_bytes"] is None else r["size_bytes"] / 1e6, ".2f")
        lines.append(f"{r['model']:<9} {params:>8} {_fmt(r['gflops_320'], '.2f', '-'):>7} "
                     f"{r['latency_net_ms']:>15.1f} {latency_spread(r) or '-':>11} "
                     f"{_fmt(r.get('latency_net_eager_ms'), '.1f', '-'):>8} {_fmt(r.get('onnx_latency_net_ms'), '.1f', '-'):>8} "
                     f"{r['latency_photo_ms']:>19.0f} {r['peak_mem_mb']:>8.0f} {size:>8}")
    meth = result["methods"]
    lines += ["", f"net: {meth['latency_net_ms']} (LBP: its map at that size, no network)",
              f"photo: {meth['latency_photo_ms']}",
              "peak MB: " + next((r["peak_mem_method"] for r in result["models"] if "peak_mem_method" in r), "-")]
    return "\n".join(lines)


if __name__ == "__main__":  # the peak-memory child process (see peak_memory)
    import json
    import sys

    print(json.dumps(_peak_memory_child(json.loads(sys.argv[1]))))
