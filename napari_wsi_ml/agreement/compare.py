"""Any annotation set (e.g. a model's) against the raters and their consensus.

The candidate's Dice, IoU, Cohen's κ and lesion F1 against each rater and against the
majority-vote consensus are reported beside the inter-rater range (min / median / max of the
pairwise values between raters): the ceiling a model can be expected to reach.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from napari_wsi_ml.agreement.analysis import Options, analyse
from napari_wsi_ml.agreement.inputs import RaterInput, RaterRegions, prepare_raters
from napari_wsi_ml.agreement.report import AgreementReport
from napari_wsi_ml.agreement.stats import pair_key
from napari_wsi_ml.annotations.model import AnnotationSet
from napari_wsi_ml.errors import AgreementInputError

CONSENSUS = "consensus"
METRICS = ("dice", "iou", "cohen_kappa")


def _range(values: list[float]) -> dict[str, float | None]:
    finite = [v for v in values if v is not None and np.isfinite(v)]
    if not finite:
        return {"min": None, "median": None, "max": None}
    return {"min": min(finite), "median": float(np.median(finite)), "max": max(finite)}


def compare_candidate(
    data: RaterInput,
    report: AgreementReport,
    candidate: AnnotationSet,
    *,
    mapping: dict[str, str] | None = None,
    options: Options | None = None,
    mpp: tuple[float, float] | None = None,
    extent: tuple[int, int] | None = None,
) -> dict[str, object]:
    """Metrics of ``candidate`` vs each rater and the consensus, with the inter-rater range.

    Also stored in ``report.comparison``.
    """
    name = candidate.rater or "candidate"
    if name in data.names or name == CONSENSUS:
        raise AgreementInputError(f"the compared set's name {name!r} is already a rater's name")
    cand = prepare_raters(
        [candidate, AnnotationSet(rater="_", annotations=[])],
        mapping=mapping,
        region=data.region,
        allow_empty=True,
    ).raters[0]
    consensus = RaterRegions(CONSENSUS, dict(report.consensus_regions))
    classes = sorted(set(data.classes) | set(cand.regions))
    extended = RaterInput(
        [*data.raters, consensus, RaterRegions(name, cand.regions)],
        classes,
        [],
        data.region,
        data.slide,
    )
    options = replace(options or Options(), n_boot=min((options or Options()).n_boot, 200))
    ext = analyse(extended, options, mpp=mpp, extent=extent)
    rows = []
    scopes = [("overall", ext.metrics["overall"], report.metrics["overall"])]
    scopes += [
        (c, ext.metrics["per_class"][c], report.metrics["per_class"].get(c)) for c in data.classes
    ]
    for scope, block, raters_block in scopes:
        for metric in METRICS:
            inter = (
                []
                if raters_block is None
                else [e["value"] for e in raters_block[metric]["pairs"].values()]
            )
            for ref in [*data.names, CONSENSUS]:
                est = block[metric]["pairs"][pair_key(ref, name)]
                rows.append(
                    {
                        "scope": scope,
                        "metric": metric,
                        "reference": ref,
                        "value": est["value"],
                        "ci_low": est["ci"][0],
                        "ci_high": est["ci"][1],
                        **{f"raters_{k}": v for k, v in _range(inter).items()},
                    }
                )
    for cls in data.classes:
        inter = [s["f1"] for s in report.lesions[cls].values()]
        for ref in [*data.names, CONSENSUS]:
            f1 = ext.lesions[cls][pair_key(ref, name)]["f1"]
            rows.append(
                {
                    "scope": cls,
                    "metric": "lesion_f1",
                    "reference": ref,
                    "value": f1,
                    "ci_low": None,
                    "ci_high": None,
                    **{f"raters_{k}": v for k, v in _range(inter).items()},
                }
            )
    comparison = {"candidate": name, "rows": rows}
    report.comparison = comparison
    return comparison
