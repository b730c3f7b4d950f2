"""Frozen TorchScript inference (nets.frozen): same logits as eager, per shape, and never stale or wrong."""

import numpy as np
import pytest
import torch
from torch import nn

from dbd_core.nets.frozen import FrozenForward
from dbd_core.nets.registry import build_model, predict_logits
from dbd_core.predict import JIT_TRACE_AFTER, NetPredictor, Predictor


@pytest.fixture(scope="module")
def student():
    torch.manual_seed(0)
    return build_model("student", pretrained=False).eval()


def _run(fwd, x):
    with torch.inference_mode():
        return fwd(x)


@pytest.mark.parametrize("name", ["student", "teacher"])
def test_frozen_logits_equal_eager_and_are_traced_on_the_second_call(name, student):
    net = student if name == "student" else build_model("teacher", pretrained=False).eval()
    fwd = FrozenForward(net)
    x = torch.rand(1, 3, 70, 93)  # odd sizes: the networks pad and crop
    eager = _run(lambda t: predict_logits(net, t), x)
    first = _run(fwd, x)
    assert fwd.shapes == []  # a one-off call never pays for a trace
    second = _run(fwd, x)  # traces, checks against eager, returns the eager result
    assert fwd.shapes == [(1, 3, 70, 93)] and not fwd.eager_reasons
    third = _run(fwd, x)  # the frozen trace
    y = torch.rand(1, 3, 70, 93)
    assert torch.equal(first, eager) and torch.equal(second, eager)
    assert torch.allclose(third, eager, atol=1e-5)
    assert torch.allclose(_run(fwd, y), _run(lambda t: predict_logits(net, t), y), atol=1e-5)


def test_each_shape_gets_its_own_trace_and_old_ones_are_evicted(student):
    fwd = FrozenForward(student, trace_after=1, max_shapes=2)
    sizes = [(64, 64), (48, 80), (80, 48)]
    for h, w in sizes:
        x = torch.rand(1, 3, h, w)
        out = _run(fwd, x)
        assert out.shape == (1, 1, h, w)
        # A trace made at another shape would give a wrongly sized (or wrong) map here.
        assert torch.allclose(_run(fwd, x), _run(lambda t: predict_logits(student, t), x), atol=1e-5)
    assert fwd.shapes == [(1, 3, 48, 80), (1, 3, 80, 48)]  # least recently used first; (64, 64) evicted


def test_changed_weights_drop_the_traces():
    torch.manual_seed(1)
    net = build_model("tiny").eval()
    fwd = FrozenForward(net, trace_after=2)
    x = torch.rand(1, 3, 32, 32)
    _run(fwd, x), _run(fwd, x)
    before = _run(fwd, x)  # from the frozen trace
    assert fwd.shapes
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.5)  # what an optimiser step does: in place, version counter bumped
    after = _run(fwd, x)
    assert fwd.shapes == []  # the frozen copy held the old weights
    fresh = _run(lambda t: predict_logits(net, t), x)
    assert torch.equal(after, fresh) and not torch.allclose(after, before)
    _run(fwd, x)  # traced again, with the new weights
    assert fwd.shapes and torch.allclose(_run(fwd, x), fresh, atol=1e-5)


class _CountingNet(nn.Module):
    """Its output depends on Python state a trace bakes in as a constant: the trace is not its function."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 1, 1)
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return self.conv(x) * self.calls


class _Untraceable(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 1, 1)

    def forward(self, x):
        if torch.jit.is_tracing():
            raise RuntimeError("no tracing here")
        return self.conv(x)


@pytest.mark.parametrize("cls, reason", [(_CountingNet, "differs from eager"), (_Untraceable, "trace failed")])
def test_a_trace_that_is_wrong_or_fails_pins_the_shape_to_eager(cls, reason):
    net = cls().eval()
    fwd = FrozenForward(net, trace_after=1)
    x = torch.rand(1, 3, 16, 16)
    for _ in range(3):
        _run(fwd, x)
    assert fwd.shapes == []
    assert reason in fwd.eager_reasons[((1, 3, 16, 16), torch.float32, "cpu")]
    if cls is _CountingNet:  # every later call runs the module itself
        calls = net.calls
        _run(fwd, x)
        assert net.calls == calls + 1


def test_predictor_maps_with_and_without_jit_are_the_same(student):
    from skimage import data

    photo = data.chelsea()
    plain = Predictor.from_model(student, "student")
    assert plain.frozen is None  # an in-memory model (maybe in training) stays eager unless asked
    jit = NetPredictor(student, "student", jit=True)
    maps = [jit.predict(photo) for _ in range(JIT_TRACE_AFTER - 1)]
    assert jit.frozen.shapes == []  # short runs never pay for a trace
    maps += [jit.predict(photo) for _ in range(2)]
    assert jit.frozen.shapes  # the working shape kept repeating, so it was traced
    ref = plain.predict(photo)
    assert ref.shape == photo.shape[:2]
    for m in maps:
        assert np.abs(m - ref).max() < 1e-5
