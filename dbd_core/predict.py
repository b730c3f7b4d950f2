"""Blur maps for whole photos: one Predictor API over the networks and the LBP baseline.

Working resolution: the photo is resized (INTER_AREA) so its LONG side is ``work_size`` (320 by
default, the field's habit) keeping its aspect ratio -- squashing a 3:2 photo to 320x320 would
stretch the blur anisotropically, and the networks are fully convolutional (they pad to their stride
internally). The low-resolution map is brought back to the photo's full size with the fast guided
filter (dbd_core.upsample) so its edges follow the photo's edges.

Test-time augmentation (``tta="hflip"``, dbd_core.tta) averages the map with the mirrored photo's.

Output: float32 HxW in [0,1], 1 = blurred, same height and width as the input photo.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Literal

import cv2
import numpy as np
import torch
from torch import nn

from dbd_core.errors import InputError
from dbd_core.images import read_image, to_rgb8
from dbd_core.nets.frozen import FrozenForward
from dbd_core.nets.registry import predict_logits
from dbd_core.tta import augmented_map, check_tta
from dbd_core.upsample import DEFAULT_EPS, guided_upsample

DEFAULT_WORK_SIZE = 320
MODEL_NAMES = ("teacher", "student", "lbp")
MIN_SHORT_SIDE = 32  # below this a network's deepest stage sees less than one pixel


def working_size(h: int, w: int, work_size: int) -> tuple[int, int]:
    """(h', w') with the long side == work_size and the aspect ratio kept."""
    s = work_size / max(h, w)
    hh, ww = max(1, round(h * s)), max(1, round(w * s))
    if min(hh, ww) < MIN_SHORT_SIDE:  # a panorama: keep the short side usable, long side grows
        s = MIN_SHORT_SIDE / min(h, w)
        hh, ww = max(MIN_SHORT_SIDE, round(h * s)), max(MIN_SHORT_SIDE, round(w * s))
    return hh, ww


def resize_to_work(rgb: np.ndarray, work_size: int) -> np.ndarray:
    h, w = rgb.shape[:2]
    hh, ww = working_size(h, w, work_size)
    interp = cv2.INTER_AREA if hh * ww < h * w else cv2.INTER_LINEAR
    return cv2.resize(rgb, (ww, hh), interpolation=interp)


def guided_radius_of(card: dict) -> int | None:
    """``inference.guided_radius`` of a model card (a positive whole number), or None for the default."""
    r = (card.get("inference") or {}).get("guided_radius")
    if r is None:
        return None
    if isinstance(r, bool) or not isinstance(r, int) or r < 1:
        raise InputError(card.get("name"), f"card: inference.guided_radius must be a whole number >= 1, not {r!r}")
    return r


class Predictor:
    """Photo -> full-size blur map. Subclasses provide ``_predict_small(rgb uint8 hxwx3) -> hxw map``."""

    def __init__(self, name: str, card: dict | None = None, work_size: int = DEFAULT_WORK_SIZE,
                 source: str | None = None, guided_eps: float = DEFAULT_EPS, tta: str = "none"):
        self.name = name
        self.tta = check_tta(tta)
        self.card = dict(card or {})
        self.work_size = int(work_size)
        self.source = source  # where the model comes from (weights path, "built-in", "in memory")
        self.guided_eps = guided_eps
        # The guided filter's window in px at a 320 px long side; None = upsample.default_radius. A model's
        # card can name its own (``inference.guided_radius``): how much smoothing helps depends on how sharp
        # the network's maps already are (benchmarks/upsample_radius.md).
        self.guided_radius = guided_radius_of(self.card)

    def radius_at(self, small_shape: tuple[int, int]) -> int | None:
        """The card's window scaled to this working shape, so ``--work-size 640`` smooths over the same
        part of the photo as the 320 px it was measured at (the default window scales itself)."""
        if self.guided_radius is None:
            return None
        return max(1, round(self.guided_radius * max(small_shape[:2]) / DEFAULT_WORK_SIZE))

    @staticmethod
    def from_model(model: nn.Module, name: str | None = None, work_size: int = DEFAULT_WORK_SIZE,
                   card: dict | None = None, device: str | torch.device | None = None) -> "NetPredictor":
        """Wrap an in-memory network (training validation, fine-tuning, the GUI)."""
        return NetPredictor(model, name or getattr(model, "arch_name", "model"), card, work_size, device,
                            source="in memory")

    def _predict_small(self, rgb_small: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def _map_small(self, rgb_small: np.ndarray) -> np.ndarray:
        """The working-resolution map, with the predictor's test-time augmentation."""
        return augmented_map(self._predict_small, rgb_small, self.tta)

    def load_rgb(self, image_or_path, channel_order: Literal["rgb", "bgr"] = "rgb") -> np.ndarray:
        if isinstance(image_or_path, (str, os.PathLike)):
            return read_image(image_or_path)
        return to_rgb8(image_or_path, channel_order)

    def predict(self, image_or_path, channel_order: Literal["rgb", "bgr"] = "rgb") -> np.ndarray:
        """Photo (path, or array uint8/uint16/float, gray/RGB/BGR/RGBA) -> float32 HxW in [0,1], 1 = blurred."""
        rgb = self.load_rgb(image_or_path, channel_order)
        return self.predict_rgb8(rgb)

    def predict_rgb8(self, rgb: np.ndarray) -> np.ndarray:
        small = resize_to_work(rgb, self.work_size)
        low = self._map_small(small)
        if low.shape != small.shape[:2]:
            raise RuntimeError(f"{self.name}: low-res map {low.shape} != working size {small.shape[:2]}")
        return guided_upsample(np.clip(low, 0, 1), rgb, guide_lr=small, radius=self.radius_at(small.shape),
                               eps=self.guided_eps)

    def predict_small(self, image_or_path, channel_order: Literal["rgb", "bgr"] = "rgb",
                      work_size: int | None = None) -> np.ndarray:
        """The map at the working resolution only (fast previews, training-time validation); ``work_size``
        overrides the predictor's long side for this call."""
        size = self.work_size if work_size is None else int(work_size)
        return np.clip(self._map_small(resize_to_work(self.load_rgb(image_or_path, channel_order), size)),
                       0, 1).astype(np.float32)

    def predict_batch(self, images: Iterable, channel_order: Literal["rgb", "bgr"] = "rgb") -> list[np.ndarray]:
        """Maps for several photos. Photos differ in size, so they run one by one (same results as
        ``predict``); bad inputs raise InputError like ``predict``."""
        return [self.predict(im, channel_order) for im in images]

    def __repr__(self) -> str:
        tta = "" if self.tta == "none" else f" tta={self.tta}"
        return f"<Predictor {self.name} work_size={self.work_size}{tta} source={self.source}>"


