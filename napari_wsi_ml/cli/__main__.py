"""``python -m napari_wsi_ml.cli``."""

import sys

from napari_wsi_ml.cli import main

sys.exit(main())
