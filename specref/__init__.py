"""specref: the reference implementation of SpecNet, the spectral-domain CNN.

Feature maps live as half spectra (:class:`Spectrum`); convolution is a per-frequency product,
a threshold beta zeroes small entries, tanh acts on real and imaginary parts, and pooling is
spectral downsampling. Every layer has a hand-written backward; see README.md for the
conventions (FFT normalization, half spectrum, complex gradients).
"""
from . import fft
from .audit import audit
from .backend import Backend, array_module, to_numpy
from .init import lsuv
from .layers.activation import ComplexActivation, ComplexTanh
from .layers.base import Layer
from .layers.batchnorm import BatchNorm2d
from .layers.conv2d import Conv2d
from .layers.dense import Dense
from .layers.downsample import SpectralDownsample
from .layers.flatten import Flatten
from .layers.loss import SoftmaxCrossEntropy, accuracy
from .layers.pooling import AvgPool2d, MaxPool2d
from .layers.sequential import Sequential
from .layers.spatial_activation import ReLU, Tanh
from .layers.spectral_conv import SpectralConv2d
from .layers.threshold import Threshold
from .layers.to_spatial import ToSpatial
from .spectrum import Spectrum

__version__ = "0.1.0"


def train(net, data, **options):
    """Train ``net`` (a network or a registry name) on ``data``; see :func:`specref.training.train`."""
    from .training import train as _train

    return _train(net, data, **options)


__all__ = [
    "AvgPool2d", "Backend", "BatchNorm2d", "ComplexActivation", "ComplexTanh", "Conv2d", "Dense",
    "Flatten", "Layer", "MaxPool2d", "ReLU", "Sequential", "SoftmaxCrossEntropy", "Spectrum",
    "SpectralConv2d", "SpectralDownsample", "Tanh", "Threshold", "ToSpatial", "accuracy",
    "array_module", "audit", "fft", "lsuv", "to_numpy", "train",
]