# A trace costs 0.6 s (student) to 1.4 s (teacher) and then saves 5 ms / 15 ms per 320 px map: it pays
# after about 100 maps of one shape. Tracing on the 16th call of a shape keeps short runs (one photo, a
# few dozen in the studio) from paying for a trace they never earn back, and long batches get it early.
JIT_TRACE_AFTER = 16


class NetPredictor(Predictor):
    """Wraps a network following the registry contract (RGB [0,1] in, NetOutput logits out)."""

    def __init__(self, model: nn.Module, name: str, card: dict | None = None, work_size: int = DEFAULT_WORK_SIZE,
                 device: str | torch.device | None = None, source: str | None = None, jit: bool = False,
                 tta: str = "none"):
        super().__init__(name, card, work_size, source, tta=tta)
        if device is None:  # an in-memory model stays where it is (and in its train/eval mode)
            first = next(iter(model.parameters()), None)
            self.device = first.device if first is not None else torch.device("cpu")
        else:
            self.device = torch.device(device)
            model.to(self.device)
        self.model = model
        # Frozen TorchScript forwards per working shape (nets.frozen): about 30% less network time per map
        # once a shape repeats. Off for in-memory models by default (a model in training would retrace
        # after every step; the fingerprint check keeps it correct, not cheap).
        self.frozen = FrozenForward(model, trace_after=JIT_TRACE_AFTER) if jit else None

    def _predict_small(self, rgb_small: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(rgb_small)).to(self.device)
        # Planar (NCHW) before the float conversion, as the benchmarks feed the networks: a permuted view
        # would stay channels-last through .float(), where the student's 3-channel normalise and
        # halving run 3x slower.
        x = x.permute(2, 0, 1).contiguous()[None].float().div_(255.0)
        was_training = self.model.training
        self.model.eval()  # BatchNorm must use running statistics, also for a model in training
        try:
            with torch.inference_mode():
                logits = self.frozen(x) if self.frozen is not None else predict_logits(self.model, x)
                prob = torch.sigmoid(logits.float())[0, 0]
        finally:
            self.model.train(was_training)
        return prob.cpu().numpy().astype(np.float32)


