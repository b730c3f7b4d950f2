"""Training configs: TOML files with a strict schema.

Every key has a type and a default; a config file only states what differs. Unknown sections or keys
and wrong types are rejected with the key's dotted name, so a typo (``lr_rate``) cannot silently fall
back to a default and waste a night of training.
"""

from __future__ import annotations

import copy
import os
import tomllib
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from dbd_core.errors import DBDError, InputError


class ConfigError(DBDError):
    """A config that does not follow the schema; the message names the file and the key."""


_ANY_TABLE = dict  # marker: a free-form table (network kwargs), passed through as is

# section -> key -> (type or tuple of types, default, allowed values or None)
SCHEMA: dict[str, dict[str, tuple]] = {
    "run": {
        "kind": (str, "teacher", ("teacher", "student", "finetune")),
        "name": (str, "run", None),
        "out_dir": (str, "runs", None),
        "seed": (int, 0, None),
        "device": (str, "auto", None),          # "auto" = CUDA when present, else CPU
        "threads": (int, 0, None),              # 0 = leave torch's default
        "steps": (int, 1000, None),
        "log_every": (int, 10, None),
        "checkpoint_every": (int, 200, None),
    },
    "model": {
        "name": (str, "teacher", None),
        "kwargs": (_ANY_TABLE, {}, None),
        "init": (str, "", None),                # weights file to start from ("" = as built)
        "init_sha256": (str, "", None),         # leading hex digits the init file's sha256 must have ("" = any)
        "teacher_sha256": (str, "", None),      # student: the same pin for the --teacher file
        "freeze": (list, [], None),             # parameter-name prefixes kept frozen (e.g. early backbone)
        "freeze_levels": (int, 0, None),        # EfficientNet encoder: stem + first N levels frozen (BN too)
        "freeze_bn": (bool, False, None),       # every BatchNorm keeps its running statistics (eval mode)
        "save_half": (bool, False, None),
    },
    "discriminator": {
        "name": (str, "patchgan", None),
        "kwargs": (_ANY_TABLE, {}, None),
        "lr": (float, 1e-4, None),
    },
    "optim": {
        "name": (str, "adamw", ("adamw", "sgd")),   # the network's optimizer (discriminators: AdamW)
        "momentum": (float, 0.9, None),            # sgd only (Nesterov when > 0)
        "lr": (float, 1e-3, None),
        "weight_decay": (float, 1e-4, None),
        "betas": (list, [0.9, 0.999], None),
        "warmup_steps": (int, 0, None),
        "schedule": (str, "cosine", ("cosine", "poly", "constant")),
        "poly_power": (float, 0.9, None),
        "min_lr_ratio": (float, 0.01, None),
        "grad_clip": (float, 5.0, None),        # 0 = no clipping
    },
    "loss": {
        "bce": (float, 1.0, None),
        "region": (str, "iou", ("iou", "dice", "none")),
        "region_weight": (float, 1.0, None),
        "side_weight": (float, 0.5, None),      # each deep-supervision output, relative to the fused map
        "adv": (float, 0.0, None),              # D1 (teacher) / D2 (student) vs. ground truth
        "consistency": (float, 0.0, None),      # student vs. the teacher's soft target
        "feature": (float, 0.0, None),          # feature constraint teacher <-> student
        "feature_kind": (str, "attention", ("attention", "pairwise")),
        # student: "hflip" makes the teacher's soft target (consistency, D3) the average of its map and the
        # mirrored photo's, the map `--tta hflip` gives; one more teacher forward per step
        "teacher_tta": (str, "none", ("none", "hflip")),
        "adv_distill": (float, 0.0, None),      # D3: student map vs. teacher map
        "adv_start": (int, 0, None),            # adversarial terms join after this many steps
    },
    "data": {
        "kind": (str, "synthetic", ("synthetic", "folder", "hdf5")),
        "sharp": (str, "", None),               # synthetic: folder of sharp photos
        "exclude": (str, "", None),             # synthetic: screen file (dbd screen) of photos to leave out
        "split": (str, "train", None),
        "path": (str, "", None),                # folder or .h5 for kind folder/hdf5
        "unlabelled": (str, "", None),          # student: folder of photos without masks (teacher targets only)
        "size": (int, 320, None),               # working crop size
        # synthetic: "random" resized crops (shrinking a photo by up to cache_scale, which sharpens its
        # texture) or "centre": native-scale crops near the centre, the scale of the benchmark's renders
        "crop": (str, "random", ("random", "centre")),
        "length": (int, 2000, None),            # synthetic: items per epoch
        # synthetic: seed of the training renders (-1 = run.seed). A continuation that should see new renders
        # of the same photos changes it; the held-out photos and their renders stay on run.seed.
        "render_seed": (int, -1, None),
        "batch_size": (int, 4, None),
        "workers": (int, 0, None),
        "augment": (bool, True, None),
        "max_side": (int, 1024, None),          # folder/hdf5: photos are resized once to this and cached
    },
    "swa": {                                    # weight averaging (dbd_core/train/swa.py); needs validation
        "start": (int, 0, None),                # first step averaged (0 = off)
        "every": (int, 250, None),              # steps between snapshots
        "bn_batches": (int, 50, None),          # training batches to re-measure BatchNorm statistics on
    },
    "val": {
        "fraction": (float, 0.0, None),         # held-out part of the training data
        # What is held out. "items": that share of the dataset's items. "photos" (synthetic data): that
        # share of the source photos, whose renders training never sees, so validation measures how the
        # model does on photos it has not learned, as the benchmark does ("items" holds out renders of
        # photos that training renders too). For folder/hdf5 data each item is a photo: both are the same.
        "holdout": (str, "items", ("items", "photos")),
        # How held-out photos are rendered (holdout = "photos"): "train" as the training renders, or
        # "bench" as `dbd synth --preset bench` (native-scale centre crops, no one-class scene) at val.size
        "render": (str, "train", ("train", "bench")),
        "size": (int, 0, None),                 # validation render size (0 = data.size)
        "every": (int, 0, None),                # steps between validations (0 = only at the end)
        "batches": (int, 0, None),              # 0 = the whole validation set
        "patience": (int, 0, None),             # early stopping after this many non-improving validations
        "restore_best": (bool, False, None),
        # What "better" means for early stopping and the kept weights: the validation loss, or a
        # held-out metric of the maps (mae, nll: lower is better; f_beta, iou, auc_roc: higher is better),
        # or "release": the lowest MAE among validations whose F-beta and log-loss stay within the release
        # rule's bounds (dbd_core/release.py) of the run's first validation.
        "score": (str, "val_loss", ("val_loss", "mae", "nll", "auc_roc", "f_beta", "f_beta_two_class", "iou",
                                    "release")),
    },
}


