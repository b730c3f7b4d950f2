"""ONNX export of the networks, checked against PyTorch on real photos.

The networks return a ``NetOutput`` dataclass, which the ONNX exporter cannot flatten, so the export wraps
the net as ``sigmoid(net(x).logits)``: input ``image`` B x 3 x H x W float RGB in [0,1], output
``blur`` B x 1 x H x W probabilities (1 = blurred) -- the same function ``Predictor`` runs at the working
size. The nets fold eval-mode batch norm into their convs and keep activations channels_last (NHWC); both
are traced as ordinary tensor ops, so the exported graph is NCHW ONNX with folded constants.

Dynamic H and W: the nets pad to their stride and resize with sizes computed from the input shape; the
TorchScript tracer can bake such sizes into constants, so a dynamic export is only kept when it gives the
PyTorch result at two different sizes (else the file is exported with a fixed size and says so).

onnx / onnxruntime are the optional extra ``pip install dbd-studio[onnx]``; they are imported lazily.
"""

from __future__ import annotations

import contextlib
import io
import os
import statistics
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from dbd_core.atomic import atomic_path
from dbd_core.errors import DBDError
from dbd_core.nets.registry import predict_logits


OPSET = 17
TOLERANCE = 1e-3  # max abs difference in probability allowed between ONNX Runtime and PyTorch
INPUT_NAME, OUTPUT_NAME = "image", "blur"


class OnnxUnavailable(DBDError):
    """onnx or onnxruntime is not installed."""


def require(module: str):
    """Import ``onnx`` or ``onnxruntime`` or raise a one-line message saying how to install it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise OnnxUnavailable(f"{module} is not installed; install the optional extra: "
                              f"pip install 'dbd-studio[onnx]' (or pip install onnx onnxruntime)") from None



class ProbabilityNet(nn.Module):
    """``x -> sigmoid(net(x).logits)``; keeps the net as a submodule so its weights export as initializers."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = predict_logits(self.net, x)  # no side outputs in the graph
        # Plain NCHW contiguous output: the nets' tensors are channels_last internally.
        return torch.sigmoid(logits.float()).contiguous()


@dataclass
class ExportReport:
    path: Path
    size: tuple[int, int]
    opset: int
    dynamic: bool
    checks: list[dict] = field(default_factory=list)  # per photo: name, size, max_abs_diff
    note: str = ""

    @property
    def max_abs_diff(self) -> float | None:
        return max((c["max_abs_diff"] for c in self.checks), default=None)


