"""The network registry: ``build(name, ...)`` and ``names()``.

Every architecture comes in a spatial form (``"vgg16"``) and a Spec form (``"spec-vgg16"``),
laid out by the same module (see :mod:`specref.nets.builder` for how a layer of one form maps to
the other). ``build`` returns a :class:`~specref.nets.network.Network` (a Sequential) with these
extra attributes: ``name``, ``spectral`` (bool), ``beta`` (None for spatial nets), ``fft_norm``
(None for spatial nets), ``input_shape``, ``num_classes``, ``storage`` (the codec every layer keeps
its feature maps with) and ``config`` (every argument of the build).

:data:`DEFAULT_BETA` is the Spec nets' threshold wherever none is given (``build``,
``specref.train``, the command line). :func:`spatial_baselines` gives the spatial nets a
network's memory is measured against (:func:`specref.memory.measure`).
"""
from __future__ import annotations

import inspect

import numpy as np

from .. import fft
from ..checks import check_positive_int
from ..layers.base import check_float_dtype
from ..storage import get_codec
from . import alexnet, densenet, lenet, vgg
from ..layers.spectral_activation import check_keeps_symmetry
from .builder import ACTIVATIONS, Builder, spectral_activation
from .network import Network

# The Spec nets' default threshold, under the default "ortho" FFT normalization. Measured with
# `specref train --net spec-lenet --data digits --epochs 6 --beta B` (every other option at its
# default): test accuracy 0.933 at beta 0.05 and at 0.1 (0.933 and 0.931 with seeds 1 and 2), 0.917 at
# 0.25, 0.853 at 0.5, 0.100 (chance) at 1.0, which keeps 0.2% of the second block's entries. 0.1 is
# also where the gradient audit still finds SpecNet's gradient close to the beta = 0 one (README).
DEFAULT_BETA = 0.1
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


def build(name, beta=DEFAULT_BETA, dtype=np.float32, seed=0, input_shape=(3, 32, 32), num_classes=10,
          activation="tanh", batch_norm=None, pooling="crop", fft_norm=fft.DEFAULT_NORM, storage="dense",
          **arch_options):
    """The network ``name`` with freshly drawn weights (deterministic for a given ``seed``).

    beta: the Spec nets' threshold (ignored by spatial nets; checked by the Threshold layers).
    dtype: float32 or float64 parameters (spectra are complex64 or complex128). input_shape:
    (channels, height, width).
    activation: spatial nets: "tanh" or "relu" for every activation. Spec nets: the activation of
    every Spec block, a name of :data:`specref.nets.SPEC_ACTIVATIONS` (``name[:param]``: "tanh",
    the paper's, "scaled-tanh:4", "softsign", "shrink", "shrink:0.2", "identity", "modrelu",
    "cardioid", "spatial-tanh", "spatial-relu"), a pair (h, h') or a SpectralActivation layer
    (see :func:`specref.nets.builder.spectral_activation`); one that breaks conjugate symmetry
    ("relu", a non-odd h) is refused. The dense head of a Spec net keeps tanh.
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
    make_spectral_activation = None
    if spectral:
        make_spectral_activation, activation = spectral_activation(activation, dtype)
        check_keeps_symmetry(make_spectral_activation(2), 2, name=repr(str(activation)))
    elif not isinstance(activation, str) or activation not in ACTIVATIONS:
        raise ValueError(f"activation of spatial net {name!r} must be one of {tuple(ACTIVATIONS)}, got "
                         f"{activation!r} (the spectral activations are for Spec nets, e.g. 'spec-{base}')")
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
    fft_norm = fft.check_norm(fft_norm)
    codec = get_codec(storage)
    if spectral:
        if batch_norm:
            raise ValueError(f"Spec nets have no batch norm (the paper removes it), got batch_norm={batch_norm!r} "
                             f"for {name!r}; use {base!r} for a spatial net with batch norm")
        batch_norm = False
    else:
        batch_norm = module.BATCH_NORM_DEFAULT if batch_norm is None else bool(batch_norm)

    builder = Builder(name, input_shape, spectral=spectral, dtype=dtype, seed=seed, fft_norm=fft_norm,
                      beta=beta, activation="tanh" if spectral else activation, batch_norm=batch_norm,
                      pooling=pooling, num_classes=num_classes, make_spectral_activation=make_spectral_activation)
    module.build(builder, **fixed, **arch_options)
    options = {"name": name, "dtype": dtype.name, "seed": seed, "input_shape": input_shape,
               "num_classes": num_classes, "activation": activation, "batch_norm": batch_norm,
               "pooling": pooling, "fft_norm": fft_norm if spectral else None, **arch_options}
    net = Network(builder.layers, name=name, spectral=spectral, fft_norm=options["fft_norm"],
                  input_shape=input_shape, num_classes=num_classes, options=options)
    net.storage = codec
    return net


# The spatial nets whose memory a network's is measured against: (key suffix, batch norm,
# activation). Without batch norm it is the same net with tanh; with it, the usual ReLU form.
BASELINES = (("", False, "tanh"), ("_bn", True, "relu"))
# Arguments of build that are not architecture options.
_BUILD_ARGUMENTS = ("name", "beta", "dtype", "seed", "input_shape", "num_classes", "activation",
                    "batch_norm", "pooling", "fft_norm", "storage")


def spatial_baselines(net, dtype, input_shape):
    """(key suffix, label, spatial net) for each of :data:`BASELINES`, built one at a time with
    ``net``'s architecture, seed and classes for inputs of ``dtype`` and ``input_shape`` (the
    spatial ``net`` itself stands for its own form without batch norm). Empty for a network
    :func:`build` did not make."""
    if not isinstance(net, Network):
        return
    config = net.config
    base = net.name[len(SPEC_PREFIX):] if net.spectral else net.name
    arch = {k: v for k, v in config.items() if k not in _BUILD_ARGUMENTS}
    for suffix, batch_norm, activation in BASELINES:
        label = f"{base} ({activation}, {'batch norm' if batch_norm else 'no batch norm'})"
        # A spatial net is its own first baseline, and its own second one when it has that form.
        is_self = not net.spectral and (not batch_norm or (config["batch_norm"] and config["activation"] == activation))
        if is_self:
            yield suffix, f"{label}, itself", net
        else:
            yield suffix, label, build(base, dtype=dtype, seed=config["seed"], input_shape=tuple(input_shape),
                                       num_classes=config["num_classes"], activation=activation,
                                       batch_norm=batch_norm, **arch)


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
