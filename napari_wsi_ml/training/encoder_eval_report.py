"""The encoder evaluation's report: ``report.md`` in the run folder and its figures.

Figures (``plots/``): ``singular_values.png`` — the normalised singular value spectrum of the
embedding matrix with its RankMe; ``correlation.png`` — the absolute correlations between
embedding dimensions. The probe's confusion matrix and ROC curves (``probe_confusion.png``,
``probe_roc.png``) are written by :func:`~.slide_eval.write_slide_report`.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from napari_wsi_ml.errors import SaveError
from napari_wsi_ml.evaluation.embeddings import correlation_matrix, singular_value_distribution
from napari_wsi_ml.jobs.run_dir import write_text_atomic

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def _new_figure(size: tuple[float, float]) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=size, dpi=100)
    FigureCanvasAgg(figure)
    return figure


def _save(figure: Figure, path: Path) -> Path:
    """Write ``figure`` as PNG to a temporary file beside ``path``, then rename it."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".png")
    os.close(fd)
    try:
        figure.savefig(tmp, format="png")
        os.replace(tmp, path)
    except OSError as error:
        Path(tmp).unlink(missing_ok=True)
        raise SaveError(f"{path}: cannot write the figure ({error})") from error
    return path


def spectrum_figure(embeddings: np.ndarray, rankme: float, path: Path) -> Path:
    """Normalised singular values (log scale), largest first, with RankMe marked."""
    p = singular_value_distribution(embeddings)
    figure = _new_figure((5.5, 3.8))
    axes = figure.add_subplot(1, 1, 1)
    axes.semilogy(np.arange(1, len(p) + 1), np.clip(p, 1e-12, None), color="tab:blue")
    axes.axvline(rankme, color="tab:red", linestyle="--", label=f"RankMe {rankme:.1f}")
    axes.set_xlabel("singular value index")
    axes.set_ylabel("share of the singular values")
    axes.set_title(f"{embeddings.shape[0]} embeddings of dimension {embeddings.shape[1]}")
    axes.legend(loc="upper right")
    figure.tight_layout()
    return _save(figure, path)


def correlation_figure(embeddings: np.ndarray, path: Path) -> Path:
    """The matrix of absolute correlations between (live) embedding dimensions."""
    corr = np.abs(correlation_matrix(embeddings))
    figure = _new_figure((5.0, 4.4))
    axes = figure.add_subplot(1, 1, 1)
    image = axes.imshow(corr, cmap="magma", vmin=0, vmax=1, interpolation="nearest")
    figure.colorbar(image, ax=axes, label="|correlation|")
    axes.set_xlabel("live dimension")
    axes.set_ylabel("live dimension")
    axes.set_title("|correlation| of dimensions")
    figure.tight_layout()
    return _save(figure, path)


def _number(value: Any, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _auc(entry: dict[str, Any] | None) -> str:
    if entry is None:
        return "–"
    return f"{entry['auc']:.3f} [{entry['ci_low']:.3f}, {entry['ci_high']:.3f}]"


def report_markdown(summary: dict[str, Any]) -> str:
    """``report.md``: encoder, label-free metrics, probe results per class and per site."""
    encoder, emb, probe = summary["encoder"], summary["embedding"], summary["probe"]
    lines = [
        f"# Encoder evaluation: {encoder['backbone']}",
        "",
        f"Weights: {encoder['weights']} (SHA-256 of the state {encoder['weights_sha256'][:12]}…);"
        f" features: {encoder['num_features']}; patches: "
        + ", ".join(f"{k} {v}" for k, v in summary["patches"].items())
        + ".",
        "",
        "## Label-free embedding quality",
        "",
        "| embeddings | dimension | RankMe | RankMe / min(N, D) | mean abs. off-diagonal corr. "
        "| dead dimensions |",
        "|---:|---:|---:|---:|---:|---:|",
        f"| {emb['n']} | {emb['dim']} | {emb['rankme']:.1f} | {emb['rankme_fraction']:.3f} | "
        f"{_number(emb['mean_abs_offdiagonal_correlation'])} | {emb['dead_dimensions']} |",
        "",
        "![singular values](plots/singular_values.png) ![correlation](plots/correlation.png)",
        "",
        "## Linear probe",
        "",
    ]
    if probe is None:
        lines.append("Not fitted: the training patches hold fewer than two classes.")
        return "\n".join(lines) + "\n"
    lines += [
        f"Logistic regression on standardised features, C = {probe['c']:g}, scored on the "
        f"{probe['evaluated_split']} patches ({probe['n']}).",
        "",
        f"Accuracy {_number(probe['accuracy'])}, balanced accuracy "
        f"{_number(probe['balanced_accuracy'])}.",
        "",
        "| class | AUC [95 % CI, DeLong] | recall |",
        "|---|---|---:|",
        *(
            f"| {name} | {_auc(probe['auc'][name])} | {_number(probe['recall'][name])} |"
            for name in probe["classes"]
        ),
        "",
        "| site | patches | accuracy | balanced accuracy |",
        "|---|---:|---:|---:|",
        *(
            f"| {site} | {found['n']} | {_number(found['accuracy'])} | "
            f"{_number(found['balanced_accuracy'])} |"
            for site, found in probe["strata"].get("site", {}).items()
        ),
        "",
        "![confusion](plots/probe_confusion.png) ![ROC](plots/probe_roc.png)",
    ]
    return "\n".join(lines) + "\n"


def write_report(
    run_dir: Path, plots_dir: Path, summary: dict[str, Any], embeddings: np.ndarray
) -> list[Path]:
    """Write the figures and ``report.md``; returns their paths."""
    plots_dir.mkdir(parents=True, exist_ok=True)
    paths = [
        spectrum_figure(
            embeddings, summary["embedding"]["rankme"], plots_dir / "singular_values.png"
        ),
        correlation_figure(embeddings, plots_dir / "correlation.png"),
    ]
    report = Path(run_dir) / "report.md"
    write_text_atomic(report, report_markdown(summary))
    return [*paths, report]
