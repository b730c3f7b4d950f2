"""Test-time augmentation of blur maps, torch-free so the command lines can name the modes cheaply.

"hflip": the map of the photo and the mirrored map of the mirrored photo are averaged. Photos are
left-right symmetric in distribution (not up-down: skies sit on top, and training never flips vertically),
so the mirror is a second, equally valid look at the same scene; the averaged map is exactly
mirror-equivariant, and on the benchmark set it lowers the teacher's MAE and log-loss at twice the network
time (numbers in the README).
"""

from __future__ import annotations

from typing import Callable

import numpy as np

TTA_MODES = ("none", "hflip")


def check_tta(mode: str) -> str:
    if mode not in TTA_MODES:
        raise ValueError(f"tta must be one of {', '.join(TTA_MODES)}, not {mode!r}")
    return mode


def augmented_map(predict_small: Callable[[np.ndarray], np.ndarray], rgb_small: np.ndarray, mode: str) -> np.ndarray:
    """``predict_small`` (RGB uint8 -> map of the same height and width) under test-time augmentation ``mode``."""
    low = np.asarray(predict_small(rgb_small), np.float32)
    if mode == "hflip":
        mirrored = np.asarray(predict_small(np.ascontiguousarray(rgb_small[:, ::-1])), np.float32)
        low = 0.5 * (low + mirrored[:, ::-1])
    return low
