"""AlexNet (Krizhevsky et al. 2012), CIFAR variant, in spatial and Spec form.

The ImageNet net's 11 x 11 stride-4 stem and overlapping 3 x 3 pooling do not fit 32 x 32
inputs; this variant keeps its five convolutions and three poolings with CIFAR-size widths:

    conv 64 (k5) - pool - conv 192 (k5) - pool - conv 384 (k3) - conv 256 (k3) - conv 256 (k3)
    - pool - Dense(fc_width) - act - Dense(fc_width) - act - Dense(classes)

with "same" convolutions and 2 x 2 pooling (MaxPool2d spatially: 32 -> 16 -> 8 -> 4, 4,096
features; spectral downsampling in Spec form: 36 -> 18 -> 9 -> 5, 6,400 features).
``fc_width`` (default 1024) sets the two hidden dense layers; no dropout.
"""
from __future__ import annotations

BATCH_NORM_DEFAULT = False
FEATURES = ((64, 5), "M", (192, 5), "M", (384, 3), (256, 3), (256, 3), "M")


def build(b, *, fc_width=1024):
    for item in FEATURES:
        if item == "M":
            b.pool()
        else:
            b.conv(*item, padding="same")
    b.classifier((fc_width, fc_width))
