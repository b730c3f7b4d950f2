"""dbd_core: the defocus-blur-detection engine behind dbd-studio.

Convention everywhere: a blur map is float32 in [0, 1], same height and width as the photo,
with 1 = blurred (out of focus). Every file format states its polarity explicitly.
This package never imports Qt.
"""

__version__ = "0.1.0"

from dbd_core.errors import DBDError, InputError  # noqa: E402,F401
