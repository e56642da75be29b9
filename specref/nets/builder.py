"""``Builder``: lays a network out layer by layer while tracking the shape of its feature map.

The architecture modules speak one vocabulary for both forms of a network:

- ``conv(out, k)``: spatial form: Conv2d -> [BatchNorm2d] -> Tanh/ReLU; Spec form: the block of
  Algorithm 1, SpectralConv2d -> Threshold(beta) -> ComplexTanh (or the spectral activation the
  net was built with, :func:`spectral_activation`). The first Spec block takes the
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

import copy
from contextlib import contextmanager

import numpy as np

from ..layers import spectral_activation as spectral_activations
from ..layers.activation import ComplexActivation, ComplexTanh, SpectralActivation
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
# The Spec blocks' activations by base name (a name may carry a parameter: "scaled-tanh:4").
SPEC_ACTIVATIONS = spectral_activations.SPEC_ACTIVATIONS


class CustomActivation(str):
    """A user-supplied Spec-block activation: reads as the name a config records ("custom:NAME"),
    holds the layer each block copies (``prototype``), so a net rebuilt from its config
    (``build(**net.config)``) gets it again."""

    def __new__(cls, prototype, name=None):
        text = name or f"custom:{getattr(prototype, 'name', type(prototype).__name__)}"
        self = super().__new__(cls, text)
        self.prototype = prototype
        return self

    def __reduce__(self):
        return CustomActivation, (self.prototype, str(self))


def spectral_activation(activation, dtype):
    """(make(channels) -> a fresh activation layer, the name a config records) for a Spec net.

    activation: a name ``name[:param]`` of :data:`SPEC_ACTIVATIONS`; a pair ``(h, h')`` or
    triple ``(h, h', derivative_of)`` for :class:`ComplexActivation` (which refuses an h that is
    not odd or not monotone); a :class:`SpectralActivation` layer, copied for every block; or a
    :class:`CustomActivation`. Whatever it is, one instance is probed first: an activation that
    breaks conjugate symmetry or maps 0 elsewhere is refused (ValueError).
    """
    if isinstance(activation, CustomActivation):
        recorded, prototype = activation, activation.prototype
    elif isinstance(activation, str):
        if activation.strip().lower() in ACTIVATIONS and activation.strip().lower() != "tanh":
            raise ValueError(f"activation {activation!r} cannot act on a spectrum: it is not odd, so it would break "
                             f"the conjugate symmetry of a real map's spectrum; Spec nets take one of "
                             f"{', '.join(spectral_activations.usage())} (spatial-relu applies ReLU in space)")
        _, _, canonical = spectral_activations.parse(activation)
        return (lambda channels: spectral_activations.make(canonical, channels, dtype)), canonical
    elif isinstance(activation, tuple) and 2 <= len(activation) <= 3 and all(map(callable, activation[:2])):
        prototype = ComplexActivation(*activation)
        recorded = CustomActivation(prototype)
    elif isinstance(activation, SpectralActivation):
        prototype = activation
        recorded = CustomActivation(prototype)
    else:
        raise TypeError(f"activation of a Spec net must be a name, one of {', '.join(spectral_activations.usage())}, "
                        f"a (h, h') pair or a SpectralActivation layer, got {type(activation).__name__}")

    def make(channels):
        layer = copy.deepcopy(prototype)
        layer.clear_cache()
        layer.params = {key: value.astype(dtype) for key, value in layer.params.items()}
        layer.zero_grad()
        return layer

    return make, recorded


class Builder:
    """Appends layers to ``self.layers``; ``channels``, ``size`` and ``domain`` follow the map."""

    def __init__(self, name, input_shape, *, spectral, dtype, seed, fft_norm, beta, activation,
                 batch_norm, pooling, num_classes, make_spectral_activation=None):
        self.name, self.input_shape, self.spectral = name, tuple(input_shape), spectral
        self.dtype, self.fft_norm, self.beta = dtype, fft_norm, beta
        self.activation, self.batch_norm, self.pooling = activation, batch_norm, pooling
        self.num_classes = num_classes
        # channels -> the Spec blocks' activation layer (None: ComplexTanh, the paper's)
        self.make_spectral_activation = make_spectral_activation
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
        """SpectralConv2d -> Threshold(beta) -> ComplexTanh (Algorithm 1), or the net's spectral activation."""
        if self.domain == "spatial":
            self.size = tuple(n + kernel_size - 1 for n in self.size)
            self.domain = "spectral"
        self._require(min(self.size) >= kernel_size, f"SpectralConv2d(k={kernel_size})")
        self.add(SpectralConv2d(self.channels, out_channels, kernel_size, dtype=self.dtype,
                                fft_norm=self.fft_norm, rng=self.rng))
        threshold = self.add(Threshold(self.beta))
        make = self.make_spectral_activation
        activation = self.add(ComplexTanh() if make is None else make(out_channels))
        if getattr(activation, "zero_only_at_zero", False):
            threshold.share_mask_with(activation)   # the mask is the kept map's non-zero pattern
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
