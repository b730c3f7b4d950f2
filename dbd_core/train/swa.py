"""Weight averaging along a run (SWA, Izmailov et al. 2018), a candidate the loop validates like any step.

Why: continuing a released model at a low, steady rate leaves its weights wandering around a plateau (teacher
stage 4: held-out MAE 0.078-0.096 over 14 validations, none better than where it started). The mean of the
weights visited there sits nearer the middle of that flat region than any one of them; the run keeps it only
if its held-out score beats every validated step, so averaging can never hand back a worse model unnoticed.

``[swa] start`` (0 = off) is the first step averaged, then one snapshot every ``[swa] every`` steps. Only
floating-point parameters and buffers are averaged; BatchNorm statistics of the mean weights are then
measured afresh on ``[swa] bn_batches`` training batches, since the mean of running statistics is not the
statistics of the mean network. Frozen parts (frozen BN layers, a frozen stem) come out unchanged: their
weights are the same in every snapshot and their BNs stay in eval mode.
"""

from __future__ import annotations

from typing import Iterable

import torch
from torch import nn


class WeightAverage:
    """Running mean of a module's floating-point state; its own state (n, mean) goes into checkpoints."""

    def __init__(self) -> None:
        self.n = 0
        self.mean: dict[str, torch.Tensor] | None = None

    def update(self, model: nn.Module) -> None:
        state = model.state_dict()
        if self.mean is None:
            self.mean = {k: v.detach().clone().float() for k, v in state.items() if v.is_floating_point()}
            self.n = 1
            return
        self.n += 1
        for k, avg in self.mean.items():
            avg.add_(state[k].detach().float() - avg, alpha=1.0 / self.n)

    def copy_to(self, model: nn.Module) -> None:
        """Load the mean weights into ``model`` in place (integer buffers, e.g. BN step counts, stay)."""
        if self.mean is None:
            raise ValueError("no snapshot has been averaged yet")
        state = model.state_dict()
        with torch.no_grad():
            for k, avg in self.mean.items():
                state[k].copy_(avg.to(state[k].dtype))

    def state_dict(self) -> dict:
        return {"n": self.n, "mean": self.mean}

    def load_state_dict(self, state: dict | None) -> None:
        state = state or {}
        self.n = int(state.get("n", 0))
        self.mean = state.get("mean")


@torch.no_grad()
def recompute_bn(model: nn.Module, batches: Iterable[torch.Tensor]) -> int:
    """Re-measure the running statistics of every BatchNorm that trains (``model.train()`` leaves frozen
    ones in eval mode) as the plain average over ``batches``; returns how many batches were seen."""
    was_training = model.training
    model.train()
    live = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training]
    saved = [(m, m.momentum) for m in live]
    for m in live:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average: every batch weighs the same
    n = 0
    try:
        for x in batches:
            model(x)
            n += 1
    finally:
        for m, mom in saved:
            m.momentum = mom
        model.train(was_training)
    return n


def interpolate_states(start: dict, end: dict, alpha: float) -> dict:
    """``start + alpha * (end - start)`` for every floating-point tensor of two state dicts of one network
    (WiSE-FT, Wortsman et al. 2022: between a released model and its continuation lie weights that keep
    more of the first's calibration than the second and more of the second's gains than the first).
    Integer buffers (BN step counts) come from ``end``. Both must have the same keys and shapes."""
    if set(start) != set(end):
        diff = sorted(set(start) ^ set(end))
        raise ValueError(f"the two networks differ in their state: {', '.join(diff[:4])}")
    out = {}
    for k, b in end.items():
        a = start[k]
        if a.shape != b.shape:
            raise ValueError(f"{k}: shape {tuple(a.shape)} vs {tuple(b.shape)}")
        out[k] = torch.lerp(a.float(), b.float(), float(alpha)).to(b.dtype) if b.is_floating_point() else b.clone()
    return out
