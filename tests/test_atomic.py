"""dbd_core.atomic: temp names that fit the file system's name limit, and the up-front writability check."""

from __future__ import annotations

import os

import pytest

from dbd_core.atomic import atomic_path, check_writable, temp_prefix, write_bytes
from dbd_core.errors import InputError


def _name_max(folder) -> int:
    try:
        return os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError):
        return 255


@pytest.mark.parametrize("stem_char", ["L", "é"])  # é is two bytes: the limit counts bytes
def test_a_name_near_the_limit_is_written_through_a_shorter_hidden_temp_name(tmp_path, stem_char):
    limit = _name_max(tmp_path)
    suffix = ".png"
    stem = stem_char * ((limit - len(suffix)) // len(stem_char.encode()))  # final name fits, just
    target = tmp_path / f"{stem}{suffix}"
    assert len(os.fsencode(target.name)) <= limit
    seen = []
    with atomic_path(target) as tmp:
        seen.append(tmp.name)
        assert tmp.name.startswith(".") and tmp.name.endswith(".tmp.png")
        assert len(os.fsencode(tmp.name)) <= limit
        tmp.write_bytes(b"data")
    assert target.read_bytes() == b"data"
    assert [p.name for p in tmp_path.iterdir()] == [target.name]  # no temp file left


def test_short_names_keep_their_full_stem_in_the_temp_name(tmp_path):
    assert temp_prefix(tmp_path, "photo", ".tmp.png") == ".photo."
    with atomic_path(tmp_path / "photo.png") as tmp:
        assert tmp.name.startswith(".photo.")
        tmp.write_bytes(b"x")


def test_temp_names_near_the_limit_stay_unique(tmp_path):
    stem = "x" * (_name_max(tmp_path) - 4)
    for i in range(3):  # each write replaces the last; none collides with a temp of another
        write_bytes(tmp_path / f"{stem}.bin", bytes([i]))
    assert (tmp_path / f"{stem}.bin").read_bytes() == b"\x02"


def test_check_writable_refuses_a_path_under_a_file_and_a_folder_as_a_file(tmp_path):
    (tmp_path / "outfile").write_text("")
    with pytest.raises(InputError, match=r"outfile/r\.json: cannot write \(Not a directory\)"):
        check_writable(tmp_path / "outfile" / "r.json", "file")
    with pytest.raises(InputError, match=r"outfile: cannot write \(Not a directory\)"):
        check_writable(tmp_path / "outfile", "folder")
    (tmp_path / "adir").mkdir()
    with pytest.raises(InputError, match=r"adir: cannot write \(Is a directory\)"):
        check_writable(tmp_path / "adir", "file")
    check_writable(tmp_path / "new" / "deeper" / "r.json", "file")  # missing folders are fine ...
    check_writable(tmp_path / "adir", "any")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adir", "outfile"]  # ... and nothing was created


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders (see test_cli_os_errors)")
def test_check_writable_refuses_a_read_only_folder(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        with pytest.raises(InputError, match=r"ro/x\.h5: cannot write \(Permission denied\)"):
            check_writable(ro / "x.h5", "any")
    finally:
        ro.chmod(0o755)
