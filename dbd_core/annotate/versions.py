"""Model versions of an annotation project: fine-tuned weights the user adopted, and which one is active.

Files live in ``<project>/models/``: ``<stem>-ftN.pt`` + the ``.json`` card that ``dbd_core.weights``
writes beside every weights file. The bookkeeping lives in ``project.json`` under ``"models"``::

    "models": {"student": {"active": "student-ft2" | null,
                           "versions": [{"name", "file", "parent", "adopted_at", "metrics"}]}}

``active`` null means the model the studio was started with (shipped weights or a ``--student FILE``).
A fine-tune run writes a *candidate* into models/; it is listed only once adopted. Discarding deletes
the candidate's files; adopted versions are never deleted here (rolling back only moves ``active``),
so any earlier version stays one click away.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from dbd_core.annotate.project import MODELS_DIR, ProjectStore
from dbd_core.errors import InputError


@dataclass(frozen=True)
class ModelVersion:
    role: str
    name: str            # the weights file's stem, e.g. "student-ft2"
    path: Path           # absolute path of the weights file
    parent: str | None   # the parent version's name (or file stem)
    adopted_at: str
    metrics: dict        # {"before": {...}, "after": {...}} on the held-out photos

    @property
    def card_path(self) -> Path:
        return self.path.with_suffix(".json")


class ModelVersions:
    """Versions of each model role in one project; every change is saved to project.json at once."""

    def __init__(self, store: ProjectStore):
        self.store = store

    @property
    def folder(self) -> Path:
        return self.store.folder / MODELS_DIR

    def _entry(self, role: str) -> dict:
        entry = self.store.models.setdefault(role, {})
        entry.setdefault("active", None)
        entry.setdefault("versions", [])
        return entry

    def _version(self, role: str, rec: dict) -> ModelVersion:
        return ModelVersion(role, rec["name"], (self.store.folder / rec["file"]).resolve(), rec.get("parent"),
                            rec.get("adopted_at", ""), dict(rec.get("metrics") or {}))

    # ---------------------------------------------------------------- queries
    def list(self, role: str) -> list[ModelVersion]:
        """Adopted versions of ``role``, oldest first."""
        return [self._version(role, r) for r in self.store.models.get(role, {}).get("versions", [])]

    def get(self, role: str, name: str) -> ModelVersion:
        for v in self.list(role):
            if v.name == name:
                return v
        raise KeyError(f"{role}: no adopted version {name!r}")

    def active(self, role: str) -> ModelVersion | None:
        """The active version, or None for the studio's base model. A version whose file vanished is
        not returned (the base model is used instead of failing at every map)."""
        name = self.store.models.get(role, {}).get("active")
        if not name:
            return None
        try:
            v = self.get(role, name)
        except KeyError:
            return None
        return v if v.path.is_file() else None

    # ---------------------------------------------------------------- changes
    def adopt(self, role: str, weights: str | Path, card: dict | None = None) -> ModelVersion:
        """Record the candidate ``weights`` (a file in the project's models/ folder) as a version of
        ``role`` and make it active."""
        path = Path(weights).resolve()
        if not path.is_file():
            raise InputError(path, "no such weights file to adopt")
        if path.parent != self.folder.resolve():
            raise InputError(path, f"a version must live in the project's {MODELS_DIR}/ folder")
        from dbd_core.weights import verify_weights

        status, detail = verify_weights(path)
        if status != "ok":
            raise InputError(path, f"cannot adopt: {detail}")
        card = card if card is not None else _read_json(path.with_suffix(".json"))
        entry = self._entry(role)
        entry["versions"] = [r for r in entry["versions"] if r["name"] != path.stem]
        parent = (card.get("parent") or {}).get("version") if isinstance(card.get("parent"), dict) else None
        rec = {"name": path.stem, "file": f"{MODELS_DIR}/{path.name}", "parent": parent,
               "adopted_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
               "metrics": card.get("metrics") or {}}
        entry["versions"].append(rec)
        entry["active"] = path.stem
        self.store.save_index()
        return self._version(role, rec)

    def set_active(self, role: str, name: str | None) -> ModelVersion | None:
        """Switch ``role`` to an adopted version, or to the base model with None."""
        v = None if name is None else self.get(role, name)
        if v is not None and not v.path.is_file():
            raise InputError(v.path, "the version's weights file is missing")
        self._entry(role)["active"] = name
        self.store.save_index()
        return v

    def discard(self, weights: str | Path) -> None:
        """Delete a candidate that was not adopted (weights, card, and its run folder)."""
        path = Path(weights).resolve()
        for role, entry in self.store.models.items():
            if any(r["name"] == path.stem for r in entry.get("versions", [])):
                raise InputError(path, f"is an adopted {role} version; switch away from it instead")
        if path.parent != self.folder.resolve():
            raise InputError(path, f"not a candidate in the project's {MODELS_DIR}/ folder")
        for p in (path, path.with_suffix(".json")):
            p.unlink(missing_ok=True)
        self.remove_run(path.stem)

    def remove_run(self, stem: str) -> None:
        """The engine's run folder for a version (checkpoint, events): not needed once the run ended."""
        shutil.rmtree(self.folder / "runs" / stem, ignore_errors=True)


def _read_json(path: Path) -> dict:
    import json

    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
