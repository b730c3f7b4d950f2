"""Datasets for training, by the config's ``data.kind``; the dataset modules are imported lazily so
the training engine does not depend on them until it needs one.

  synthetic  dbd_core.data.synth.SyntheticDataset over a folder of sharp photos (``data.sharp``)
  folder     dbd_core.data.dataset folder dataset (photos + masks) at ``data.path``
  hdf5       dbd_core.data.dataset HDF5 dataset at ``data.path``
"""

from __future__ import annotations

from contextlib import nullcontext

import numpy as np
from torch.utils.data import Dataset, Subset

from dbd_core.errors import DBDError, InputError
from dbd_core.train.config import naming, resolve_path


def build_dataset(cfg: dict, *, path: str | None = None, labelled_only: bool = False) -> Dataset:
    """The training dataset the config describes (``path`` overrides ``data.path``/``data.sharp``)."""
    d = cfg["data"]
    kind = d["kind"]
    seed = cfg["run"]["seed"]
    if kind == "synthetic":
        root = resolve_path(path or d["sharp"], cfg)
        if not root:
            raise DBDError("data.sharp: a synthetic dataset needs a folder of sharp photos (or --sharp DIR)")
        from dbd_core.data.screen import read_exclusions
        from dbd_core.data.synth import SharpPhotoSource, SynthConfig, SyntheticDataset

        with naming(cfg, "data.exclude"):
            exclude = read_exclusions(resolve_path(d["exclude"], cfg)) if d["exclude"] else set()
        # a path handed in (a fine-tune's data) names itself; one from the config says its key
        with naming(cfg, "data.sharp") if not path else nullcontext():
            source = SharpPhotoSource(root, split=d["split"], exclude=exclude)
        return SyntheticDataset(source, length=d["length"], seed=seed if d["render_seed"] < 0 else d["render_seed"],
                                cfg=SynthConfig(size=d["size"], crop=d["crop"]))
    root = resolve_path(path or d["path"], cfg)
    if not root:
        raise DBDError(f"data.path: a {kind} dataset needs a path (or --data)")
    from dbd_core.data.dataset import LabelledDataset

    with naming(cfg, "data.path") if not path else nullcontext():
        ds = LabelledDataset(root, size=d["size"], augment=d["augment"], seed=seed)
    if d["max_side"]:
        ds.reader = ResizingCache(ds.reader, d["max_side"])
    return ds


class ResizingCache:
    """Wraps a dataset reader: each photo (and mask) is decoded once, shrunk so its long side is at most
    ``max_side`` and kept in memory. A 12 MP photo then costs one decode per run instead of one per
    step (~0.3 s each on this CPU), and crops at the working size see the photo at a sensible scale."""

    def __init__(self, reader, max_side: int):
        self._reader, self.max_side, self._cache = reader, int(max_side), {}

    def __getattr__(self, name):
        return getattr(self._reader, name)

    def __contains__(self, name):
        return name in self._reader

    def reduction_for(self, name) -> int:
        """Largest JPEG decode reduction (8/4/2) whose result still has a long side >= ``max_side``:
        a 12 MP JPEG decoded at 1/2 or 1/4 is several times faster than a full decode plus resize."""
        hw = self._reader.size_of(name)
        if not hw:
            return 1
        return next((k for k in (8, 4, 2) if max(hw) / k >= self.max_side), 1)

    def get(self, name, reduce: int = 1):
        # ``reduce`` is the caller's hint for a full-size photo; the cache holds the photo at ``max_side``
        # and picks its own reduction for that, so every caller sees the same cached pixels.
        if name not in self._cache:
            import cv2

            rgb, mask, meta = self._reader.get(name, reduce=self.reduction_for(name))
            h, w = rgb.shape[:2]
            s = self.max_side / max(h, w)
            if s < 1:
                size = (max(1, round(w * s)), max(1, round(h * s)))
                rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
                if mask is not None:
                    mask = cv2.resize(mask, size, interpolation=cv2.INTER_NEAREST)
            self._cache[name] = (rgb, mask, meta)
        return self._cache[name]


def set_epoch(dataset, epoch: int) -> None:
    """Tell a dataset (through Subset wrappers) which epoch it serves: augmentation is a function of
    (seed, epoch, index), which keeps resumed runs exact."""
    while dataset is not None:
        if hasattr(dataset, "set_epoch"):
            dataset.set_epoch(epoch)
        dataset = getattr(dataset, "dataset", None)


def train_and_validation(cfg: dict, dataset=None):
    """(training set, validation set or None) as a run of ``cfg`` splits them (val.fraction, val.holdout,
    val.render); tools that judge weights outside a run (benchmarks/interpolate_weights.py) see the same
    held-out renders."""
    train = dataset if dataset is not None else build_dataset(cfg)
    v = cfg["val"]
    if v["fraction"] <= 0:
        return train, None
    if v["holdout"] != "photos":
        return split_holdout(train, v["fraction"], cfg["run"]["seed"])
    render = None
    if v["render"] == "bench":
        from dbd_core.data.synth import bench_render_config

        render = bench_render_config(v["size"] or cfg["data"]["size"])
    return split_holdout_photos(train, v["fraction"], cfg["run"]["seed"], val_render=render)


def split_holdout_photos(dataset, fraction: float, seed: int, val_render=None):
    """A synthetic dataset split by source photo: (renders of the training photos, renders of the held-out
    photos). The held-out renders use their own seed stream (``seed`` + 1, whatever seeds the training
    renders: data.render_seed gives a run new training renders and the same held-out ones), and there are about
    ``fraction`` x the dataset's length of them, at least one per held-out photo. ``val_render`` (a
    SynthConfig) renders the held-out photos differently from the training ones (default: the same)."""
    from dbd_core.data.synth import SyntheticDataset

    if not isinstance(dataset, SyntheticDataset):
        return split_holdout(dataset, fraction, seed)  # folder/hdf5 items are photos already
    train_src, val_src = dataset.source.split_photos(fraction, seed)
    n_val = max(len(val_src), int(round(len(dataset) * fraction)))
    return (SyntheticDataset(train_src, len(dataset), dataset.seed, dataset.cfg),
            SyntheticDataset(val_src, n_val, seed + 1, val_render or dataset.cfg))


def split_holdout(dataset: Dataset, fraction: float, seed: int) -> tuple[Dataset, Dataset]:
    """Deterministic hold-out split: the same (dataset length, fraction, seed) always holds out the same
    items. At least one item on each side. The held-out part reads a copy of the dataset with its
    augmentation switched off (sharing its decoded-photo cache)."""
    n = len(dataset)
    if n < 2:
        raise InputError(getattr(dataset, "root", None), f"{n} item(s): too few to hold out a validation part")
    k = min(n - 1, max(1, int(round(n * fraction))))
    perm = np.random.default_rng([seed, n]).permutation(n)
    val_source = dataset
    if getattr(dataset, "augment", False):
        import copy

        val_source = copy.copy(dataset)
        val_source.augment = False
    return Subset(dataset, sorted(perm[k:].tolist())), Subset(val_source, sorted(perm[:k].tolist()))
