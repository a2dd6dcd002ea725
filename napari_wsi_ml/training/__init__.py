"""Training (pure core; needs torch and timm).

- :class:`~.patch_classifier.PatchClassifierTask`: the ``patch_classifier`` job type, with its
  config sections :class:`~.options.PatchDataOptions` (``data:``) and
  :class:`~.options.PatchClassifierOptions` (``patch_classifier:``).
- :mod:`.loops`: :func:`~.loops.train_step`, :func:`~.loops.predict`,
  :func:`~.loops.extract_features`, :class:`~.loops.EpochOrderSampler`,
  :func:`~.loops.class_weights`.
- :mod:`.data_setup` (slides → labelled patch sets per split, ``data.json``),
  :mod:`.trainer` (resumable optimisation state), :mod:`.heatmaps`, :mod:`.final_eval`.

Import the submodules explicitly; this package imports nothing heavy by itself.
"""

from __future__ import annotations
