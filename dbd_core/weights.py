"""Weights files: one torch file per trained network plus a JSON card beside it.

File layout (``torch.save`` of a plain dict, loadable with ``weights_only=True`` so a weights file can
never run code): ``{"format": "dbd-weights", "version": 1, "arch": name, "arch_kwargs": {...},
"state_dict": {...}, "card": {...}}``. The card beside it (``<stem>.json``) repeats the card and adds
the sha256 of the weights file, so a damaged or swapped file is detected before it produces maps.

Shipped weights live in ``resources/models/{teacher,student}.pt``. When they are missing we raise
``WeightsMissingError``: a predictor with random weights would produce plausible-looking nonsense.
"""

from __future__ import annotations

import hashlib
import json
import os
from datetime import datetime, timezone
from pathlib import Path

import torch
from torch import nn

from dbd_core.atomic import atomic_path, write_json
from dbd_core.errors import InputError, WeightsMissingError
from dbd_core.paths import models_dir

FORMAT = "dbd-weights"
VERSION = 1
SHIPPED_MODELS = ("teacher", "student")
WEIGHTS_SUFFIX = ".pt"


def card_path(weights_path: str | os.PathLike) -> Path:
    """The JSON card that belongs to a weights file: same folder, same stem, ``.json``."""
    return Path(weights_path).with_suffix(".json")


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def check_pinned(path: str | os.PathLike, pin: str, key: str) -> None:
    """Refuse a weights file whose sha256 does not start with ``pin`` (a config's ``model.init_sha256``).

    A staged recipe continues a released file by path (``resources/models/teacher.pt``), and the next
    release replaces that file: without the pin, re-running an old stage would silently start from the
    wrong weights and train something else under the old recipe's name."""
    pin = pin.strip().lower()
    if not pin:
        return
    if len(pin) < 8 or any(c not in "0123456789abcdef" for c in pin):
        raise InputError(path, f"{key} = {pin!r} is not the start of a sha256 (at least 8 hex digits)")
    actual = sha256_file(path)
    if not actual.startswith(pin):
        raise InputError(path, f"sha256 {actual[:12]} is not the {pin} this recipe's {key} asks for (a later "
                               "release may have replaced it: check out the commit that shipped it, or point the "
                               "recipe at a copy of that file)")


def load_pinned(path: str | os.PathLike, pin: str, key: str) -> tuple[nn.Module, dict]:
    """``load_model_file`` for a file a recipe names and may pin (``check_pinned``): the pin is checked
    first, so a replaced file is refused before the network is built."""
    path = Path(path)
    if path.is_file():
        check_pinned(path, pin, key)
    return load_model_file(path)


def save_model(path: str | os.PathLike, model: nn.Module, card: dict | None = None, half: bool = False) -> Path:
    """Write ``model`` (built by ``nets.build_model``) and its card atomically. Returns the weights path.

    ``half=True`` stores floating-point tensors as float16 (half the size; loading casts back to
    float32, which costs ~1e-3 relative precision in the weights, invisible in the maps).
    """
    path = Path(path)
    arch = getattr(model, "arch_name", None)
    if not arch:
        raise ValueError("model has no arch_name; build it with dbd_core.nets.build_model so it can be rebuilt")
    arch_kwargs = dict(getattr(model, "arch_kwargs", {}) or {})
    state = {}
    for k, v in model.state_dict().items():
        v = v.detach().to("cpu").clone()
        if half and v.is_floating_point():
            v = v.half()
        state[k] = v
    # A JSON round trip keeps the payload loadable with weights_only=True (no foreign objects such as
    # torch's TorchVersion strings can slip into the pickle through the card).
    card = json.loads(json.dumps(dict(card or {}), default=str))
    payload = {"format": FORMAT, "version": VERSION, "arch": arch, "arch_kwargs": arch_kwargs,
               "state_dict": state, "card": card}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    from dbd_core.nets.registry import count_parameters

    full_card = dict(card)
    full_card.update({
        "arch": arch,
        "arch_kwargs": arch_kwargs,
        "weights_file": path.name,
        "sha256": sha256_file(path),
        "size_bytes": path.stat().st_size,
        "dtype": "float16" if half else "float32",
        "parameters": count_parameters(model),
        "saved_at": full_card.get("saved_at") or datetime.now(timezone.utc).isoformat(timespec="seconds"),
    })
    write_json(card_path(path), full_card)
    return path


def verify_weights(path: str | os.PathLike) -> tuple[str, str]:
    """Check a weights file against its card. Returns ``(status, detail)`` with status one of
    ``"ok"`` (sha256 matches), ``"no-card"`` (no JSON card beside it, or it names no sha256),
    ``"mismatch"`` (file changed or damaged since it was saved), ``"missing"`` (no weights file)."""
    path = Path(path)
    if not path.is_file():
        return "missing", f"{path}: no such file"
    cp = card_path(path)
    card = _read_card(cp)
    expected = (card or {}).get("sha256")
    if not expected:
        return "no-card", f"no sha256 to check against ({cp.name} {'has none' if card else 'missing'})"
    actual = sha256_file(path)
    if actual != expected:
        return "mismatch", f"sha256 {actual[:12]}... differs from {cp.name}'s {str(expected)[:12]}..."
    return "ok", f"sha256 {actual[:12]}... matches {cp.name}"


