"""An editable binary mask with a bounded undo/redo history that stores only changed tiles.

The mask is uint8 HxW in {0, 1}, 1 = blurred. Edits happen inside a *block* (one brush stroke,
one fill, one threshold seed); a block is one undo step. Before an edit touches a tile for the
first time in a block, that tile's old pixels are saved; when the block ends, only tiles whose
pixels really changed are kept as (old, new) pairs. A tile of one value is kept as that value
broadcast to the tile (no bytes): a flood fill or a threshold jump across a 48 MP photo changes
hundreds of such tiles, and copying them cost ~100 MB and ~60 ms per step. Memory therefore grows
with the tiles an edit leaves or finds holding both values (its edges), not with the photo size, and the
history is capped both in steps and in bytes.

Every edit returns the changed rectangle ``(y0, x0, y1, x1)`` (exclusive ends) so a viewer can
redraw only that part.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from typing import Callable

import cv2
import numpy as np

Rect = tuple[int, int, int, int]  # y0, x0, y1, x1 (exclusive)
TILE = 256


@dataclass
class _Step:
    kind: str  # "hand" (brush, eraser, fill, polygon) or "seed" (threshold)
    tiles: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)  # (ty,tx) -> (old,new)

    @cached_property
    def nbytes(self) -> int:
        # Read only once the step is complete (pushed); every push sums all steps, and a 48 MP fill has ~750 tiles.
        return sum(_stored_bytes(o) + _stored_bytes(n) for o, n in self.tiles.values())


@lru_cache(maxsize=64)
def _constant(value: int, shape: tuple[int, int]) -> np.ndarray:
    """A read-only tile of one value, shared by every step that keeps one (np.broadcast_to costs ~13 us a call,
    ~10 ms over a 48 MP photo's tiles)."""
    return np.broadcast_to(np.uint8(value), shape)


def _keep(tile: np.ndarray) -> np.ndarray:
    """What the history keeps of ``tile``: its value broadcast if it has one value, else a copy."""
    lo, hi = cv2.minMaxLoc(tile)[:2]
    return _constant(int(lo), tile.shape) if lo == hi else tile.copy()


def _uniform(kept: np.ndarray) -> bool:
    return kept.strides == (0, 0)


def _stored_bytes(kept: np.ndarray) -> int:
    return 0 if _uniform(kept) else kept.nbytes


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal kept tiles; a uniform tile never equals one that is not (``_keep`` made both)."""
    if _uniform(a) or _uniform(b):
        return _uniform(a) and _uniform(b) and a[0, 0] == b[0, 0]
    return np.array_equal(a, b)


def union(a: Rect | None, b: Rect | None) -> Rect | None:
    if a is None:
        return b
    if b is None:
        return a
    return (min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]))


class MaskModel:
    def __init__(self, shape: tuple[int, int], mask: np.ndarray | None = None, hand_edited: bool = False,
                 max_steps: int = 200, max_bytes: int = 512 * 2**20):
        self.shape = (int(shape[0]), int(shape[1]))
        self.mask = np.zeros(self.shape, np.uint8) if mask is None else self._check(mask, copy=True)
        self.max_steps = max_steps
        self.max_bytes = max_bytes
        self._undo: deque[_Step] = deque()
        self._redo: list[_Step] = []
        self._block: _Step | None = None
        self._block_saved: dict[tuple[int, int], np.ndarray] = {}
        # Tiles whose kept new pixels an edit of the block already knows (a fill's wholly filled tiles), so end()
        # need not read them again; any later edit of the block touching one forgets it.
        self._block_known: dict[tuple[int, int], np.ndarray] = {}
        self._block_rect: Rect | None = None
        self._base_hand = bool(hand_edited)  # a mask loaded from disk that was edited in an earlier session
        self.listeners: list[Callable[[Rect | None], None]] = []  # called after every change
        self.revision = 0  # counts changes: a caller that knows the mask at one revision knows it is unchanged

    def _check(self, mask: np.ndarray, copy: bool = False) -> np.ndarray:
        """``mask`` as uint8 {0, 1} (nonzero = 1). A {0, 1} uint8 mask comes back as it is unless ``copy``:
        a threshold seed is one already, and a fresh 12 MP array costs 4 ms in page faults alone on
        every slider step."""
        mask = np.asarray(mask)
        if mask.shape != self.shape:
            raise ValueError(f"mask shape {mask.shape} != {self.shape}")
        if mask.dtype == np.uint8 and not copy and (mask.size == 0 or int(mask.max()) <= 1):
            return mask
        # A bool array viewed as uint8 is already {0, 1}: one pass instead of compare + astype.
        return np.not_equal(mask, 0).view(np.uint8)

    # ---------------------------------------------------------------- state
    @property
    def hand_edited(self) -> bool:
        """True if the current mask holds hand edits made since the last threshold seed."""
        for step in reversed(self._undo):
            if step.kind == "hand":
                return True
            if step.kind == "seed":
                return False
        return self._base_hand

    def forget_history(self) -> None:
        """Drop every undo and redo step: what the mask is now becomes where undo stops (a photo's first
        automatic seed is its starting point, not an edit to undo)."""
        self._undo.clear()
        self._redo.clear()

    def can_undo(self) -> bool:
        return bool(self._undo)

    def can_redo(self) -> bool:
        return bool(self._redo)

    def history_bytes(self) -> int:
        return sum(s.nbytes for s in self._undo) + sum(s.nbytes for s in self._redo)

    def _notify(self, rect: Rect | None) -> None:
        self.revision += 1
        for cb in list(self.listeners):
            cb(rect)

    # ---------------------------------------------------------------- blocks
    def begin(self, kind: str = "hand") -> None:
        if self._block is not None:
            self.end()
        self._block = _Step(kind)
        self._block_saved, self._block_known = {}, {}
        self._block_rect = None

    def end(self) -> Rect | None:
        """Close the current block; returns its changed rectangle (None if nothing changed)."""
        step, saved, known = self._block, self._block_saved, self._block_known
        self._block, self._block_saved, self._block_known = None, {}, {}
        if step is None:
            return None
        for key, old in saved.items():
            new = known[key] if key in known else _keep(self.mask[self._tile_slice(key)])
            if not _same(old, new):
                step.tiles[key] = (old, new)
        if not step.tiles:
            return None
        self._push(step)
        return self._block_rect

    def _push(self, step: _Step) -> None:
        self._undo.append(step)
        self._redo.clear()
        total = self.history_bytes()
        while self._undo and (len(self._undo) > self.max_steps or (total > self.max_bytes and len(self._undo) > 1)):
            total -= self._undo.popleft().nbytes

    def _tile_grid(self) -> tuple[int, int]:
        return -(-self.shape[0] // TILE), -(-self.shape[1] // TILE)

    def _changed_tiles(self, new: np.ndarray) -> np.ndarray:
        """ny x nx bool: which tiles of ``new`` differ from the mask. One vectorised pass: a loop of
        per-tile comparisons cost 11 ms at 12 MP, this 4-5 ms."""
        diff = np.not_equal(self.mask, new)
        rows, cols = np.arange(0, self.shape[0], TILE), np.arange(0, self.shape[1], TILE)
        return np.logical_or.reduceat(np.logical_or.reduceat(diff, cols, axis=1), rows, axis=0)

    def _tile_flags(self, keys) -> np.ndarray:
        flags = np.zeros(self._tile_grid(), bool)
        for ty, tx in keys:
            flags[ty, tx] = True
        return flags

    def _tile_slice(self, key: tuple[int, int]) -> tuple[slice, slice]:
        ty, tx = key
        return slice(ty * TILE, min((ty + 1) * TILE, self.shape[0])), slice(tx * TILE, min((tx + 1) * TILE, self.shape[1]))

    def _save(self, rect: Rect) -> None:
        """Remember the old pixels of every tile ``rect`` touches that this block has not saved yet."""
        if self._block is None:
            raise RuntimeError("edit outside a begin()/end() block")
        y0, x0, y1, x1 = rect
        for ty in range(y0 // TILE, (y1 - 1) // TILE + 1):
            for tx in range(x0 // TILE, (x1 - 1) // TILE + 1):
                self._block_known.pop((ty, tx), None)
                if (ty, tx) not in self._block_saved:
                    self._block_saved[(ty, tx)] = _keep(self.mask[self._tile_slice((ty, tx))])
        self._block_rect = union(self._block_rect, rect)

    def _clip(self, y0, x0, y1, x1) -> Rect | None:
        y0, x0 = max(0, int(y0)), max(0, int(x0))
        y1, x1 = min(self.shape[0], int(y1)), min(self.shape[1], int(x1))
        return None if y0 >= y1 or x0 >= x1 else (y0, x0, y1, x1)

    # ---------------------------------------------------------------- edits
    def paint_segment(self, p0: tuple[float, float], p1: tuple[float, float], radius: float, value: int) -> Rect | None:
        """A round brush of ``radius`` pixels dragged from p0 to p1 ((x, y) image coordinates).
        value 1 paints blurred (brush), 0 paints sharp (eraser)."""
        r = max(0.5, float(radius))
        (xa, ya), (xb, yb) = p0, p1
        pad = int(np.ceil(r)) + 1
        rect = self._clip(min(ya, yb) - pad, min(xa, xb) - pad, max(ya, yb) + pad + 1, max(xa, xb) + pad + 1)
        if rect is None:
            return None
        self._save(rect)
        y0, x0, y1, x1 = rect
        sub = self.mask[y0:y1, x0:x1]  # a view: cv2 draws into the mask in place
        # cv2 works in fixed point: shift=2 keeps quarter-pixel precision of the mouse positions.
        s = 4
        a = (int(round((xa - x0) * s)), int(round((ya - y0) * s)))
        b = (int(round((xb - x0) * s)), int(round((yb - y0) * s)))
        if r < 1.0:
            cv2.line(sub, a, b, int(value), 1, cv2.LINE_8, 2)
        else:
            cv2.circle(sub, a, int(round(r * s)), int(value), -1, cv2.LINE_8, 2)
            cv2.circle(sub, b, int(round(r * s)), int(value), -1, cv2.LINE_8, 2)
            cv2.line(sub, a, b, int(value), int(round(2 * r)), cv2.LINE_8, 2)
        self._notify(rect)
        return rect

    def fill_polygon(self, points: list[tuple[float, float]], value: int) -> Rect | None:
        """Fill the polygon (or lasso path) through (x, y) points."""
        if len(points) < 3:
            return None
        pts = np.asarray(points, dtype=np.float64)
        rect = self._clip(pts[:, 1].min() - 1, pts[:, 0].min() - 1, pts[:, 1].max() + 2, pts[:, 0].max() + 2)
        if rect is None:
            return None
        self._save(rect)
        y0, x0, y1, x1 = rect
        local = np.round((pts - [x0, y0]) * 4).astype(np.int32)
        cv2.fillPoly(self.mask[y0:y1, x0:x1], [local], int(value), cv2.LINE_8, 2)
        self._notify(rect)
        return rect

    def flood_fill(self, x: float, y: float, value: int) -> Rect | None:
        """Set the 4-connected region of equal pixels around (x, y) to ``value``."""
        xi, yi, value = int(x), int(y), 1 if value else 0
        if not (0 <= yi < self.shape[0] and 0 <= xi < self.shape[1]) or self.mask[yi, xi] == value:
            return None
        if self._block is None:
            raise RuntimeError("edit outside a begin()/end() block")
        # The mask is {0, 1}: cv2's plain fill marks the region 2 in place, so the old pixels can still be told
        # from the new ones. It takes ~40 ms at 48 MP; the mask-only fill into a region buffer took ~100 ms
        # plus a 48 MB buffer to fault in (the binding's own mask output here is touched only at its border).
        _, _, _, (rx, ry, rw, rh) = cv2.floodFill(self.mask, None, (xi, yi), 2, 0, 0, 4)
        rect = (ry, rx, ry + rh, rx + rw)
        # cv2.threshold(src, 1, 1, ...) keeps 0 and 1; TRUNC maps 2 to 1, TOZERO_INV maps 2 to 0.
        to_old, to_new = (cv2.THRESH_TOZERO_INV, cv2.THRESH_TRUNC) if value else (cv2.THRESH_TRUNC, cv2.THRESH_TOZERO_INV)
        for ty in range(ry // TILE, (ry + rh - 1) // TILE + 1):
            for tx in range(rx // TILE, (rx + rw - 1) // TILE + 1):
                key = (ty, tx)
                tile = self.mask[self._tile_slice(key)]
                lo, hi = cv2.minMaxLoc(tile)[:2]
                if hi < 2:  # untouched by this fill
                    continue
                if key not in self._block_saved:
                    self._block_saved[key] = (_constant(1 - value, tile.shape) if lo == 2
                                              else _keep(cv2.threshold(tile, 1, 1, to_old)[1]))
                if lo == 2:  # wholly filled: its new pixels are one value
                    self._block_known[key] = _constant(value, tile.shape)
                else:
                    self._block_known.pop(key, None)
        self._block_rect = union(self._block_rect, rect)
        rows = self.mask[ry:ry + rh]  # whole rows: contiguous, and a 2 exists only inside the region
        cv2.threshold(rows, 1, 1, to_new, dst=rows)
        self._notify(rect)
        return rect

    def set_mask(self, new: np.ndarray, kind: str = "seed", merge: bool = True,
                 tiles: np.ndarray | None = None) -> Rect | None:
        """Replace the whole mask (a threshold seed) as one undo step. With ``merge``, consecutive
        seeds (a slider being dragged) collapse into one step instead of flooding the history.
        ``tiles``: the caller's guarantee that ``new`` differs from the mask only in these tiles (a bool
        grid of TILE x TILE tiles), so the other tiles are not compared (a live threshold step at 48 MP:
        the full comparison alone costs 25 ms). Listeners hear of the tiles that really changed, a rectangle
        per run of them, not of one rectangle around all (a boundary across the photo would redraw it all)."""
        new = self._check(new)
        top = self._undo[-1] if self._undo else None
        merging = merge and kind == "seed" and top is not None and top.kind == "seed" and not self._redo
        prev_tiles = self._undo.pop().tiles if merging else {}
        self.begin(kind)
        if tiles is None:
            differ = self._changed_tiles(new)
        else:
            if tiles.shape != self._tile_grid():
                raise ValueError(f"tile grid {tiles.shape} != {self._tile_grid()}")
            differ = np.zeros(self._tile_grid(), bool)
            for ty, tx in zip(*np.nonzero(tiles)):
                sl = self._tile_slice((int(ty), int(tx)))
                differ[ty, tx] = not np.array_equal(self.mask[sl], new[sl])
        changed: Rect | None = None
        for ty, tx in zip(*np.nonzero(differ | self._tile_flags(prev_tiles))):
            key = (int(ty), int(tx))
            sl = self._tile_slice(key)
            self._block_saved[key] = prev_tiles[key][0] if key in prev_tiles else _keep(self.mask[sl])
            if differ[ty, tx]:
                self.mask[sl] = new[sl]
            changed = union(changed, (sl[0].start, sl[1].start, sl[0].stop, sl[1].stop))
        self._block_rect = changed
        self.end()
        if differ.any():
            self._notify_tiles(differ)
        return changed

    def _notify_tiles(self, flags: np.ndarray) -> None:
        """One notification per horizontal run of flagged tiles (a few dozen at most; more are merged)."""
        runs = []
        for ty in np.flatnonzero(flags.any(axis=1)):
            row = np.concatenate(([False], flags[ty], [False]))
            edges = np.flatnonzero(row[1:] != row[:-1])
            for a, b in zip(edges[::2], edges[1::2]):
                y0, x0 = int(ty) * TILE, int(a) * TILE
                runs.append((y0, x0, min(y0 + TILE, self.shape[0]), min(int(b) * TILE, self.shape[1])))
        if len(runs) > 64:
            rect = None
            for r in runs:
                rect = union(rect, r)
            runs = [rect]
        self.revision += 1
        for r in runs:
            for cb in list(self.listeners):
                cb(r)

    # ---------------------------------------------------------------- history
    def _apply(self, step: _Step, which: int) -> Rect | None:
        rect = None
        for key, pair in step.tiles.items():
            sl = self._tile_slice(key)
            self.mask[sl] = pair[which]
            rect = union(rect, (sl[0].start, sl[1].start, sl[0].stop, sl[1].stop))
        self._notify(rect)
        return rect

    def undo(self) -> Rect | None:
        if self._block is not None:
            self.end()
        if not self._undo:
            return None
        step = self._undo.pop()
        self._redo.append(step)
        return self._apply(step, 0)

    def redo(self) -> Rect | None:
        if self._block is not None:
            self.end()
        if not self._redo:
            return None
        step = self._redo.pop()
        self._undo.append(step)
        return self._apply(step, 1)
