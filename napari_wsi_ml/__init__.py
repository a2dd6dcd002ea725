"""napari-wsi-ml: whole-slide images, multi-rater annotations, agreement and model review.

The pure core (``slide``, ``annotations``, ``agreement``, ``synthetic``) never imports Qt or
napari; the napari glue lives in ``viewer`` and the dock widgets in ``widgets``.
"""

from __future__ import annotations

__version__ = "0.1.0"