def _read_card(cp: Path) -> dict | None:
    try:
        card = json.loads(cp.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return card if isinstance(card, dict) else None


def grow_from(path: str | os.PathLike, pin: str, key: str, kwargs: dict) -> nn.Module:
    """A network of the file's architecture built with extra ``kwargs`` (new layers, such as the student's
    ``detail_blocks``), holding every weight of the file. Refused unless the new network computes what the
    file's did: each stored tensor must fit a parameter of the same name and shape, and the new layers must
    start as the identity (logits within 1e-4 on a probe image). A recipe that adds capacity to a released
    model then starts from that model's maps, not from a perturbed copy of them."""
    from dbd_core.nets.registry import build_model

    old, _ = load_pinned(path, pin, key)
    arch = old.arch_name
    merged = dict(old.arch_kwargs)
    merged.update(kwargs)
    if _takes_pretrained(arch):
        merged["pretrained"] = False
    try:
        new = build_model(arch, **merged)
    except TypeError as e:
        raise InputError(path, f"model.kwargs do not fit network {arch!r}: {e}") from None
    merged.pop("pretrained", None)
    new.arch_kwargs = merged
    theirs, ours = old.state_dict(), new.state_dict()
    bad = [k for k, v in theirs.items() if k not in ours or ours[k].shape != v.shape]
    if bad:
        raise InputError(path, f"cannot grow {arch!r} with {kwargs}: {len(bad)} stored tensors do not fit "
                               f"(first: {bad[0]})")
    new.load_state_dict(theirs, strict=False)
    new.eval()
    probe = torch.rand(1, 3, 96, 96, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        gap = float((new(probe, sides=False).logits - old(probe, sides=False).logits).abs().max())
    if not gap <= 1e-4:  # NaN too: a new layer that computes garbage is not the identity
        raise InputError(path, f"growing {arch!r} with {kwargs} changes its output (max |logit diff| {gap:.2e}): "
                               "new layers must start as the identity")
    return new


def load_model_file(path: str | os.PathLike, map_location: str | torch.device = "cpu",
                    verify: bool = True) -> tuple[nn.Module, dict]:
    """Weights file -> (network in eval mode, card). Raises InputError naming the file for anything
    that is not an intact dbd weights file. With ``verify`` the sha256 in the card beside it (if any)
    must match."""
    path = Path(path)
    if not path.exists():
        raise InputError(path, "no such file")
    if path.is_dir():
        raise InputError(path, "is a folder, not a weights file")
    if path.stat().st_size == 0:
        raise InputError(path, "empty file (0 bytes)")
    if verify:
        status, detail = verify_weights(path)
        if status == "mismatch":
            raise InputError(path, f"weights file does not match its card ({detail}); it was changed or damaged")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception:  # torch raises many types for bad files (pickle, zip, EOF, runtime); none is clearer
        raise InputError(path, "not a readable dbd weights file (corrupt, truncated or another format)") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise InputError(path, "not a dbd weights file (a torch file without the dbd-weights header; "
                               "save networks with dbd_core.weights.save_model)")
    version = payload.get("version")
    if not isinstance(version, int) or version > VERSION:
        raise InputError(path, f"weights format version {version!r} is newer than this dbd understands ({VERSION})")
    from dbd_core.nets.registry import build_model

    arch, kwargs = payload.get("arch"), payload.get("arch_kwargs") or {}
    try:
        build_kwargs = dict(kwargs)
        if _takes_pretrained(arch):
            build_kwargs["pretrained"] = False
        model = build_model(arch, **build_kwargs)
    except KeyError:
        raise InputError(path, f"unknown network architecture {arch!r} (written by a newer dbd?)") from None
    except TypeError as e:
        raise InputError(path, f"architecture {arch!r} does not accept its stored settings ({e})") from None
    try:
        model.load_state_dict(payload["state_dict"], strict=True)
    except (RuntimeError, KeyError, TypeError) as e:
        first = str(e).strip().splitlines()[0][:160]
        raise InputError(path, f"weights do not fit network {arch!r} ({first})") from None
    model.arch_kwargs = dict(kwargs)  # keep the stored kwargs (without our pretrained override)
    model.to(map_location).eval()
    card = _read_card(card_path(path)) or dict(payload.get("card") or {})
    card.setdefault("arch", arch)
    return model, card


def _takes_pretrained(arch) -> bool:
    """Networks with an ImageNet backbone accept ``pretrained``; when loading trained weights the
    backbone's ImageNet file need not be read (every tensor is overwritten anyway)."""
    import inspect

    from dbd_core.nets import registry

    registry._ensure_loaded()
    fn = registry._REGISTRY.get(arch)
    if fn is None:
        return False
    try:
        return "pretrained" in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


def shipped_weights(name: str) -> Path | None:
    """``resources/models/<name>.pt`` if it is installed, else None."""
    p = models_dir() / f"{name}{WEIGHTS_SUFFIX}"
    return p if p.is_file() else None


def how_to_get(name: str) -> str:
    """One sentence telling a user how to obtain the weights for a shipped model name."""
    target = models_dir() / f"{name}{WEIGHTS_SUFFIX}"
    teacher = models_dir() / f"teacher{WEIGHTS_SUFFIX}"
    # --unpin: student.toml pins the teacher its release was distilled from; a teacher trained here is another
    recipe = (f"dbd train {name} --config resources/configs/{name}.toml"
              + (f" --teacher {teacher} --unpin" if name == "student" else "") + f" --out {target}")
    return (f"train them with `{recipe}` (README, 'Training recipes'), or use a weights file "
            "(dbd: --weights FILE; dbd-studio: --teacher FILE / --student FILE)")


def require_shipped(name: str) -> Path:
    """The shipped weights path for ``name`` or WeightsMissingError saying how to get them."""
    p = shipped_weights(name)
    if p is None:
        raise WeightsMissingError(f"no trained weights for {name!r} are installed "
                                  f"(looked for {models_dir() / (name + WEIGHTS_SUFFIX)}); {how_to_get(name)}")
    return p