@contextlib.contextmanager
def _exportable_adaptive_pool():
    """While tracing, shrink with ``avg_pool2d`` where ``adaptive_avg_pool2d`` would: the ONNX exporter has no
    form of adaptive pooling to a shape-dependent size (the teacher's cross-level resize). When the input is
    an integer multiple of the output -- always so in the nets, which pad to their stride -- the two are the
    same function; any other case keeps the original op (and the PyTorch comparison catches a problem)."""
    original = F.adaptive_avg_pool2d

    def pool(x, output_size):
        out = (output_size, output_size) if isinstance(output_size, int) else tuple(output_size)
        if None not in out:
            h, w = int(x.shape[-2]), int(x.shape[-1])
            oh, ow = int(out[0]), int(out[1])
            if oh > 0 and ow > 0 and h % oh == 0 and w % ow == 0 and (oh, ow) != (1, 1):
                return F.avg_pool2d(x, (h // oh, w // ow), (h // oh, w // ow))
        return original(x, output_size)

    F.adaptive_avg_pool2d = pool
    try:
        yield
    finally:
        F.adaptive_avg_pool2d = original


def _export_bytes(wrapper: nn.Module, size: tuple[int, int], opset: int, dynamic: bool) -> bytes:
    x = torch.rand(1, 3, *size)
    buf = io.BytesIO()
    axes = {INPUT_NAME: {0: "batch", 2: "height", 3: "width"},
            OUTPUT_NAME: {0: "batch", 2: "height", 3: "width"}} if dynamic else {INPUT_NAME: {0: "batch"},
                                                                                  OUTPUT_NAME: {0: "batch"}}
    with warnings.catch_warnings(), torch.no_grad(), _exportable_adaptive_pool():
        # The tracer warns about every Python int taken from a shape; whether that matters is checked below
        # by running the exported graph at a second size.
        warnings.simplefilter("ignore")
        # dynamo=False: the TorchScript exporter needs no onnxscript and handles the nets' ops at opset 17.
        torch.onnx.export(wrapper, (x,), buf, dynamo=False, opset_version=opset, input_names=[INPUT_NAME],
                          output_names=[OUTPUT_NAME], dynamic_axes=axes, do_constant_folding=True)
    return _fixed_map_channel(buf.getvalue())


def _fixed_map_channel(data: bytes) -> bytes:
    """The map has one channel; the exporter's shape inference leaves that dimension symbolic
    ("Sigmoidblur_dim_1"), so a consumer reading the declared shape could not tell. State it."""
    try:
        import onnx
    except ImportError:  # the graph is valid either way; only its declared output shape is less precise
        return data
    model = onnx.load_from_string(data)
    for out in model.graph.output:
        if out.name == OUTPUT_NAME:
            dim = out.type.tensor_type.shape.dim[1]
            dim.ClearField("dim_param")
            dim.dim_value = 1
    return model.SerializeToString()


def session(onnx_model: bytes | str | os.PathLike, threads: int | None = 2):
    """An onnxruntime CPU InferenceSession (``threads`` intra-op threads)."""
    ort = require("onnxruntime")
    opts = ort.SessionOptions()
    opts.log_severity_level = 4  # failures raise anyway; the dynamic-size probe must not spray the log
    if threads:
        opts.intra_op_num_threads = int(threads)
        opts.inter_op_num_threads = 1
    src = onnx_model if isinstance(onnx_model, bytes) else os.fspath(onnx_model)
    return ort.InferenceSession(src, opts, providers=["CPUExecutionProvider"])


def torch_probability(model: nn.Module, x: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        return ProbabilityNet(model).eval()(torch.from_numpy(x)).numpy()


def check_photos(size: tuple[int, int]) -> list[tuple[str, np.ndarray]]:
    """skimage's real photos (coffee, chelsea) resized to ``size`` (H, W): B x 3 x H x W float32 in [0,1]."""
    import cv2
    from skimage import data

    out = []
    for name in ("coffee", "chelsea"):
        rgb = cv2.resize(getattr(data, name)(), (size[1], size[0]), interpolation=cv2.INTER_AREA)
        out.append((name, np.ascontiguousarray(rgb.transpose(2, 0, 1)[None], np.float32) / np.float32(255)))
    return out


def compare(model: nn.Module, sess, sizes: list[tuple[int, int]]) -> list[dict]:
    """Max abs difference of ONNX Runtime vs PyTorch probabilities on the real photos at each size."""
    rows = []
    for size in sizes:
        for name, x in check_photos(size):
            ref = torch_probability(model, x)
            try:
                got = sess.run([OUTPUT_NAME], {INPUT_NAME: x})[0]
            except Exception:  # onnxruntime's own error type; a shape baked into the graph fails here
                got = None
            if got is None or got.shape != ref.shape:
                diff = float("inf")
            else:
                diff = float(np.max(np.abs(got.astype(np.float64) - ref)))
            rows.append({"photo": name, "size": f"{size[1]}x{size[0]}", "max_abs_diff": diff})
    return rows


def export_onnx(model: nn.Module, out: str | os.PathLike, size: int | tuple[int, int] = 320, opset: int = OPSET,
                check: bool = True, tolerance: float = TOLERANCE) -> ExportReport:
    """Export ``model`` (eval mode) to ``out`` atomically and, when onnxruntime is installed, check it against
    PyTorch on real photos at ``size`` (and a second size for the dynamic axes). Raises DBDError if the
    difference exceeds ``tolerance`` (nothing is written then)."""
    onnx = require("onnx")
    if opset < 17:
        raise ValueError("opset must be >= 17")
    size = (size, size) if isinstance(size, int) else tuple(size)
    model = model.eval()
    wrapper = ProbabilityNet(model).eval()
    have_ort = True
    try:
        require("onnxruntime")
    except OnnxUnavailable:
        have_ort = False
    # A second, non-square size with a different stride remainder checks the dynamic axes.
    other = (max(32, size[0] * 3 // 4 + 8), max(32, size[1] + 40))
    report = ExportReport(Path(out), size, opset, dynamic=True)
    try:
        blob = _export_bytes(wrapper, size, opset, dynamic=True)
    except Exception as e:  # e.g. adaptive pooling to a shape-dependent size has no dynamic ONNX form
        blob, report.dynamic = None, False
        report.note = (f"dynamic height/width not exportable ({str(e).splitlines()[0][:120]}); exported with a "
                       f"fixed {size[1]}x{size[0]} input")
    if blob is not None and have_ort:
        rows = compare(model, session(blob), [size, other])
        if max(r["max_abs_diff"] for r in rows) > tolerance:
            # The tracer baked a size into the graph: fall back to a fixed-size export and say so.
            blob, report.dynamic = None, False
            report.note = (f"dynamic height/width gave wrong results at {other[1]}x{other[0]}; exported with a "
                           f"fixed {size[1]}x{size[0]} input")
        else:
            report.checks = rows
    if blob is None:
        blob = _export_bytes(wrapper, size, opset, dynamic=False)
        if have_ort:
            report.checks = compare(model, session(blob), [size])
    onnx.checker.check_model(onnx.load_from_string(blob))
    if have_ort:
        worst = report.max_abs_diff
        if check and worst > tolerance:
            raise DBDError(f"{out}: ONNX export differs from PyTorch by {worst:.2e} (> {tolerance:g}) on real "
                           f"photos; not written")
    else:
        report.note = ((report.note + "; ") if report.note else "") + \
            "onnxruntime not installed: export not checked against PyTorch (pip install onnxruntime)"
    with atomic_path(out, suffix=".onnx") as tmp:
        tmp.write_bytes(blob)
    return report


def onnx_latency(onnx_path: str | os.PathLike | bytes, size: tuple[int, int] = (320, 320), threads: int = 2,
                 warmup: int = 5, repeats: int = 20) -> float:
    """Median ms of one ONNX Runtime run at ``size`` (random input, ``threads`` intra-op threads)."""
    sess = session(onnx_path, threads)
    x = np.random.default_rng(0).random((1, 3, *size), dtype=np.float32)
    times = []
    for i in range(warmup + repeats):
        t0 = time.perf_counter()
        sess.run([OUTPUT_NAME], {INPUT_NAME: x})
        if i >= warmup:
            times.append((time.perf_counter() - t0) * 1000.0)
    return statistics.median(times)
