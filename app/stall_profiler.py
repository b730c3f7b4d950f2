"""Attributing GUI stalls: which code was the GUI thread running while the event loop was late?

A QTimer on the GUI thread stamps the time of every tick. A watchdog thread wakes every
``sample_ms``; while the last tick is older than ``late_ms`` it takes a stack sample of the GUI
thread (``sys._current_frames``). When the loop ticks again, the samples of that stall are folded
into one record: its length and the stack seen most often. Sampling costs nothing while the loop
is on time, so it can run during a benchmark without changing what it measures.

A stall spent in Qt's C++ (painting, layout) shows the Python frame that entered Qt, often just
``exec``: that too is an answer (no Python slot was running).

A stall with no sample at all means the watchdog itself could not run: some thread held the GIL
throughout. The usual culprit is Python's cyclic garbage collector, which stops every thread while
it walks all tracked objects (about 200k in the studio: a full collection takes 100-200 ms on this
CPU). So the profiler also times every collection (``gc.callbacks``) and credits each stall with
the collections that overlap it.
"""

from __future__ import annotations

import collections
import gc
import sys
import threading
import time
import traceback

from PySide6.QtCore import QObject, QTimer


class StallProfiler(QObject):
    def __init__(self, late_ms: float = 50.0, sample_ms: float = 20.0, tick_ms: int = 10, parent=None):
        super().__init__(parent)
        self.late_ms, self.sample_ms = late_ms, sample_ms
        self.stalls: list[dict] = []  # {"ms", "at_s", "top": [(count, stack text)]}
        self._main_ident = threading.get_ident()
        self._last_tick = time.perf_counter()
        self._samples: collections.Counter = collections.Counter()
        self._lock = threading.Lock()
        self._running = False
        self._t0 = time.perf_counter()
        self._timer = QTimer(self, interval=tick_ms)
        self._timer.timeout.connect(self._tick)
        self._thread: threading.Thread | None = None
        self.collections: list[tuple[float, float, int]] = []  # (start s, ms, generation), >= 1 ms
        self._gc_start: float | None = None

    def _on_gc(self, phase: str, info: dict) -> None:
        now = time.perf_counter()
        if phase == "start":
            self._gc_start = now
        elif self._gc_start is not None:
            ms = (now - self._gc_start) * 1000.0
            if ms >= 1.0:
                self.collections.append((self._gc_start - self._t0, ms, int(info.get("generation", -1))))
            self._gc_start = None

    def start(self) -> None:
        self._main_ident = threading.get_ident()  # called on the GUI thread
        self._t0 = self._last_tick = time.perf_counter()
        self._running = True
        gc.callbacks.append(self._on_gc)
        self._timer.start()
        self._thread = threading.Thread(target=self._watch, name="stall-profiler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._running = False
        if self._on_gc in gc.callbacks:
            gc.callbacks.remove(self._on_gc)
        self._timer.stop()
        if self._thread is not None:
            self._thread.join(1.0)

    def _tick(self) -> None:
        now = time.perf_counter()
        gap = (now - self._last_tick) * 1000.0
        with self._lock:
            samples, self._samples = self._samples, collections.Counter()
            self._last_tick = now
        if gap > self.late_ms:
            begin = now - gap / 1000.0 - self._t0
            end = now - self._t0
            gcs = [(g, ms) for t, ms, g in self.collections if t + ms / 1000.0 > begin and t < end]
            self.stalls.append({"ms": round(gap, 1), "at_s": round(now - self._t0, 2),
                                "top": samples.most_common(3), "gc": gcs})

    def _watch(self) -> None:
        while self._running:
            time.sleep(self.sample_ms / 1000.0)
            with self._lock:
                late = (time.perf_counter() - self._last_tick) * 1000.0 > self.late_ms
            if not late:
                continue
            frame = sys._current_frames().get(self._main_ident)
            if frame is None:
                continue
            stack = traceback.extract_stack(frame)[-8:]  # the innermost frames say who is busy
            text = " <- ".join(f"{fs.name}({fs.filename.rsplit('/', 1)[-1]}:{fs.lineno})" for fs in reversed(stack))
            with self._lock:
                self._samples[text] += 1

    def report(self, limit: int = 15) -> str:
        """The longest stalls, each with its most frequent GUI-thread stacks."""
        lines = []
        for s in sorted(self.stalls, key=lambda s: -s["ms"])[:limit]:
            lines.append(f"{s['ms']:7.1f} ms at {s['at_s']:.2f} s")
            for text, count in s["top"]:
                lines.append(f"    {count} x {text}")
            for gen, ms in s.get("gc", []):
                lines.append(f"    garbage collection of generation {gen}: {ms:.1f} ms (stops every thread)")
            if not s["top"] and not s.get("gc"):
                lines.append("    (no sample: the stall was shorter than one sampling period past the threshold)")
        return "\n".join(lines)
