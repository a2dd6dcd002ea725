"""Inter-rater agreement, disagreement review and consensus labels (pure, no Qt).

Public API:
    compute_agreement, analyse, Options: every measure for one slide's raters.
    prepare_raters, parse_mapping, read_rater_files: validated input.
    compare_candidate: any annotation set against the raters and their consensus.
    read_cohort_csv, pool_reports: cohort mode.
    AgreementReport: JSON / CSV / PNG.
    majority_vote, consensus_annotations, staple, match_lesions, disagreement_map,
    disagreement_regions: the building blocks.
"""

from __future__ import annotations

from napari_wsi_ml.agreement.analysis import Options, analyse, compute_agreement
from napari_wsi_ml.agreement.cohort import pool_reports, read_cohort_csv
from napari_wsi_ml.agreement.compare import compare_candidate
from napari_wsi_ml.agreement.consensus import consensus_annotations, majority_vote
from napari_wsi_ml.agreement.disagreement import disagreement_map, disagreement_regions
from napari_wsi_ml.agreement.inputs import parse_mapping, prepare_raters, read_rater_files
from napari_wsi_ml.agreement.lesions import match_lesions
from napari_wsi_ml.agreement.report import AgreementReport
from napari_wsi_ml.agreement.staple import staple

__all__ = [
    "AgreementReport",
    "Options",
    "analyse",
    "compare_candidate",
    "compute_agreement",
    "consensus_annotations",
    "disagreement_map",
    "disagreement_regions",
    "majority_vote",
    "match_lesions",
    "parse_mapping",
    "pool_reports",
    "prepare_raters",
    "read_cohort_csv",
    "read_rater_files",
    "staple",
]
