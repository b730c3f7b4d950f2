"""Evaluation figures (PR, F-vs-threshold, ROC) with matplotlib's Agg canvas only.

Figures are built on ``matplotlib.figure.Figure`` + ``FigureCanvasAgg`` directly, never through pyplot, so
nothing here touches a GUI backend or pyplot's global state (safe inside the Qt app and in threads).
Every function takes ``{model name: curves}`` where curves is ``Evaluator.curves()``, so one model or an
overlay of several (the benchmark report) go through the same code.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from dbd_core.atomic import atomic_path

CURVE_FILES = {"pr": "pr.png", "f_threshold": "f_threshold.png", "roc": "roc.png"}


def _new_figure(title: str) -> tuple[Figure, object]:
    fig = Figure(figsize=(5.2, 4.6), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(111)
    ax.set_title(title, fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    return fig, ax


def _label(name: str, value: float | None, what: str) -> str:
    if value is None or not np.isfinite(value):
        return name
    return f"{name} ({what} {value:.3f})"


def _pr(ax, name, c):
    ax.plot(c["recall"], c["precision"], lw=1.6, label=_label(name, float(np.max(c["f"])), "max-F"))


def _f(ax, name, c):
    k = int(np.argmax(c["f"]))
    line, = ax.plot(c["thresholds"], c["f"], lw=1.6, label=_label(name, float(c["f"][k]), "max-F"))
    ax.plot([c["thresholds"][k]], [c["f"][k]], "o", color=line.get_color(), ms=4)


def _roc(ax, name, c):
    fpr, tpr = np.asarray(c["fpr"]), np.asarray(c["tpr"])
    if not np.isfinite(fpr).all():
        ax.plot([], [], label=f"{name} (ROC undefined: one class only)")
        return
    x = np.concatenate(([1.0], fpr, [0.0]))[::-1]
    y = np.concatenate(([1.0], tpr, [0.0]))[::-1]
    auc = float(np.sum(np.diff(x) * (y[1:] + y[:-1]) / 2.0))
    ax.plot(x, y, lw=1.6, label=_label(name, auc, "AUC"))


_KINDS = {
    "pr": (_pr, "Precision-recall (per-image mean, 256 thresholds)", "recall (blurred class)", "precision"),
    "f_threshold": (_f, "F-beta (beta^2=0.3) vs threshold, per-image mean", "threshold on the map", "F-beta"),
    "roc": (_roc, "ROC, all pixels pooled", "false positive rate (sharp called blurred)",
            "true positive rate (blurred found)"),
}


def curve_figure(kind: str, curves_by_name: dict[str, dict], title: str | None = None) -> Figure:
    """One figure of ``kind`` ("pr", "f_threshold" or "roc") with one line per model."""
    draw, default_title, xlabel, ylabel = _KINDS[kind]
    fig, ax = _new_figure(title or default_title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if kind == "roc":
        ax.plot([0, 1], [0, 1], ls=":", color="grey", lw=1, label="chance")
    for name, c in curves_by_name.items():
        draw(ax, name, c)
    ax.legend(loc="lower left" if kind != "roc" else "lower right", fontsize=8)
    fig.tight_layout()
    return fig


def save_figure(fig: Figure, path: str | os.PathLike) -> Path:
    path = Path(path)
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png")
    return path


def save_curves(curves_by_name: dict[str, dict], out_dir: str | os.PathLike, prefix: str = "",
                title_suffix: str = "") -> list[Path]:
    """Write pr.png, f_threshold.png and roc.png into ``out_dir`` (one line per model); returns the paths.

    Pass several models' curves to overlay them, e.g. ``{"teacher": c1, "student": c2, "lbp": c3}``.
    """
    out = []
    for kind, fname in CURVE_FILES.items():
        title = _KINDS[kind][1] + (f"\n{title_suffix}" if title_suffix else "")
        out.append(save_figure(curve_figure(kind, curves_by_name, title), Path(out_dir) / f"{prefix}{fname}"))
    return out
