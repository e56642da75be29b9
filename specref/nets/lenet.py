"""LeNet-5 (LeCun et al. 1998) at CIFAR size, in spatial and Spec form.

Spatial: Conv2d(6, k5, valid) -> act -> MaxPool2d(2) -> Conv2d(16, k5, valid) -> act ->
MaxPool2d(2) -> Flatten -> Dense(120) -> act -> Dense(84) -> act -> Dense(classes).
For a 3 x 32 x 32 input the maps are 28 -> 14 -> 10 -> 5 (400 features, 62,006 parameters).

Spec: each conv + act is SpectralConv2d -> Threshold -> ComplexTanh, each pooling a spectral
downsampling; the maps are 36 (linear convolution of the 32 x 32 input) -> 18 -> 18 (circular)
-> 9, so the first dense layer takes 16 * 9 * 9 = 1,296 features (169,526 parameters).
"""
from __future__ import annotations

BATCH_NORM_DEFAULT = False


def build(b):
    for channels in (6, 16):
        b.conv(channels, 5, padding="valid")
        b.pool()
    b.classifier((120, 84))
