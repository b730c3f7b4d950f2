"""Entry point of ``dbd``. Subcommands live in ``dbd_core/cli/cmd_<name>.py``; each module defines
``add_parser(subparsers)`` which registers its parser and sets ``func(args) -> int`` as default."""

from __future__ import annotations

import argparse
import importlib
import sys

from dbd_core import __version__
from dbd_core.errors import DBDError

# Order shown in --help. Add a subcommand by adding its module name here.
COMMANDS = [
    "predict",
    "info",
    "eval",
    "dataset",
    "synth",
    "screen",
    "train",
    "finetune",
    "export-onnx",
    "bench",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dbd",
        description="Defocus blur detection: batch prediction, evaluation, data and training. "
        "Maps are float in [0,1] with 1 = blurred; PNG maps store 255 = blurred.",
    )
    parser.add_argument("--version", action="version", version=f"dbd {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"dbd_core.cli.cmd_{name.replace('-', '_')}").add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except DBDError as e:
        print(f"dbd {args.command}: error: {e}", file=sys.stderr)
        return 1
    except OSError as e:  # last resort: the commands turn the OS errors they expect into one-line errors
        print(f"dbd {args.command}: error: {_os_error_line(e)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"dbd {args.command}: interrupted", file=sys.stderr)
        return 130


def _os_error_line(e: OSError) -> str:
    """An OSError as ``<path>: <reason>`` (both paths of a rename), without Python's errno prefix."""
    reason = e.strerror or str(e) or type(e).__name__
    if e.filename is None:
        return reason
    where = str(e.filename) + (f" -> {e.filename2}" if getattr(e, "filename2", None) else "")
    return f"{where}: {reason}"


if __name__ == "__main__":
    sys.exit(main())