def defaults() -> dict[str, dict[str, Any]]:
    return {sec: {k: copy.deepcopy(spec[1]) for k, spec in keys.items()} for sec, keys in SCHEMA.items()}


def _check_value(where: str, value, spec: tuple):
    typ, _default, allowed = spec
    if typ is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)  # TOML `lr = 1` means 1.0
    if (typ in (int, float) and isinstance(value, bool)) or not isinstance(value, typ):
        raise ConfigError(f"{where}: expected {_type_name(typ)}, got {type(value).__name__} ({value!r})")
    if allowed is not None and value not in allowed:
        raise ConfigError(f"{where}: {value!r} is not one of {', '.join(map(repr, allowed))}")
    if typ in (int, float) and value < 0 and not where.endswith("seed"):  # run.seed, data.render_seed
        raise ConfigError(f"{where}: must not be negative ({value!r})")
    return value


def _type_name(typ) -> str:
    return {str: "a string", int: "an integer", float: "a number", bool: "true/false", list: "a list",
            dict: "a table"}.get(typ, typ.__name__)


def validate(raw: dict, source: str = "<config>") -> dict[str, dict[str, Any]]:
    """Merge ``raw`` over the defaults, rejecting unknown keys and wrong types (named in the error)."""
    cfg = defaults()
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: a config is a TOML table")
    for sec, table in raw.items():
        if sec not in SCHEMA:
            raise ConfigError(f"{source}: unknown section [{sec}] (known: {', '.join(SCHEMA)})")
        if not isinstance(table, dict):
            raise ConfigError(f"{source}: {sec}: expected a table [{sec}]")
        for key, value in table.items():
            if key not in SCHEMA[sec]:
                raise ConfigError(f"{source}: unknown key {sec}.{key} (known in [{sec}]: {', '.join(SCHEMA[sec])})")
            cfg[sec][key] = _check_value(f"{source}: {sec}.{key}", value, SCHEMA[sec][key])
    betas = cfg["optim"]["betas"]
    if len(betas) != 2 or not all(isinstance(b, (int, float)) and 0 <= b < 1 for b in betas):
        raise ConfigError(f"{source}: optim.betas: expected two numbers in [0, 1), got {betas!r}")
    if not 0 <= cfg["val"]["fraction"] < 1:
        raise ConfigError(f"{source}: val.fraction: must be in [0, 1), got {cfg['val']['fraction']!r}")
    if cfg["val"]["render"] != "train" and cfg["val"]["holdout"] != "photos":
        raise ConfigError(f"{source}: val.render = {cfg['val']['render']!r} renders held-out photos of their own: "
                          "it needs val.holdout = \"photos\"")
    synthetic = cfg["data"]["kind"] == "synthetic"
    if cfg["data"]["crop"] != "random" and not synthetic:
        raise ConfigError(f"{source}: data.crop: only synthetic data is cropped by the renderer "
                          f"(data.kind = {cfg['data']['kind']!r})")
    if cfg["data"]["render_seed"] >= 0 and not synthetic:
        raise ConfigError(f"{source}: data.render_seed: only synthetic data is rendered "
                          f"(data.kind = {cfg['data']['kind']!r})")
    if cfg["val"]["render"] != "train" and not synthetic:
        raise ConfigError(f"{source}: val.render: only synthetic data is rendered (data.kind = {cfg['data']['kind']!r})")
    if cfg["val"]["size"] and cfg["val"]["render"] == "train":
        raise ConfigError(f"{source}: val.size: only a val.render = \"bench\" validation has a size of its own")
    if cfg["data"]["batch_size"] < 1 or cfg["run"]["steps"] < 1:
        raise ConfigError(f"{source}: data.batch_size and run.steps must be at least 1")
    if not all(isinstance(p, str) for p in cfg["model"]["freeze"]):
        raise ConfigError(f"{source}: model.freeze: expected a list of parameter-name prefixes (strings)")
    return cfg


