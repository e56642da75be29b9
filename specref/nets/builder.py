"""``Builder``: lays a network out layer by layer while tracking the shape of its feature map.

The architecture modules speak one vocabulary for both forms of a network:

- ``conv(out, k)``: spatial form: Conv2d -> [BatchNorm2d] -> Tanh/ReLU; Spec form: the block of
  Algorithm 1, SpectralConv2d -> Threshold(beta) -> ComplexTanh. The first Spec block takes the
  real input, so its convolution is linear and its output size M + k - 1; later blocks are
  circular at their input's size.
- ``pool()``: spatial form MaxPool2d(2) (floor); Spec form SpectralDownsample(2, mode=pooling)
  (ceil), since max pooling has no spectral form.
- ``classifier(widths)``: [ToSpatial] -> Flatten -> (Dense -> act) per width -> Dense(classes).

The dense layers' ``in_features`` follow from the tracked shape, never from a hard-coded count
(a Spec map is larger than the spatial one: LeNet's 32 x 32 input gives 36 -> 18 -> 9).
Every weight is drawn, in layer order, from the one Generator seeded by ``seed``.
"""
from __future__ import annotations

from contextlib import contextmanager

import numpy as np

from ..layers.activation import ComplexTanh
from ..layers.batchnorm import BatchNorm2d
from ..layers.conv2d import Conv2d
from ..layers.dense import Dense
from ..layers.dense_concat import DenseConcat
from ..layers.downsample import SpectralDownsample
from ..layers.flatten import Flatten
from ..layers.global_pool import GlobalAvgPool2d
from ..layers.pooling import AvgPool2d, MaxPool2d
from ..layers.spatial_activation import ReLU, Tanh
from ..layers.spectral_conv import SpectralConv2d
from ..layers.threshold import Threshold
from ..layers.to_spatial import ToSpatial

ACTIVATIONS = {"tanh": Tanh, "relu": ReLU}


class Builder:
    """Appends layers to ``self.layers``; ``channels``, ``size`` and ``domain`` follow the map."""

    def __init__(self, name, input_shape, *, spectral, dtype, seed, fft_norm, beta, activation,
                 batch_norm, pooling, num_classes):
        self.name, self.input_shape, self.spectral = name, tuple(input_shape), spectral
        self.dtype, self.fft_norm, self.beta = dtype, fft_norm, beta
        self.activation, self.batch_norm, self.pooling = activation, batch_norm, pooling
        self.num_classes = num_classes
        self.rng = np.random.default_rng(seed)
        self.channels, self.size = input_shape[0], tuple(input_shape[1:])
        self.domain = "spatial"          # "spatial" -> ("spectral" -> "spatial") -> "flat"
        self.layers = []

    # --- the shared vocabulary -------------------------------------------------------------
    def conv(self, out_channels, kernel_size, padding="same"):
        if self.spectral:
            self.spectral_block(out_channels, kernel_size)
        else:
            self.spatial_conv(out_channels, kernel_size, padding)
            if self.batch_norm:
                self.add(BatchNorm2d(self.channels, dtype=self.dtype))
            self.act()

    def pool(self):
        if self.spectral:
            self.spectral_pool(self.pooling)
        else:
            self._require(min(self.size) >= 2, "MaxPool2d(2)")
            self.add(MaxPool2d(2))
            self.size = tuple(n // 2 for n in self.size)

    def classifier(self, widths):
        if self.domain == "spectral":
            self.to_spatial()
        self.add(Flatten())
        self.channels, self.size, self.domain = self.channels * self.size[0] * self.size[1], (), "flat"
        for width in widths:
            self.dense(width)
            self.act()
        self.dense(self.num_classes)

    # --- single layers ---------------------------------------------------------------------
    def add(self, layer):
        self.layers.append(layer)
        return layer

    def act(self):
        self.add(ACTIVATIONS[self.activation]())

    def norm_act(self):
        """BatchNorm2d (when batch_norm) then the activation: DenseNet's pre-activation."""
        if self.batch_norm:
            self.add(BatchNorm2d(self.channels, dtype=self.dtype))
        self.act()

    def spatial_conv(self, out_channels, kernel_size, padding="same", bias=True):
        if padding == "valid":
            self._require(min(self.size) >= kernel_size, f"Conv2d(k={kernel_size}, padding='valid')")
            self.size = tuple(n - kernel_size + 1 for n in self.size)
        self.add(Conv2d(self.channels, out_channels, kernel_size, padding=padding, bias=bias,
                        dtype=self.dtype, rng=self.rng))
        self.channels = out_channels

    def spectral_block(self, out_channels, kernel_size):
        """SpectralConv2d -> Threshold(beta) -> ComplexTanh (Algorithm 1)."""
        if self.domain == "spatial":
            self.size = tuple(n + kernel_size - 1 for n in self.size)
            self.domain = "spectral"
        self._require(min(self.size) >= kernel_size, f"SpectralConv2d(k={kernel_size})")
        self.add(SpectralConv2d(self.channels, out_channels, kernel_size, dtype=self.dtype,
                                fft_norm=self.fft_norm, rng=self.rng))
        threshold = self.add(Threshold(self.beta))
        threshold.share_mask_with(self.add(ComplexTanh()))   # the mask is Z's non-zero pattern
        self.channels = out_channels

    def spectral_pool(self, mode, prefilter=None):
        self._require(min(self.size) >= 2, f"SpectralDownsample(2, {mode!r})")
        layer = self.add(SpectralDownsample(2, mode, prefilter=prefilter))
        self.size = layer.output_size(self.size)

    def avg_pool(self):
        self._require(min(self.size) >= 2, "AvgPool2d(2)")
        self.add(AvgPool2d(2))
        self.size = tuple(n // 2 for n in self.size)

    def to_spatial(self):
        self.add(ToSpatial())
        self.domain = "spatial"

    def global_avg_pool(self):
        if self.domain == "spectral":
            self.to_spatial()
        self.add(GlobalAvgPool2d())
        self.size, self.domain = (), "flat"

    def dense(self, out_features):
        self.add(Dense(self.channels, out_features, dtype=self.dtype, rng=self.rng))
        self.channels = out_features

    @contextmanager
    def concat(self):
        """Layers added inside go into a DenseConcat branch; the channels grow by its output."""
        outer, in_channels, size = self.layers, self.channels, self.size
        self.layers = []
        try:
            yield
        finally:
            branch, self.layers = self.layers, outer
        if self.size != size:
            raise AssertionError(f"a DenseConcat branch of {self.name} changed the map size {size} -> {self.size}")
        self.channels = in_channels + self.channels
        self.add(DenseConcat(branch))

    def _require(self, ok, layer):
        if not ok:
            raise ValueError(f"input_shape={self.input_shape} is too small for {self.name}: the map is "
                             f"{' x '.join(map(str, self.size))} before {layer} (layer {len(self.layers)})")
