"""Running a fine-tune off the GUI thread, and measuring that the GUI stays responsive.

``FinetuneWorker`` is a QThread that iterates an event generator (``dbd_core.annotate.finetune.
project_finetune``) and emits a deep copy of each event; Qt queues the signal to the GUI thread, the
worker never touches a widget. Cancel sets a threading.Event that the engine checks between steps.

A thread (not a process) is enough: the GUI thread needs the GIL only for short slots, and torch and
OpenCV release it for their heavy kernels. ``StallMeter`` measures the claim (benchmarks/finetune_gui.md).
"""

from __future__ import annotations

import copy
import threading
import time
import traceback
from typing import Callable, Iterator

from PySide6.QtCore import QObject, QThread, QTimer, Signal

from app import gc_policy

TERMINAL = ("done", "cancelled", "error")


class FinetuneWorker(QThread):
    event = Signal(object)  # one engine event (a private copy)

    def __init__(self, run: Callable[[threading.Event], Iterator[dict]], parent=None):
        super().__init__(parent)
        self._run = run
        self.cancel_event = threading.Event()
        self.last_event: dict | None = None

    def cancel(self) -> None:
        self.cancel_event.set()

    def run(self) -> None:
        ended = False
        events = None
        try:
            events = self._run(self.cancel_event)
            # The run builds its network, optimiser and data before "start": freeze them then.
            stream = gc_policy.paused_until(events, until=("start",) + TERMINAL)
            try:
                for ev in stream:
                    ended = ended or ev.get("type") in TERMINAL
                    self.event.emit(copy.deepcopy(ev))
                    if ended:
                        break
            finally:
                stream.close()  # resumes collection even if the run ended before "start"
            events.close()  # runs the generator's clean-up now, on this thread
        except Exception as e:  # a bug must reach the user as a message, not kill the thread silently
            traceback.print_exc()
            self.event.emit({"type": "error", "step": None, "message": f"fine-tune failed: {type(e).__name__}: {e}"})
            ended = True
        if not ended:
            self.event.emit({"type": "error", "step": None, "message": "the fine-tune ended without a result"})


class StallMeter(QObject):
    """Ticks every ``interval_ms`` on the GUI thread; the longest gap beyond the interval is the
    longest time the event loop could not run (what a user feels as a frozen window)."""

    def __init__(self, interval_ms: int = 10, parent=None):
        super().__init__(parent)
        self.interval_ms = interval_ms
        self._timer = QTimer(self, interval=interval_ms)
        self._timer.timeout.connect(self._tick)
        self.gaps_ms: list[float] = []
        self._last = None

    def start(self) -> None:
        self.gaps_ms.clear()
        self._last = time.perf_counter()
        self._timer.start()

    def stop(self) -> None:
        self._timer.stop()

    def _tick(self) -> None:
        now = time.perf_counter()
        self.gaps_ms.append((now - self._last) * 1000.0)
        self._last = now

    @property
    def max_stall_ms(self) -> float:
        return max(self.gaps_ms, default=0.0)

    def percentile(self, q: float) -> float:
        if not self.gaps_ms:
            return 0.0
        s = sorted(self.gaps_ms)
        return s[min(len(s) - 1, int(round(q / 100.0 * (len(s) - 1))))]
