"""Errors that carry a one-line, user-facing message naming the file and the reason."""

from __future__ import annotations

import os


class DBDError(Exception):
    """Base class for expected failures; the CLI prints str(err) on one line, never a traceback."""


class InputError(DBDError):
    """A bad input file or array: ``<path>: <reason>``."""

    def __init__(self, path: str | os.PathLike | None, reason: str):
        self.path = None if path is None else os.fspath(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}" if self.path else reason)


class WeightsMissingError(DBDError):
    """A model was asked for whose trained weights are not installed."""
