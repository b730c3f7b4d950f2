"""Datasets for training, by the config's ``data.kind``; the dataset modules are imported lazily so
the training engine does not depend on them until it needs one.

  synthetic  dbd_core.data.synth.SyntheticDataset over a folder of sharp photos (``data.sharp``)
  folder     dbd_core.data.dataset folder dataset (photos + masks) at ``data.path``
  hdf5       dbd_core.data.dataset HDF5 dataset at ``data.path``
"""

from __future__ import annotations

import inspect

import numpy as np
from torch.utils.data import Dataset, Subset

from dbd_core.errors import DBDError, InputError
from dbd_core.train.config import resolve_path


def _call(cls, **kwargs):
    """Call ``cls`` with the keyword arguments it accepts (the dataset classes have optional knobs;
    ours are passed only where they exist)."""
    params = inspect.signature(cls).parameters
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return cls(**kwargs)
    return cls(**{k: v for k, v in kwargs.items() if k in params})


def build_dataset(cfg: dict, *, path: str | None = None, labelled_only: bool = False) -> Dataset:
    """The training dataset the config describes (``path`` overrides ``data.path``/``data.sharp``)."""
    d = cfg["data"]
    kind = d["kind"]
    seed = cfg["run"]["seed"]
    if kind == "synthetic":
        root = resolve_path(path or d["sharp"], cfg)
        if not root:
            raise DBDError("data.sharp: a synthetic dataset needs a folder of sharp photos (or --sharp DIR)")
        from dbd_core.data.synth import SyntheticDataset

        return _call(SyntheticDataset, root=root, sharp_root=root, split=d["split"], size=d["size"],
                     length=d["length"], seed=seed, augment=d["augment"])
    root = resolve_path(path or d["path"], cfg)
    if not root:
        raise DBDError(f"data.path: a {kind} dataset needs a path (or --data)")
    from dbd_core.data import dataset as ds

    return ds.open_dataset(root, size=d["size"], augment=d["augment"], max_side=d["max_side"], seed=seed) \
        if hasattr(ds, "open_dataset") else _legacy_open(ds, kind, root, d, seed)


def _legacy_open(ds, kind, root, d, seed):
    name = {"folder": "FolderDataset", "hdf5": "HDF5Dataset"}[kind]
    cls = getattr(ds, name, None)
    if cls is None:
        raise DBDError(f"dbd_core.data.dataset has no {name}")
    return _call(cls, root=root, path=root, size=d["size"], augment=d["augment"], max_side=d["max_side"], seed=seed)


def split_holdout(dataset: Dataset, fraction: float, seed: int) -> tuple[Dataset, Dataset]:
    """Deterministic hold-out split: the same (dataset length, fraction, seed) always holds out the same
    items. At least one item on each side."""
    n = len(dataset)
    if n < 2:
        raise InputError(getattr(dataset, "root", None), f"{n} item(s): too few to hold out a validation part")
    k = min(n - 1, max(1, int(round(n * fraction))))
    perm = np.random.default_rng([seed, n]).permutation(n)
    return Subset(dataset, sorted(perm[k:].tolist())), Subset(dataset, sorted(perm[:k].tolist()))
