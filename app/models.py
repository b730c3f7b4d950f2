"""Which models the studio compares, made injectable so tests (and later other models) plug in.

A ModelProvider maps a role ("teacher", "student") to either a model name / weights path for
``dbd_core.predict.load_predictor`` or a ready object with ``.predict(rgb) -> map`` and ``.name``.
Loading happens lazily, on the worker thread, the first time a role is needed.
"""

from __future__ import annotations

import threading
from typing import Callable

import numpy as np

from app import gc_policy
from dbd_core.errors import DBDError

ROLES = ("teacher", "student")


class FunctionPredictor:
    """Wraps a function rgb uint8 HxWx3 -> float32 HxW map as a predictor (tests, experiments)."""

    def __init__(self, name: str, fn: Callable[[np.ndarray], np.ndarray]):
        self.name = name
        self._fn = fn

    def predict(self, rgb: np.ndarray) -> np.ndarray:
        return np.asarray(self._fn(rgb), dtype=np.float32)


class ModelProvider:
    def __init__(self, specs: dict | None = None, threads: int | None = None, tta: str = "none"):
        self.specs = dict(specs or {"teacher": "teacher", "student": "student"})
        self.threads = threads
        self.tta = tta  # for models loaded by name or path (dbd_core.tta.TTA_MODES)
        self._loaded: dict[str, object] = {}
        self._lock = threading.Lock()
        self._labels: dict[str, str] = {}
        self._epochs: dict[str, int] = {}  # bumped by set_spec: maps of an older epoch are stale
        self._publish_lock = threading.Lock()

    @property
    def roles(self) -> tuple[str, ...]:
        return tuple(self.specs)

    def label(self, role: str) -> str:
        if role in self._labels:
            return self._labels[role]
        spec = self.specs[role]
        return spec if isinstance(spec, str) else getattr(spec, "name", role)

    def summary(self) -> str:
        """One status-bar line: which model each view shows, and the test-time augmentation if any."""
        text = "models: " + ", ".join(f"{r}={self.label(r)}" for r in self.roles)
        return text if self.tta == "none" else f"{text} (tta {self.tta})"

    def get(self, role: str):
        """The predictor for ``role``; raises DBDError (e.g. WeightsMissingError) with a user message."""
        with self._lock:
            if role not in self._loaded:
                spec = self.specs[role]
                if isinstance(spec, str):
                    try:
                        from dbd_core.predict import load_predictor
                    except ImportError as e:  # engine incomplete in a partial install
                        raise DBDError(f"prediction engine unavailable: {e}") from None
                    with gc_policy.collection_paused():  # a model lives as long as its role
                        # No TorchScript traces here: a trace stalls its photo's maps for 0.6-1.4 s and
                        # saves 5-15 ms per photo of a pipeline that takes ~500 ms at 12 MP; a studio
                        # session never earns it back (predict.JIT_TRACE_AFTER).
                        spec = load_predictor(spec, threads=self.threads, jit=False, tta=self.tta)
                self._loaded[role] = spec
            return self._loaded[role]

    # ---------------------------------------------------------------- model swaps (fine-tune versions)
    def epoch(self, role: str) -> int:
        return self._epochs.get(role, 0)

    def set_spec(self, role: str, spec, label: str | None = None) -> None:
        """Use another model for ``role`` (loaded lazily like the first). Maps computed with the old
        one are not published any more (see ``publish``)."""
        with self._publish_lock, self._lock:
            self.specs[role] = spec
            self._loaded.pop(role, None)
            if label is None:
                self._labels.pop(role, None)
            else:
                self._labels[role] = label
            self._epochs[role] = self.epoch(role) + 1

    def set_tta(self, mode: str) -> list[str]:
        """Switch test-time augmentation for the models loaded by name or path; returns their roles, whose
        maps are now stale (they are reloaded lazily, and older results are not published)."""
        from dbd_core.tta import check_tta

        with self._publish_lock, self._lock:
            self.tta = check_tta(mode)
            roles = [r for r, spec in self.specs.items() if isinstance(spec, str)]
            for role in roles:
                self._loaded.pop(role, None)
                self._epochs[role] = self.epoch(role) + 1
        return roles

    def publish(self, role: str, epoch: int, emit: Callable[[], None]) -> bool:
        """Call ``emit`` (a worker's signal) only if ``role`` still has the model of ``epoch``. Under
        the same lock as set_spec, so a result is either sent before a swap or dropped."""
        with self._publish_lock:
            if self.epoch(role) != epoch:
                return False
            emit()
            return True