def set_threads(threads: int | None) -> None:
    """Thread count for torch and OpenCV (None leaves the defaults)."""
    if threads is None:
        return
    if threads < 1:
        raise ValueError("threads must be >= 1")
    torch.set_num_threads(int(threads))
    cv2.setNumThreads(int(threads))


MIN_WORK_SIZE = 64    # a 3:2 photo's short side stays above MIN_SHORT_SIDE
MAX_WORK_SIZE = 4096  # a 16 MP working image: far past the scale the networks were trained at already


def check_work_size(work_size: int | None) -> int | None:
    """``work_size`` if it is a usable long side (None = the model's default); InputError otherwise."""
    if work_size is None:
        return None
    if isinstance(work_size, bool) or int(work_size) != work_size:
        raise InputError(None, f"work size must be a whole number of pixels, not {work_size!r}")
    if not MIN_WORK_SIZE <= work_size <= MAX_WORK_SIZE:
        raise InputError(None, f"work size {work_size} px is outside {MIN_WORK_SIZE}-{MAX_WORK_SIZE} px "
                               f"(the networks were trained at {DEFAULT_WORK_SIZE})")
    return int(work_size)


def check_device(device: str) -> torch.device:
    """The torch device named by ``device``; InputError when it is not a device or not on this machine."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise InputError(None, f"unknown torch device {device!r} (use cpu, cuda or cuda:N)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InputError(None, f"device {device!r} is not available: this torch build sees no CUDA GPU")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise InputError(None, f"device {device!r} is not available: {torch.cuda.device_count()} CUDA GPU(s)")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise InputError(None, f"device {device!r} is not available on this machine")
    return dev


def load_predictor(name_or_path: str | os.PathLike, threads: int | None = None, device: str = "cpu",
                   work_size: int | None = None, jit: bool = True, tta: str = "none") -> Predictor:
    """Predictor for "teacher", "student" (shipped weights), "lbp" (no weights) or a weights file.

    ``work_size`` is the long side of the working resolution; None = the model's default (320 for the
    networks, 480 for LBP, whose windows were designed for larger photos). ``jit``: run the network
    through frozen TorchScript traces once a working shape repeats (same maps, less time; see nets.frozen).
    ``tta``: "hflip" averages the photo's map with its mirror's (better maps, twice the network time).

    Missing shipped weights raise WeightsMissingError (never random weights); a bad weights file
    raises InputError naming it.
    """
    from dbd_core import weights

    set_threads(threads)
    work_size = check_work_size(work_size)
    key = os.fspath(name_or_path)
    if key == "lbp":
        from dbd_core.lbp import LBPPredictor

        return LBPPredictor(work_size=work_size, tta=tta)
    if key in weights.SHIPPED_MODELS:
        path = weights.require_shipped(key)
        name = key
    else:
        path = Path(key)
        if not path.exists() and path.suffix == "" and os.sep not in key:
            raise InputError(key, f"unknown model; use one of {', '.join(MODEL_NAMES)} or a weights file path")
        name = path.stem
    check_device(device)
    model, card = weights.load_model_file(path, map_location=device)
    return NetPredictor(model, name, card, work_size or DEFAULT_WORK_SIZE, device, source=str(path), jit=jit,
                        tta=tta)