def load_config(path: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """Read and validate a TOML config. Relative data paths are resolved against the config's folder
    first, then the current directory, so shipped configs work from any working directory."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read ({e})") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML ({e})") from None
    cfg = validate(raw, str(path))
    cfg["_source"] = str(path)
    return cfg


@contextmanager
def naming(cfg: dict, key: str):
    """Errors about a path the config names say which file and key they come from, or which command-line
    option set it (``cfg["_overrides"]``, e.g. --sharp for data.sharp)."""
    option = cfg.get("_overrides", {}).get(key)
    try:
        yield
    except InputError as e:
        raise InputError(None, f"{option or config_name(cfg) + key}: {e}") from None


def config_name(cfg: dict) -> str:
    """"<file>: " for messages about a loaded config's keys ("" for a config built in memory)."""
    return f"{Path(cfg['_source']).name}: " if cfg.get("_source") else ""


def resolve_path(value: str, cfg: dict) -> str:
    """A path from the config: absolute as is; relative against the cwd if it exists there, else
    against the config file's folder and its parents (shipped configs say ``../shared/data/sharp``,
    meant relative to the repository root)."""
    if not value or os.path.isabs(value) or os.path.exists(value):
        return value
    src = cfg.get("_source")
    if src:
        for base in [Path(src).resolve().parent, *Path(src).resolve().parents]:
            if (base / value).exists():
                return str(base / value)
    return value


def to_plain(cfg: dict) -> dict:
    """The config without private keys, for cards and checkpoints."""
    return {k: copy.deepcopy(v) for k, v in cfg.items() if not k.startswith("_")}
