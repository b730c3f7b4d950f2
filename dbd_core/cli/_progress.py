"""Shared driver for training commands: iterate an event generator, draw a progress bar on stderr,
append every event to a JSONL log, print a summary; Ctrl-C cancels cleanly (checkpoint written)."""

from __future__ import annotations

import json
import signal
import sys
import threading
import time
from pathlib import Path


def _fmt_s(s: float) -> str:
    s = int(max(0, s))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


EXIT_CODES = {"done": 0, "error": 1, "cancelled": 130}


def drive(events_fn, log_path: Path | None, quiet: bool = False, is_main: bool = True, prog: str = "dbd train",
          resumable: bool = True) -> int:
    """Run ``events_fn(cancel_event)``; returns the exit code (0 done, 1 error, 130 cancelled) on every rank
    of a distributed run (torchrun fails the whole job when any rank exits non-zero). ``prog`` starts error
    lines; ``resumable``: whether a cancelled run can go on with --resume (fine-tunes cannot)."""
    cancel = threading.Event()
    old = signal.getsignal(signal.SIGINT)

    def on_sigint(signum, frame):  # first Ctrl-C: stop after this step with a checkpoint
        if cancel.is_set():
            raise KeyboardInterrupt
        cancel.set()
        print("\ncancelling after this step (Ctrl-C again to abort without a checkpoint)...", file=sys.stderr)

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, on_sigint)
    log = None
    if log_path is not None and is_main:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(log_path, "a", encoding="utf-8")  # an append-only log, not a product file
    code = 1
    view = _View(prog, resumable, quiet)
    try:
        for ev in events_fn(cancel):
            if log is not None:
                log.write(json.dumps({"time": time.time(), **ev}, default=str) + "\n")
                log.flush()
            code = EXIT_CODES.get(ev["type"], code)
            if is_main:
                view.show(ev)
    finally:
        if log is not None:
            log.close()
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, old)
    return code


class _View:
    """Prints a run's events: one updating step line, validation lines (not with ``quiet``), one-line errors."""

    def __init__(self, prog: str, resumable: bool, quiet: bool):
        self.prog, self.resumable, self.quiet = prog, resumable, quiet
        self.mid_line = False  # a \r step line is showing: end it before printing a line of our own

    def _line(self, text: str, to_stdout: bool = False) -> None:
        if self.mid_line:
            print(file=sys.stderr)
            self.mid_line = False
        print(text, file=sys.stdout if to_stdout else sys.stderr)

    def show(self, ev: dict) -> None:
        t = ev["type"]
        if t == "start":
            self._line(f"{ev.get('kind', 'run')}: {ev.get('n_train')} training / {ev.get('n_val')} validation "
                       f"items, steps {ev.get('start_step')}->{ev.get('total_steps')} on {ev.get('device')}"
                       f"{' x%d processes' % ev['world_size'] if ev.get('world_size', 1) > 1 else ''}; run folder "
                       f"{ev.get('run_dir')}")
        elif t == "step" and not self.quiet:
            n, tot = ev["step"], ev["total_steps"]
            bar = "#" * int(30 * n / tot) + "-" * (30 - int(30 * n / tot))
            terms = " ".join(f"{k}={v:.3f}" for k, v in ev["losses"].items())
            print(f"\r[{bar}] {n}/{tot} {terms} lr={ev['lr']:.2e} {ev['samples_per_s']:.1f}/s "
                  f"eta {_fmt_s(ev['eta_s'])}   ", end="", file=sys.stderr, flush=True)
            self.mid_line = True
        elif t == "val" and not self.quiet:
            tag = ev.get("phase") or f"step {ev['step']}"
            self._line(f"validation ({tag}): " + _metrics_text(ev["metrics"], ("val_loss",) + SHOWN_METRICS))
        elif t == "cancelled":
            if self.resumable:
                self._line(f"{self.prog}: cancelled at step {ev['step']}; checkpoint {ev.get('checkpoint')} "
                           "(continue with --resume)")
            else:
                self._line(f"{self.prog}: cancelled at step {ev['step']}; no new version was written")
        elif t == "error":
            self._line(f"{self.prog}: error: {ev['message']}")
        elif t == "skipped":  # a bad sample left out: said even with --quiet, one line each
            self._line(f"{ev['message']} (left out)")
        elif t == "done":
            self._line(summary_text(ev["summary"]), to_stdout=True)


SHOWN_METRICS = ("mae", "f_beta", "f_beta_two_class", "max_f", "iou", "auc_roc", "nll")  # validation numbers a run prints


def _metrics_text(m: dict, keys: tuple) -> str:
    return " ".join(f"{k}={m[k]:.4f}" for k in keys if k in m)


def summary_text(s: dict) -> str:
    lines = [f"done: {s.get('kind')} in {_fmt_s(s.get('wall_s', 0))} ({s.get('steps', '?')} steps"
             f"{', stopped early' if s.get('stopped_early') else ''})"]

    def fmt(m: dict) -> str:
        return _metrics_text(m, SHOWN_METRICS + ("val_loss",))

    kept = s.get("best_step") is not None and s.get("best_step") != s.get("steps") and s.get("best_metrics")
    for label in ("before", "after", "metrics"):
        m = s.get(label)
        if m:
            lines.append(f"  {'last' if label == 'metrics' and kept else label:8s} {fmt(m)}")
    if kept:  # the weights file holds the best validated step, not the last one: say so
        lines.append(f"  kept     step {s['best_step']} (best validation): {fmt(s['best_metrics'])}")
    swa = s.get("swa")
    if swa:
        lines.append(f"  average  {swa['snapshots']} snapshots, {'kept' if swa['kept'] else 'not better, not kept'}: "
                     f"{fmt(swa['metrics'])}")
    if s.get("output"):
        lines.append(f"  weights  {s['output']}")
    if s.get("checkpoint"):
        lines.append(f"  checkpoint {s['checkpoint']}")
    return "\n".join(lines)
