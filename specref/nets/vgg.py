"""VGG-11 and VGG-16 (Simonyan & Zisserman 2015), CIFAR form, in spatial and Spec form.

Standard configurations A and D of 3 x 3 "same" convolutions, 'M' a 2 x 2 pooling, then the
CIFAR classifier Dense(features, 512) -> act -> Dense(512, classes). Spatially, five poolings take
32 x 32 to 1 x 1 (512 features, so the input must be at least 32 x 32). In Spec form the first
block's linear convolution gives 34 x 34, and the crop/alias downsamplings (ceil) give
34 -> 17 -> 9 -> 5 -> 3 -> 2 (512 * 2 * 2 = 2,048 features).
"""
from __future__ import annotations

BATCH_NORM_DEFAULT = False
CONFIGS = {
    11: (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),
    16: (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"),
}


def build(b, *, depth, classifier_width=512):
    for item in CONFIGS[depth]:
        if item == "M":
            b.pool()
        else:
            b.conv(item, 3, padding="same")
    b.classifier((classifier_width,))
