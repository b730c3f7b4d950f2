"""Qt-free annotation pieces: the editable mask with bounded undo history, stroke rasterisation,
map thresholding and the on-disk project store. The studio (app/) drives these; tests need no Qt."""

from dbd_core.annotate.mask_model import MaskModel
from dbd_core.annotate.project import ProjectStore, PhotoEntry, STATUSES
from dbd_core.annotate.threshold import combine_maps, otsu_threshold, threshold_map

__all__ = ["MaskModel", "ProjectStore", "PhotoEntry", "STATUSES", "combine_maps", "otsu_threshold", "threshold_map"]
