"""Where the product's bundled resources live (shipped models, demo photos, configs)."""

from __future__ import annotations

import os
from pathlib import Path

_REPO_ROOT = Path(__file__).resolve().parent.parent


def resources_dir() -> Path:
    """``$DBD_RESOURCES`` if set, else the ``resources/`` folder beside the package."""
    env = os.environ.get("DBD_RESOURCES")
    return Path(env) if env else _REPO_ROOT / "resources"


def models_dir() -> Path:
    return resources_dir() / "models"


def configs_dir() -> Path:
    return resources_dir() / "configs"


def demo_dir() -> Path:
    return resources_dir() / "demo"
