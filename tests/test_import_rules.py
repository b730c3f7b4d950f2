"""The engine must run without a GUI: no dbd_core module may import Qt, pyqtgraph or app."""

import pkgutil
import subprocess
import sys

import dbd_core


def test_dbd_core_imports_without_qt():
    mods = [m.name for m in pkgutil.walk_packages(dbd_core.__path__, "dbd_core.")]
    assert len(mods) > 3
    # Make Qt unimportable in a fresh interpreter, then import every engine module.
    code = (
        "import sys\n"
        "for blocked in ('PySide6', 'pyqtgraph', 'PyQt5', 'PyQt6', 'app'):\n"
        "    sys.modules[blocked] = None\n"
        f"mods = {mods!r}\n"
        "import importlib\n"
        "for m in mods:\n"
        "    importlib.import_module(m)\n"
        "print('ok', len(mods))\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=240)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.startswith("ok")
