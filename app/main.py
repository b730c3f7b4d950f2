"""`dbd-studio` entry point: argument parsing, QApplication, and the --screenshot mode."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import app  # noqa: F401  (binds pyqtgraph to PySide6, row-major images)
from app.models import ROLES, ModelProvider
from dbd_core.atomic import atomic_path
from dbd_core.images import expand_paths
from dbd_core.paths import demo_dir
from dbd_core.tta import TTA_MODES


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dbd-studio", description="Compare blur maps and annotate defocus masks.")
    p.add_argument("paths", nargs="*", help="photos or folders (default: the bundled demo photos)")
    p.add_argument("--project", metavar="DIR", help="open or create an annotation project folder (autosaves)")
    p.add_argument("--teacher", default="teacher", help="model for the teacher view: teacher, student, lbp or a weights file")
    p.add_argument("--student", default="student", help="model for the student view (same choices)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for inference")
    p.add_argument("--tta", choices=TTA_MODES, default="none",
                   help="hflip: average each map with its mirror's (better maps, twice the network time)")
    p.add_argument("--screenshot", metavar="FILE", help="save a screenshot once the first photo's maps are done, then exit")
    p.add_argument("--size", default="1600x950", help="window size WxH (screenshots)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from app.main_window import MainWindow
    from app.theme import apply_theme
    from dbd_core.errors import DBDError

    qapp = QApplication.instance() or QApplication(sys.argv[:1])
    qapp.setApplicationName("dbd-studio")
    apply_theme(qapp)
    provider = ModelProvider({"teacher": args.teacher, "student": args.student}, threads=args.threads,
                             tta=args.tta)
    try:
        win = MainWindow(provider, project=args.project)
    except DBDError as e:
        print(f"dbd-studio: {e}", file=sys.stderr)
        return 2
    paths = args.paths or ([] if args.project else [demo_dir()])
    try:
        w, h = (int(v) for v in args.size.lower().split("x"))
        win.resize(w, h)
    except ValueError:
        print(f"dbd-studio: --size {args.size!r}: expected WxH, e.g. 1600x950", file=sys.stderr)
        return 2
    win.show()
    if paths:
        missing = [str(p) for p in expand_paths(paths) if not Path(p).exists()]
        for m in missing:
            print(f"dbd-studio: {m}: no such file", file=sys.stderr)
        win.add_paths(paths)
    if args.screenshot:
        out = Path(args.screenshot)

        def shoot(_path=None):
            # Give the views a moment to paint the last result before grabbing the window.
            def save():
                pix = win.grab()
                code = 0
                try:
                    with atomic_path(out) as tmp:  # temp name + rename, like every file we write
                        if not pix.save(str(tmp), "PNG"):
                            raise OSError("Qt could not encode the PNG")
                except OSError as e:
                    print(f"dbd-studio: {out}: cannot write the screenshot ({e})", file=sys.stderr)
                    code = 1
                else:  # the window may be larger than --size if its panels need the room
                    print(f"screenshot: {out} ({pix.width()}x{pix.height()})")
                win.close()
                qapp.exit(code)

            QTimer.singleShot(400, save)

        if not win.entries:
            print("dbd-studio: nothing to show for the screenshot", file=sys.stderr)
            return 2
        win.maps_settled.connect(shoot)
        if win.row >= 0 and all((win.path_of(win.row), r) in win.maps or (win.path_of(win.row), r) in win.failures
                                for r in ROLES if r in provider.roles) and win.images.get(win.path_of(win.row)) is not None:
            shoot()
    return qapp.exec()


if __name__ == "__main__":
    sys.exit(main())
