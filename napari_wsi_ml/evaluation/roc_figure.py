"""ROC curves with their confidence bands drawn with matplotlib (no Qt: a widget or a script
hands in the figure)."""

from __future__ import annotations

from collections.abc import Mapping

from matplotlib.figure import Figure

from napari_wsi_ml.evaluation.roc import RocBand

COLORS = ("#D62728", "#1F77B4", "#2CA02C", "#9467BD", "#FF7F0E", "#8C564B")


def draw_roc(figure: Figure, curves: Mapping[str, RocBand], *, title: str = "") -> None:
    """One axes: each class's ROC curve, its pointwise band (shaded) and its AUC with the
    DeLong interval in the legend; a note when there is nothing to draw."""
    figure.clear()
    axes = figure.add_subplot(1, 1, 1)
    axes.plot([0, 1], [0, 1], color="0.6", linewidth=0.8, linestyle=":")
    for k, (name, roc) in enumerate(curves.items()):
        color = COLORS[k % len(COLORS)]
        axes.fill_between(roc.band_fpr, roc.band_low, roc.band_high, color=color, alpha=0.2,
                          linewidth=0)  # fmt: skip
        auc = roc.auc
        axes.plot(
            roc.fpr,
            roc.tpr,
            color=color,
            linewidth=1.5,
            label=f"{name}: AUC {auc.auc:.3f} [{auc.ci_low:.3f}, {auc.ci_high:.3f}] "
            f"(n = {auc.n_positive} + {auc.n_negative})",
        )
    if curves:
        level = next(iter(curves.values())).level
        axes.legend(loc="lower right", fontsize=7, title=f"{level:.0%} CI (DeLong); band: "
                    "pointwise", title_fontsize=7)  # fmt: skip
    else:
        axes.text(0.5, 0.5, "No slide with a known label of both kinds:\nno ROC curve.",
                  ha="center", va="center", fontsize=8, transform=axes.transAxes)  # fmt: skip
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1.01)
    axes.set_aspect("equal")
    axes.set_xlabel("1 − specificity", fontsize=8)
    axes.set_ylabel("sensitivity", fontsize=8)
    axes.tick_params(labelsize=7)
    if title:
        axes.set_title(title, fontsize=9)
    figure.tight_layout()
