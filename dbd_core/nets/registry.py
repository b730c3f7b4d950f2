"""Build any network by name and describe it (parameters, FLOPs).

Contract every segmentation network here follows:
  * input: float tensor B x 3 x H x W, RGB in [0, 1] (each network normalises internally), any H, W
    (networks pad internally to their stride and crop back);
  * output: ``NetOutput`` with ``logits`` B x 1 x H x W (the fused map, before the sigmoid; the
    blur probability is ``sigmoid(logits)``, 1 = blurred), ``sides`` (deep-supervision logits, each
    B x 1 x H x W; may be empty) and ``features`` (intermediate feature maps, shallow to deep, for
    feature distillation);
  * ``forward(x, sides=False)`` skips the deep-supervision outputs that only training and validation
    losses read (``sides`` comes back empty); inference calls it that way through :func:`predict_logits`.
Discriminators take (image B x 3 x H x W in [0,1], map B x 1 x H x W in [0,1]) and return patch logits.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn


@dataclass
class NetOutput:
    logits: torch.Tensor
    sides: list[torch.Tensor] = field(default_factory=list)
    features: list[torch.Tensor] = field(default_factory=list)


def predict_logits(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The fused logits of a registry network (or of any module returning a tensor or a NetOutput),
    without computing the side outputs when the network can skip them."""
    out = model(x, sides=False) if _takes_sides(model) else model(x)
    return out.logits if hasattr(out, "logits") else out


def _takes_sides(model: nn.Module) -> bool:
    try:
        return "sides" in inspect.signature(model.forward).parameters
    except (TypeError, ValueError):  # a scripted or built-in forward without a Python signature
        return False


_REGISTRY: dict[str, Callable[..., nn.Module]] = {}
_DESCRIPTIONS: dict[str, str] = {}


def register(name: str, description: str = ""):
    def deco(fn):
        _REGISTRY[name] = fn
        _DESCRIPTIONS[name] = description
        return fn

    return deco


def _ensure_loaded() -> None:
    # Importing the modules registers their networks.
    from dbd_core.nets import tiny  # noqa: F401

    for mod in ("teacher", "student", "discriminator"):
        try:
            __import__(f"dbd_core.nets.{mod}")
        except ModuleNotFoundError as e:  # a module not written yet must not break the others
            if e.name != f"dbd_core.nets.{mod}":
                raise


def model_names() -> list[str]:
    _ensure_loaded()
    return sorted(_REGISTRY)


def describe(name: str) -> str:
    _ensure_loaded()
    return _DESCRIPTIONS.get(name, "")


def build_model(name: str, **kwargs) -> nn.Module:
    _ensure_loaded()
    if name not in _REGISTRY:
        raise KeyError(f"unknown network {name!r}; known: {', '.join(sorted(_REGISTRY))}")
    model = _REGISTRY[name](**kwargs)
    model.arch_name = name
    model.arch_kwargs = dict(kwargs)
    return model


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
