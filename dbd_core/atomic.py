"""Atomic file writes: write to a temp name in the same folder, fsync, then rename.

A crash or kill at any moment leaves either the old file or the new one, never half of one.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import tempfile
from pathlib import Path
from typing import Iterator

from dbd_core.errors import InputError

_RANDOM_CHARS = 8  # what tempfile.mkstemp puts between prefix and suffix
_DEFAULT_NAME_MAX = 255


def _name_max(folder: Path) -> int:
    try:
        return int(os.pathconf(folder, "PC_NAME_MAX"))
    except (OSError, ValueError, AttributeError):  # no pathconf (Windows) or no such limit
        return _DEFAULT_NAME_MAX


def temp_prefix(folder: Path, stem: str, tmp_suffix: str) -> str:
    """The mkstemp prefix ``.<stem>.`` for a temp file beside a target, the stem cut short (by whole
    characters, measured in file-system bytes) when the temp name would pass the folder's name limit,
    which a final name near the limit would otherwise hit. Always hidden; mkstemp keeps it unique."""
    room = _name_max(folder) - len(os.fsencode(tmp_suffix)) - _RANDOM_CHARS - 2  # the two dots
    if len(os.fsencode(stem)) > room:
        while stem and len(os.fsencode(stem)) > max(room, 0):
            stem = stem[:-1]
    return f".{stem}." if stem else "."


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` atomically.

    ``suffix`` keeps the extension (OpenCV and h5py choose the format by it).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix if suffix is None else suffix
    tmp_suffix = f".tmp{suffix}"
    fd, tmp = tempfile.mkstemp(prefix=temp_prefix(path.parent, path.stem, tmp_suffix), suffix=tmp_suffix,
                               dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    # mkstemp creates 0600 files; give the result the permissions a plain open() would.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp_path, 0o666 & ~umask)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp_path, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


def check_writable(path: str | os.PathLike, kind: str = "file") -> None:
    """Refuse, before any long work, an output that cannot be written: InputError ``<path>: cannot write
    (<reason>)``. ``kind`` is what ``path`` will be: "file" (refused if it is a folder), "folder" (refused
    if it is a file), or "any" (a dataset folder or file, replaced whole; only its folder is checked).
    The nearest existing folder on the way is probed with a temp file, removed again; nothing else is
    created, so a refused run leaves no trace."""
    path = Path(path)
    if kind not in ("file", "folder", "any"):
        raise ValueError(f"unknown kind {kind!r}")

    def refuse(code_or_error) -> None:
        reason = os.strerror(code_or_error) if isinstance(code_or_error, int) else code_or_error.strerror
        raise InputError(path, f"cannot write ({reason or code_or_error})")

    if kind == "file" and path.is_dir():
        refuse(errno.EISDIR)
    if kind == "folder" and path.exists() and not path.is_dir():
        refuse(errno.ENOTDIR)
    folder = path if kind == "folder" else path.parent
    while not folder.exists() and not folder.is_symlink() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        refuse(errno.ENOTDIR)
    try:
        fd, probe = tempfile.mkstemp(prefix=".dbd-write-check.", suffix=".tmp", dir=folder)
    except OSError as e:
        refuse(e)
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(probe)


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | os.PathLike, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike, obj) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")
