"""DenseNet-BC (Huang et al. 2017), CIFAR form, in spatial and Spec form.

Growth rate k (default 12), compression 0.5, bottleneck width 4k; dense blocks of
(6, 12, 24, 16) layers for DenseNet-121 and (6, 12, 32, 32) for DenseNet-169. With the CIFAR
stem (one 3 x 3 convolution to 2k channels, no initial pooling) the channels run
24 -> 96 | 48 -> 192 | 96 -> 384 | 192 -> 384 for DenseNet-121 with k = 12.

Spatial (pre-activation ordering; batch norm on by default, ``batch_norm=False`` drops it):

    stem      Conv2d(2k, 3x3)
    layer     DenseConcat[ BN-act-Conv2d(4k, 1x1) - BN-act-Conv2d(k, 3x3) ]
    transition BN-act-Conv2d(floor(C * compression), 1x1) - AvgPool2d(2)
    end       BN-act - GlobalAvgPool2d - Dense(classes)

Convolutions have no bias when batch norm follows them (its shift makes a bias redundant).

Spec (no batch norm; concatenation in the spectral domain):

    stem      SpectralConv2d(2k, 3x3) - Threshold - ComplexTanh          (34 x 34 for 32 x 32)
    layer     DenseConcat[ SpectralConv2d(4k, 1x1) - Threshold - ComplexTanh
                           - SpectralConv2d(k, 3x3) - Threshold - ComplexTanh ]
    transition SpectralConv2d(floor(C * compression), 1x1) - Threshold - ComplexTanh - pool
    end       ToSpatial - GlobalAvgPool2d - Dense(classes)

The transition's pool is the spectral average pool SpectralDownsample(2, "alias",
prefilter="box") (exactly a 2 x 2 mean then x[::2, ::2]) when both sides are even; on an odd
side that pool would have to go through the spatial domain, so odd maps use
SpectralDownsample(2, "crop") (a low-pass crop, ceil size) instead: 34 -> 17 -> 9 -> 5.
The ``pooling`` option of :func:`specref.nets.build` is for max-pool replacements and does not
apply here.
"""
from __future__ import annotations

import math

from ..checks import check_positive_int

BATCH_NORM_DEFAULT = True
BLOCKS = {121: (6, 12, 24, 16), 169: (6, 12, 32, 32)}


def build(b, *, depth, growth_rate=12, compression=0.5, bottleneck_width=4):
    k = check_positive_int(growth_rate, "growth_rate")
    width = check_positive_int(bottleneck_width, "bottleneck_width")
    if not isinstance(compression, (int, float)) or not 0 < compression <= 1:
        raise ValueError(f"compression must be a number in (0, 1], got {compression!r}")
    layers = BLOCKS[depth]
    _stem(b, 2 * k)
    for i, count in enumerate(layers):
        for _ in range(count):
            with b.concat():
                _unit(b, width * k, 1)
                _unit(b, k, 3)
        if i < len(layers) - 1:
            _unit(b, max(1, math.floor(b.channels * compression)), 1)
            _average_pool(b)
    if not b.spectral:
        b.norm_act()
    b.global_avg_pool()
    b.dense(b.num_classes)


def _stem(b, channels):
    if b.spectral:
        b.spectral_block(channels, 3)
    else:
        b.spatial_conv(channels, 3, bias=not b.batch_norm)


def _unit(b, channels, kernel_size):
    """BN-act-conv spatially; conv-threshold-tanh in Spec form."""
    if b.spectral:
        b.spectral_block(channels, kernel_size)
    else:
        b.norm_act()
        b.spatial_conv(channels, kernel_size, bias=not b.batch_norm)


def _average_pool(b):
    if not b.spectral:
        b.avg_pool()
    elif all(n % 2 == 0 for n in b.size):
        b.spectral_pool("alias", prefilter="box")
    else:
        b.spectral_pool("crop")
