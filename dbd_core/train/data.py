"""Datasets for training, by the config's ``data.kind``; the dataset modules are imported lazily so
the training engine does not depend on them until it needs one.

  synthetic  dbd_core.data.synth.SyntheticDataset over a folder of sharp photos (``data.sharp``)
  folder     dbd_core.data.dataset folder dataset (photos + masks) at ``data.path``
  hdf5       dbd_core.data.dataset HDF5 dataset at ``data.path``

Splits of a folder/HDF5 dataset follow the dataset (``dbd_core.data.dataset.names_for_split``): a sample
marked ``test`` is never trained or validated on, one marked ``train``/``val`` stays there, and the others
go to train or val by a hash of their name, so adding photos never moves existing ones. Synthetic and
in-memory data (items, not named photos) are split by ``split_holdout``.

A user dataset is checked before training (``check_samples``): every photo and mask is decoded once (into
the resizing cache, so training does not decode them again); a sample that cannot be read is named on one
line (file and reason) and left out, and the counts are of the usable samples.
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import Iterator

import numpy as np
from torch.utils.data import Dataset, Subset

from dbd_core.errors import DBDError, InputError
from dbd_core.train.config import naming, resolve_path


def build_dataset(cfg: dict, *, path: str | None = None, labelled_only: bool = False, check: bool = True) -> Dataset:
    """The training dataset the config describes (``path`` overrides ``data.path``/``data.sharp``).

    A folder/HDF5 dataset holds its train and val samples only (never those marked ``test``); with ``check``
    every sample is read once here and the unreadable ones are left out (their lines in ``dataset.problems``).
    Callers that report progress pass ``check=False`` and run ``iter_check`` themselves."""
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
    ds.names = [n for n in ds.names if ds.reader.split_of(n) != "test"]  # "test" is never trained on
    ds.problems = []
    if d["max_side"]:
        ds.reader = ResizingCache(ds.reader, d["max_side"])
    if check:
        check_samples(ds)
    return ds


def is_named_dataset(dataset) -> bool:
    """A dataset of named photos from a folder/HDF5 file (dbd_core.data.dataset.LabelledDataset), whose own
    split field decides train/val/test; False for synthetic renders and in-memory items."""
    reader = getattr(dataset, "reader", None)
    return reader is not None and hasattr(reader, "split_of") and hasattr(dataset, "names")


def iter_check(dataset, cancel=None) -> Iterator[dict]:
    """Read every sample of a folder/HDF5 dataset once: events ``{"type": "check", "done", "total"}`` (at most
    about a hundred) and, per sample that cannot be read, ``{"type": "skipped", "name", "message"}`` with a
    one-line ``<file>: <reason>``. The bad samples are then removed from ``dataset.names`` (and their lines
    appended to ``dataset.problems``). With a resizing cache the decoded photos stay there for training, so
    the check costs no extra decode. Stops early (leaving the dataset unchanged) when ``cancel()`` is true.
    An InputError if no usable sample remains."""
    names = list(dataset.names)
    n = len(names)
    every = max(1, n // 100)
    bad: dict[str, str] = {}
    reader = dataset.reader
    yield {"type": "check", "done": 0, "total": n}
    for i, name in enumerate(names):
        if cancel is not None and cancel():
            return
        try:
            reduce = dataset._reduce_for(name) if hasattr(dataset, "_reduce_for") else 1
            reader.get(name, reduce=reduce)
        except Exception as e:  # noqa: BLE001 - an InputError mostly; a decoder's own error is one bad file too
            bad[name] = _problem_line(reader, name, e)
            yield {"type": "skipped", "step": None, "name": name, "message": bad[name]}
        if (i + 1) % every == 0 or i + 1 == n:
            yield {"type": "check", "done": i + 1, "total": n}
    dataset.names = [m for m in names if m not in bad]
    if not hasattr(dataset, "problems"):
        dataset.problems = []
    dataset.problems.extend(bad.values())
    if not dataset.names:
        shown = "; ".join(list(bad.values())[:3]) + ("; ..." if len(bad) > 3 else "")
        raise InputError(getattr(dataset, "path", None),
                         f"no usable sample: {'all ' + str(n) + ' left out' if n else 'none to train on'}"
                         + (f" ({shown})" if shown else ""))


def check_samples(dataset) -> list[str]:
    """``iter_check`` without events: the lines of the samples left out."""
    return [ev["message"] for ev in iter_check(dataset) if ev["type"] == "skipped"]


def _problem_line(reader, name: str, e: Exception) -> str:
    """``<file>: <reason>`` for a sample that failed to read: an InputError names its file already; anything
    else is named by the sample."""
    if isinstance(e, InputError) and e.path:
        return str(e)
    where = f"{getattr(reader, 'path', '?')}: sample {name}"
    reason = e.reason if isinstance(e, InputError) else (str(e).strip().splitlines() or [type(e).__name__])[0]
    return f"{where}: {reason}"


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

    @property
    def full(self):
        """The wrapped reader: photos and masks at their full size (held-out scoring)."""
        return self._reader

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
        return (split_named(train, 0.0, cfg["run"]["seed"])[0] if is_named_dataset(train) else train), None
    if v["holdout"] != "photos":
        return holdout_split(train, v["fraction"], cfg["run"]["seed"])
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
        return holdout_split(dataset, fraction, seed)  # folder/hdf5 items are photos already
    train_src, val_src = dataset.source.split_photos(fraction, seed)
    n_val = max(len(val_src), int(round(len(dataset) * fraction)))
    return (SyntheticDataset(train_src, len(dataset), dataset.seed, dataset.cfg),
            SyntheticDataset(val_src, n_val, seed + 1, val_render or dataset.cfg))


def holdout_split(dataset: Dataset, fraction: float, seed: int) -> tuple[Dataset, Dataset]:
    """(training part, held-out part): by the dataset's own splits and name hashes for a folder/HDF5 dataset
    (``split_named``), by ``split_holdout`` for synthetic renders and in-memory items."""
    if is_named_dataset(dataset):
        return split_named(dataset, fraction, seed)
    return split_holdout(dataset, fraction, seed)


class _Names:
    """The part of a reader ``names_for_split`` looks at, over the usable names only."""

    def __init__(self, names, split_of):
        self.names, self.split_of = names, split_of


def split_named(dataset, fraction: float, seed: int) -> tuple[Dataset, Dataset]:
    """A folder/HDF5 dataset split as the dataset says (``names_for_split``): samples marked ``train``/``val``
    stay there, ``test`` ones are in neither part, and each unmarked one goes to val when the hash of its
    name is below ``fraction`` (so about, not exactly, that share; adding photos never moves existing ones).
    The held-out part reads a copy of the dataset with augmentation off (sharing its decoded-photo cache)."""
    from dbd_core.data.dataset import names_for_split

    usable = [n for n in dataset.names if dataset.reader.split_of(n) != "test"]
    view = _Names(usable, dataset.reader.split_of)
    train = names_for_split(view, "train", fraction, seed)
    val = names_for_split(view, "val", fraction, seed) if fraction > 0 else []
    where = getattr(dataset, "path", None)
    if not train:
        raise InputError(where, f"{len(usable)} usable train/val sample(s), none left to train on "
                                f"({len(val)} held out by val.fraction {fraction:g} or marked val)")
    if fraction > 0 and not val:
        raise InputError(where, f"{len(usable)} usable train/val sample(s): too few to hold out a validation part")
    index = {n: i for i, n in enumerate(dataset.names)}
    return Subset(dataset, [index[n] for n in train]), Subset(_without_augment(dataset), [index[n] for n in val])


def _without_augment(dataset):
    if getattr(dataset, "augment", False):
        import copy

        dataset = copy.copy(dataset)
        dataset.augment = False
    return dataset


def split_holdout(dataset: Dataset, fraction: float, seed: int) -> tuple[Dataset, Dataset]:
    """Deterministic hold-out split of synthetic renders or in-memory items (which have no names to hash):
    the same (dataset length, fraction, seed) always holds out the same items. At least one item on each side.
    The held-out part reads a copy of the dataset with its augmentation switched off (sharing its
    decoded-photo cache). Folder/HDF5 datasets go through ``split_named`` instead (``holdout_split``)."""
    n = len(dataset)
    if n < 2:
        raise InputError(getattr(dataset, "root", None), f"{n} item(s): too few to hold out a validation part")
    k = min(n - 1, max(1, int(round(n * fraction))))
    perm = np.random.default_rng([seed, n]).permutation(n)
    return Subset(dataset, sorted(perm[k:].tolist())), Subset(_without_augment(dataset), sorted(perm[:k].tolist()))
