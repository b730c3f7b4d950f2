"""Keeping Python's cyclic garbage collector from freezing the window.

A full collection stops every thread while it walks all tracked objects. After start-up the
studio holds about 200k of them (Qt wrappers, pyqtgraph, torch modules), so each full
collection froze the window for 100-200 ms on this CPU (benchmarks/finetune_gui.md). Nearly all
of them live as long as the app, so they are moved out of the collector's sight with
``gc.freeze()``: after start-up, after a model is loaded, and once a fine-tune run has built its
network, optimiser and data. While such a batch of long-lived objects is being built, automatic
collection is paused, because building it is exactly what triggers full collections.

The cost: a reference cycle among frozen objects is never collected. Frozen objects are the
app's own furniture and the models in use; a finished run's network is freed by reference
counting unless it sits in a cycle, so at worst a run leaks one model's worth of memory.
"""

from __future__ import annotations

import contextlib
import gc
import threading

_lock = threading.Lock()
_depth = 0  # nested / concurrent pauses (the map worker loading a model while a run starts)
_was_enabled = True


def freeze_long_lived() -> None:
    """Exclude every object alive now from future collections."""
    gc.freeze()


@contextlib.contextmanager
def collection_paused():
    """No automatic collection inside; on exit what was built is frozen and collection resumes."""
    global _depth, _was_enabled
    with _lock:
        if _depth == 0:
            _was_enabled = gc.isenabled()
            gc.disable()
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            gc.freeze()
            if _depth == 0 and _was_enabled:
                gc.enable()


def paused_until(events, until: tuple[str, ...]):
    """Pass on ``events`` (dicts with a "type") with collection paused until one whose type is in
    ``until`` (or the end), so a run's set-up is frozen before its steps begin."""
    it = iter(events)
    with collection_paused():
        for ev in it:
            yield ev
            if ev.get("type") in until:
                break
    yield from it
