"""Inference forwards of a registry network, traced and frozen by TorchScript, one per input shape.

Why: at 320x320 the student's eager forward spends about a third of its time in Python (module calls,
the fold-cache checks, op dispatch; measured 5.4 ms eager vs 2.5 ms frozen at 32x32, where compute is
nil) and in un-fused conv + activation pairs. A frozen trace runs the same ops with the batch norms
folded and the weights as constants: student 17.5 -> 12.1 ms, teacher 91 -> 76 ms on this 2-core CPU
(interleaved A/B in one process, same input).

Why per shape: a trace records the control flow taken for the shape it saw (``upsample_to`` skips the
resize when sizes already match), so it is only exact for that shape. A photo's working size depends
on its aspect ratio, and a session holds few of them; the cache keeps the last ``max_shapes``.

Safety:
  * a shape is traced on its ``trace_after``-th call (default the second), so a one-off prediction never
    pays the trace (0.5 s for the student, 2 s for the teacher);
  * the first frozen output is compared with the eager output on the same input; a mismatch (or any
    tracing error) pins that shape to eager for good, with the reason kept in ``eager_reasons``;
  * the frozen copy holds the weights as they were: a fingerprint of every parameter and buffer
    (storage and version counter; 0.13 ms for the student's 292 tensors) is checked on each call, and
    any change (an optimiser step, ``load_state_dict``, ``.to(dtype)``) drops the cache. The tensors are
    listed once: a module or parameter *object* swapped in afterwards is not seen (nothing here does so).
"""

from __future__ import annotations

import warnings
from collections import OrderedDict

import torch
from torch import nn

from dbd_core.nets.registry import predict_logits

# Frozen and eager logits agree to float rounding (measured max |diff|: student 0, teacher 7e-7);
# a larger gap means the trace is not the network's function for this shape.
TOLERANCE = 1e-3


class _Logits(nn.Module):
    """The network's fused logits as a plain tensor, the form a trace can return."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return predict_logits(self.model, x)


def _fingerprint(tensors: list[torch.Tensor]) -> tuple:
    return tuple((t.data_ptr(), t._version) for t in tensors)


class FrozenForward:
    """``logits = FrozenForward(model)(x)``: :func:`predict_logits` of an eval-mode model, through a frozen
    TorchScript trace once the input's shape has been seen ``trace_after`` times."""

    def __init__(self, model: nn.Module, trace_after: int = 2, max_shapes: int = 4):
        if trace_after < 1 or max_shapes < 1:
            raise ValueError("trace_after and max_shapes must be >= 1")
        self.model = model
        self.trace_after = trace_after
        self.max_shapes = max_shapes
        self._frozen: OrderedDict[tuple, torch.jit.ScriptModule] = OrderedDict()
        self._calls: dict[tuple, int] = {}
        self.eager_reasons: dict[tuple, str] = {}
        # Walking the module tree for them costs 0.6-2.7 ms per call; the list costs nothing.
        self._tensors = [*model.parameters(), *model.buffers()]
        self._stamp = _fingerprint(self._tensors)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        stamp = _fingerprint(self._tensors)
        if stamp != self._stamp:  # the weights changed under us: every trace is stale
            self._frozen.clear()
            self._calls.clear()
            self.eager_reasons.clear()
            self._stamp = stamp
        key = (tuple(x.shape), x.dtype, x.device.type)
        frozen = self._frozen.get(key)
        if frozen is not None:
            self._frozen.move_to_end(key)
            return frozen(x)
        if key in self.eager_reasons or self.model.training:
            return predict_logits(self.model, x)
        self._calls[key] = self._calls.get(key, 0) + 1
        if self._calls[key] < self.trace_after:
            return predict_logits(self.model, x)
        return self._trace(key, x)

    @property
    def shapes(self) -> list[tuple]:
        """Input shapes with a frozen trace, least recently used first."""
        return [k[0] for k in self._frozen]

    def _trace(self, key: tuple, x: torch.Tensor) -> torch.Tensor:
        eager = predict_logits(self.model, x)
        try:
            # Tracing needs autograd-aware tensors (no inference mode); no_grad keeps it cheap.
            with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
                # TracerWarnings about shape-dependent branches (see above), and torch 2.13's DeprecationWarnings
                # for torch.jit.trace/freeze: TorchScript still works there; should it go, the except below
                # keeps every shape eager (ONNX Runtime is the other fast path, dbd_core.export).
                warnings.simplefilter("ignore")
                xt = x.clone()
                frozen = torch.jit.freeze(torch.jit.trace(_Logits(self.model).eval(), xt, check_trace=False))
                out = frozen(xt)
        except Exception as e:  # noqa: BLE001 - any failure to trace means: stay eager for this shape
            self.eager_reasons[key] = f"trace failed: {type(e).__name__}: {e}"
            return eager
        diff = float((out.float() - eager.float()).abs().max()) if out.shape == eager.shape else float("inf")
        if not diff <= TOLERANCE:
            self.eager_reasons[key] = f"frozen trace differs from eager by {diff:.3g} (> {TOLERANCE})"
            return eager
        self._frozen[key] = frozen
        self._calls.pop(key, None)
        while len(self._frozen) > self.max_shapes:
            self._frozen.popitem(last=False)
        return eager
