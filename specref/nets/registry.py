"""The network registry: ``build(name, ...)`` and ``names()``.

Every architecture comes in a spatial form (``"vgg16"``) and a Spec form (``"spec-vgg16"``),
laid out by the same module (see :mod:`specref.nets.builder` for how a layer of one form maps to
the other). ``build`` returns a :class:`~specref.layers.sequential.Sequential` with these extra
attributes: ``name``, ``spectral`` (bool), ``beta`` (None for spatial nets), ``fft_norm`` (None
for spatial nets), ``input_shape``, ``num_classes``, ``storage`` (the codec every layer keeps its
feature maps with) and ``config`` (every argument of the build).
"""
from __future__ import annotations

import inspect

import numpy as np

from .. import fft
from ..layers.base import check_float_dtype, check_positive_int
from ..layers.sequential import Sequential
from ..layers.threshold import check_beta
from ..storage import get_codec, set_storage
from . import alexnet, densenet, lenet, vgg
from .builder import ACTIVATIONS, Builder

SPEC_PREFIX = "spec-"
POOLINGS = ("crop", "alias")
# base name -> (module, fixed keyword arguments of its build)
FAMILIES = {
    "lenet": (lenet, {}),
    "alexnet": (alexnet, {}),
    "vgg11": (vgg, {"depth": 11}),
    "vgg16": (vgg, {"depth": 16}),
    "densenet121": (densenet, {"depth": 121}),
    "densenet169": (densenet, {"depth": 169}),
}


def names():
    """Every registered name: the spatial nets, then their Spec forms."""
    return [*FAMILIES, *(SPEC_PREFIX + base for base in FAMILIES)]


def build(name, beta=1.0, dtype=np.float32, seed=0, input_shape=(3, 32, 32), num_classes=10,
          activation="tanh", batch_norm=None, pooling="crop", fft_norm=fft.DEFAULT_NORM, storage="dense",
          **arch_options):
    """The network ``name`` with freshly drawn weights (deterministic for a given ``seed``).

    beta: the Spec nets' threshold (ignored by spatial nets). dtype: float32 or float64 parameters
    (spectra are complex64 or complex128). input_shape: (channels, height, width).
    activation: "tanh" or "relu" for every spatial activation (Spec blocks always use
    ComplexTanh: ReLU is not odd, so it would break the spectrum's conjugate symmetry).
    batch_norm: None takes the architecture's default (True for DenseNet, False otherwise);
    Spec nets have none. pooling: "crop" or "alias", the spectral downsampling that replaces
    max pooling in Spec nets. fft_norm: the Spec nets' FFT normalization (what beta is measured
    against). storage: the codec (specref.storage) with which every layer keeps the feature maps
    backward needs: "dense" (the control), "csr", "bitmask", or with a lossy value codec
    "csr-fp16", "bitmask-int8", ... arch_options: per architecture (alexnet: fc_width; vgg: classifier_width;
    densenet: growth_rate, compression, bottleneck_width).
    """
    spectral, base = _parse_name(name)
    module, fixed = FAMILIES[base]
    _check_arch_options(name, module, fixed, arch_options)
    dtype = check_float_dtype(dtype)
    input_shape = _check_input_shape(input_shape)
    num_classes = check_positive_int(num_classes, "num_classes")
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {tuple(ACTIVATIONS)}, got {activation!r}")
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
    fft_norm = fft.check_norm(fft_norm)
    codec = get_codec(storage)
    if spectral:
        beta = check_beta(beta)
        if batch_norm:
            raise ValueError(f"Spec nets have no batch norm (the paper removes it), got batch_norm={batch_norm!r} "
                             f"for {name!r}; use {base!r} for a spatial net with batch norm")
        batch_norm = False
    else:
        beta = None
        batch_norm = module.BATCH_NORM_DEFAULT if batch_norm is None else bool(batch_norm)

    config = {"name": name, "beta": beta, "dtype": dtype.name, "seed": seed, "input_shape": input_shape,
              "num_classes": num_classes, "activation": activation, "batch_norm": batch_norm,
              "pooling": pooling, "fft_norm": fft_norm if spectral else None, "storage": codec.name,
              **arch_options}
    builder = Builder(name, input_shape, spectral=spectral, dtype=dtype, seed=seed, fft_norm=fft_norm,
                      beta=beta, activation=activation, batch_norm=batch_norm, pooling=pooling,
                      num_classes=num_classes)
    module.build(builder, **fixed, **arch_options)
    net = Sequential(builder.layers)
    net.name, net.spectral, net.beta = name, spectral, beta
    net.fft_norm = fft_norm if spectral else None
    net.input_shape, net.num_classes, net.config = input_shape, num_classes, config
    net.storage = set_storage(net, codec)
    return net


def _parse_name(name):
    if not isinstance(name, str):
        raise TypeError(f"name must be a string, one of {names()}, got {type(name).__name__}")
    key = name.lower()
    spectral = key.startswith(SPEC_PREFIX)
    base = key[len(SPEC_PREFIX):] if spectral else key
    if base not in FAMILIES:
        raise ValueError(f"unknown network {name!r}; known networks: {', '.join(names())}")
    return spectral, base


def _check_arch_options(name, module, fixed, options):
    parameters = inspect.signature(module.build).parameters
    allowed = [p for p, spec in parameters.items() if spec.kind is spec.KEYWORD_ONLY and p not in fixed]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        accepted = ", ".join(allowed) if allowed else "no architecture options"
        raise ValueError(f"unknown option(s) {', '.join(map(repr, unknown))} for {name!r}; it accepts {accepted}")


def _check_input_shape(input_shape):
    try:
        shape = tuple(input_shape)
    except TypeError:
        shape = None
    if (shape is None or len(shape) != 3
            or any(isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1 for n in shape)):
        raise ValueError(f"input_shape must be (channels, height, width) of positive integers, got {input_shape!r}")
    return tuple(int(n) for n in shape)
