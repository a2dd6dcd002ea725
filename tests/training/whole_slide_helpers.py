"""A hand-set whole-slide ResNet whose class activation map is a smoothed "purple" density.

The tumour channel of its CAM peaks where hematoxylin-purple pixels (blue well above red)
are densest — a synthetic slide's tumour — which gives the georeference tests a model with a
known answer, on the real ResNet-18 geometry (strides, paddings, pooling, shortcuts).
"""

from __future__ import annotations

import torch
from torch import nn

from napari_wsi_ml.models.whole_slide import WholeSlideNet, create_whole_slide_net

PURPLE_THRESHOLD = 20.0
"""Blue minus red (8-bit units) above which a pixel counts as purple."""


@torch.no_grad()
def purple_detector(num_classes: int = 2) -> WholeSlideNet:
    """ResNet-18 with channel 0 = box-filtered ``relu(B − R − threshold)`` all the way down.

    Every convolution averages channel 0 into channel 0 (other weights zero), batch norms are
    identities (eval mode) except the stem's, which adds the threshold; shortcuts copy channel
    0. The head scores class ``num_classes − 1`` by channel 0 and the others 0.
    """
    model = create_whole_slide_net("resnet18", num_classes=num_classes)
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            module.weight.zero_()
            kh, kw = module.kernel_size
            if module.in_channels != 3:
                module.weight[0, 0] = 1.0 / (kh * kw)
        elif isinstance(module, nn.BatchNorm2d):
            module.running_mean.zero_()
            module.running_var.fill_(1.0 - module.eps)
            module.weight.fill_(1.0)
            module.bias.zero_()
    stem = model.backbone.conv1
    kh, kw = stem.kernel_size
    std, mean = model.std.flatten(), model.mean.flatten()
    # On normalised input z: B − R = 255·(z_B·std_B − z_R·std_R) + 255·(mean_B − mean_R).
    stem.weight[0, 2] = 255.0 * std[2] / (kh * kw)
    stem.weight[0, 0] = -255.0 * std[0] / (kh * kw)
    model.backbone.bn1.bias[0] = 255.0 * float(mean[2] - mean[0]) - PURPLE_THRESHOLD
    model.head.weight.zero_()
    model.head.bias.zero_()
    model.head.weight[num_classes - 1, 0] = 1.0
    return model.eval()
