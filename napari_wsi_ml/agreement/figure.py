"""The report figure: pairwise κ and Dice matrices as annotated heatmaps (matplotlib Agg)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from napari_wsi_ml.errors import SaveError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from napari_wsi_ml.agreement.report import AgreementReport


def draw_matrices(figure: Figure, report: AgreementReport, scope: str = "overall") -> None:
    """Draw the κ and Dice heatmaps of ``scope`` (``"overall"`` or a class) into ``figure``."""
    block = report.metrics["overall"] if scope == "overall" else report.metrics["per_class"][scope]
    figure.clear()
    axes = figure.subplots(1, 2)
    for ax, key, title in ((axes[0], "cohen_kappa", "Cohen's κ"), (axes[1], "dice", "Dice")):
        m = np.array([[np.nan if v is None else v for v in row] for row in block[key]["matrix"]])
        image = ax.imshow(m, vmin=0 if key == "dice" else -1, vmax=1, cmap="viridis")
        names = block[key]["raters"]
        ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
        ax.set_yticks(range(len(names)), names)
        for (r, c), v in np.ndenumerate(m):
            text = "–" if np.isnan(v) else f"{v:.2f}"
            ax.text(c, r, text, ha="center", va="center", color="w" if v < 0.6 else "k")
        ax.set_title(f"{title} ({scope})")
        figure.colorbar(image, ax=ax, fraction=0.046)
    figure.tight_layout()


def save_figure(report: AgreementReport, path: str | Path, scope: str = "overall") -> Path:
    """Render the heatmaps to a PNG file (written atomically)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    path = Path(path)
    figure = Figure(figsize=(10, 4.5), dpi=100)
    FigureCanvasAgg(figure)
    draw_matrices(figure, report, scope)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".png")
        os.close(fd)
        figure.savefig(tmp, format="png")
        os.replace(tmp, path)
    except OSError as error:
        raise SaveError(f"{path}: cannot write the figure ({error})") from error
    return path
