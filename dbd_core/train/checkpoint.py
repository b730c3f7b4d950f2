"""Training checkpoints: everything needed to continue a run exactly where it stopped.

A checkpoint holds the networks, discriminators, optimizers, schedulers, the step, the RNG states
(torch, numpy, python) and the config. The data order is a pure function of (seed, epoch), so the
step alone says where in the data the run was. Written atomically: a crash leaves the previous one.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import torch

from dbd_core.atomic import atomic_path
from dbd_core.errors import InputError

CHECKPOINT_NAME = "checkpoint.pt"
FORMAT = "dbd-checkpoint"


def rng_state() -> dict:
    st = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        st["cuda"] = torch.cuda.get_rng_state_all()
    return st


def set_rng_state(st: dict) -> None:
    torch.set_rng_state(st["torch"])
    np.random.set_state(st["numpy"])
    random.setstate(st["python"])
    if "cuda" in st and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(st["cuda"])


def save_checkpoint(path: str | os.PathLike, *, step: int, modules: dict, optimizers: dict, schedulers: dict,
                    config: dict, extra: dict | None = None) -> Path:
    path = Path(path)
    payload = {
        "format": FORMAT,
        "step": step,
        "modules": {k: m.state_dict() for k, m in modules.items()},
        "arch": {k: (getattr(m, "arch_name", None), dict(getattr(m, "arch_kwargs", {}) or {}))
                 for k, m in modules.items()},
        "optimizers": {k: o.state_dict() for k, o in optimizers.items()},
        "schedulers": {k: s.state_dict() for k, s in schedulers.items()},
        "rng": rng_state(),
        "config": config,
        "extra": extra or {},
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return path


def load_checkpoint(path: str | os.PathLike, map_location="cpu") -> dict:
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "no checkpoint to resume from")
    try:
        # Checkpoints hold RNG states (numpy tuples), so they are not weights_only: only load your own runs.
        payload = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as e:  # torch raises many types for a damaged file
        raise InputError(path, f"not a readable checkpoint ({type(e).__name__}: {str(e)[:100]})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise InputError(path, "not a dbd training checkpoint")
    return payload


def restore(payload: dict, *, modules: dict, optimizers: dict, schedulers: dict, path="checkpoint") -> int:
    """Load a checkpoint's states into live objects; returns the step to continue from."""
    missing = set(modules) - set(payload["modules"])
    if missing:
        raise InputError(path, f"checkpoint lacks {', '.join(sorted(missing))} (was it made with another recipe?)")
    try:
        for k, m in modules.items():
            m.load_state_dict(payload["modules"][k])
        for k, o in optimizers.items():
            o.load_state_dict(payload["optimizers"][k])
        for k, s in schedulers.items():
            s.load_state_dict(payload["schedulers"][k])
    except (RuntimeError, KeyError, ValueError) as e:
        raise InputError(path, f"checkpoint does not fit this run's networks ({str(e).splitlines()[0][:120]})") from None
    set_rng_state(payload["rng"])
    return int(payload["step"])
