"""Annotation-driven labels against the synthetic generator's truth; exclusions, holes, errors."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from shapely.geometry import Polygon

from napari_wsi_ml.annotations import Annotation, AnnotationSet, read_annotations
from napari_wsi_ml.data import annotation_patches, class_regions, plan_patch_read
from napari_wsi_ml.errors import ConfigError
from napari_wsi_ml.slide import open_slide

LABELS = {"tumor": "tumour"}


@pytest.fixture(scope="module")
def opened(pipeline_slide):
    with open_slide(pipeline_slide.path) as slide:
        yield slide


def boxes_of(patches) -> np.ndarray:
    b = patches.boxes
    return shapely.box(b[:, 0], b[:, 1], b[:, 2], b[:, 3])


@pytest.mark.parametrize("rule", ["centre", "coverage"])
def test_labels_equal_the_generator_truth(opened, pipeline_slide, rule) -> None:
    truth = pipeline_slide.truth
    assert truth.lesions and truth.label == "tumour"
    annotations = read_annotations(pipeline_slide.truth_xml)
    plan = plan_patch_read(opened, patch_size=32, target_mpp=0.5)
    patches = annotation_patches(
        opened, annotations, plan, label_map=LABELS, rule=rule, background_label="normal",
        stride=16, min_tissue=0.4,
    )  # fmt: skip
    assert patches.label_names == ("normal", "tumour")
    counts = patches.counts()
    assert counts["tumour"] > 50 and counts["normal"] > 500
    boxes = boxes_of(patches)
    tumour = truth.tumour
    inside = shapely.within(boxes, tumour)
    outside = ~shapely.intersects(boxes, tumour)
    tumour_index = patches.label_names.index("tumour")
    decided = inside | outside
    correct = np.where(inside, patches.labels == tumour_index, patches.labels != tumour_index)
    assert decided.sum() > 0.8 * len(patches)
    assert correct[decided].mean() >= 0.99
    # every patch labelled tumour overlaps the true tumour; normal ones hold tissue
    assert shapely.intersects(boxes[patches.labels == tumour_index], tumour).all()
    normal = boxes[patches.labels == 0]
    tissue_share = shapely.area(shapely.intersection(normal, truth.tissue)) / (64 * 64)
    assert np.median(tissue_share) > 0.9


def test_coverage_rule_threshold_is_exact(opened, pipeline_slide) -> None:
    annotations = read_annotations(pipeline_slide.truth_xml)
    plan = plan_patch_read(opened, patch_size=32, target_mpp=0.5)
    patches = annotation_patches(
        opened, annotations, plan, label_map=LABELS, rule="coverage", min_coverage=0.7, stride=16
    )
    assert patches.label_names == ("tumour",) and len(patches) > 50
    covered = shapely.area(shapely.intersection(boxes_of(patches), pipeline_slide.truth.tumour))
    assert (covered / (64 * 64) >= 0.7 - 0.02).all()  # truth vs its ASAP copy: rounded vertices


def test_drop_mixed_keeps_only_single_class_patches(opened, pipeline_slide) -> None:
    annotations = read_annotations(pipeline_slide.truth_xml)
    plan = plan_patch_read(opened, patch_size=32, target_mpp=0.5)
    common = {"label_map": LABELS, "background_label": "normal", "stride": 16}
    kept = annotation_patches(opened, annotations, plan, **common)
    pure = annotation_patches(opened, annotations, plan, drop_mixed=True, **common)
    assert 0 < len(pure) < len(kept)
    tumour = class_regions(annotations, LABELS).regions["tumour"]
    normal = opened.tissue_polygons().difference(tumour)
    boxes = boxes_of(pure)
    share_tumour = shapely.area(shapely.intersection(boxes, tumour)) / (64 * 64)
    share_normal = shapely.area(shapely.intersection(boxes, normal)) / (64 * 64)
    assert not ((share_tumour > 1e-6) & (share_normal > 1e-6)).any()
    mixed = shapely.area(shapely.intersection(boxes_of(kept), normal)) > 1e-6
    mixed &= shapely.area(shapely.intersection(boxes_of(kept), tumour)) > 1e-6
    assert mixed.sum() == len(kept) - len(pure) > 10


def square(x0: float, y0: float, side: float) -> np.ndarray:
    return np.array([[x0, y0], [x0 + side, y0], [x0 + side, y0 + side], [x0, y0 + side]])


def test_exclusion_groups_holes_and_nesting(opened) -> None:
    tumour = Annotation(
        "t", "Polygon", square(256, 256, 1536), group="tumor", holes=[square(512, 512, 256)]
    )
    annotations = AnnotationSet(
        [
            tumour,
            Annotation("x", "Polygon", square(1280, 256, 256), group="Exclusion"),
            Annotation("c", "Polygon", square(1280, 1280, 256), group="_2"),
            Annotation("n", "Polygon", square(768, 1280, 256), group="necrosis"),
        ]
    )
    plan = plan_patch_read(opened, patch_size=32, target_mpp=0.5)
    whole = shapely.box(0, 0, 3072, 2048)
    patches = annotation_patches(
        opened,
        annotations,
        plan,
        label_map={"tumor": "tumour", "necrosis": "necrosis"},
        background_label="normal",
        tissue=whole,
        stride=16,
    )
    names = patches.label_names
    assert names == ("normal", "tumour", "necrosis")
    centres = patches.centres
    label_at = {tuple(c): names[i] for c, i in zip(centres.tolist(), patches.labels, strict=True)}

    def labels_in(x0: float, y0: float, side: float) -> set[str]:
        return {
            name for (x, y), name in label_at.items() if x0 < x < x0 + side and y0 < y < y0 + side
        }

    assert labels_in(512, 512, 256) == {"normal"}  # the hole is not tumour
    assert labels_in(1280, 256, 256) == set()  # excluded: no patch at all
    assert labels_in(1280, 1280, 256) == set()  # "_2" (CAMELYON) excluded too
    assert labels_in(768, 1280, 256) == {"necrosis"}  # the smaller, nested polygon wins
    assert labels_in(300, 1000, 200) == {"tumour"}
    assert labels_in(2000, 1000, 500) == {"normal"}
    regions = class_regions(annotations, {"tumor": "tumour", "necrosis": "necrosis"}).regions
    assert regions["tumour"].area == pytest.approx(1536**2 - 4 * 256**2)
    assert regions["necrosis"].area == pytest.approx(256**2)
    assert Polygon(square(512, 512, 256)).intersection(regions["tumour"]).area == 0


def test_unknown_classes_are_listed(opened) -> None:
    annotations = AnnotationSet(
        [
            Annotation("a", "Polygon", square(0, 0, 500), group="tumor"),
            Annotation("b", "Polygon", square(600, 0, 500), group="stroma"),
            Annotation("c", "Polygon", square(0, 600, 500), group="stroma"),
            Annotation("d", "Polygon", square(600, 600, 500), group="lymph"),
            Annotation("e", "Dot", [[10, 10]], group="mitosis"),  # points are not areas
        ],
        slide="s1",
    )
    plan = plan_patch_read(opened, patch_size=32, target_mpp=0.5)
    with pytest.raises(ConfigError) as caught:
        annotation_patches(opened, annotations, plan, label_map=LABELS)
    message = str(caught.value)
    assert "'stroma' (2 annotations)" in message and "'lymph' (1 annotations)" in message
    assert "mitosis" not in message and "'s1'" in message
    ignored = annotation_patches(opened, annotations, plan, label_map=LABELS, on_unknown="ignore")
    assert ignored.counts() == {"tumour": 64}  # centres 32, 96, …, 480 of the 500-px square
    assert "stroma" in ignored.notes[0]
    with pytest.raises(ConfigError, match="rule"):
        annotation_patches(opened, annotations, plan, label_map=LABELS, rule="middle")
