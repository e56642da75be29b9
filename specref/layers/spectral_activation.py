"""The activations a Spec block may use, by name (``name[:param]``), all keeping conjugate symmetry.

A real map's half spectrum stays one when f(conj z) = conj f(z) entry by entry; f(0) = 0 keeps
the threshold's zeros (the sparsity the maps are stored with).

Split, f(a + ib) = h(a) + i h(b), h odd and monotone (:class:`ComplexActivation`):

    tanh            h(t) = tanh(t)                  h' = 1 - h^2          (from the output; the paper's)
    scaled-tanh:S   h(t) = S tanh(t / S), S > 0      h' = 1 - (h / S)^2    (from the output)
    softsign        h(t) = t / (1 + |t|)             h' = (1 - |h|)^2      (from the output)
    shrink[:L]      h(t) = sign(t) max(|t| - L, 0)   h' = [|t| > L]        (from the input; L >= 0,
                                                                          default SHRINK_DEFAULT)
    identity        h(t) = t                         h' = 1                (the linear control)

On magnitude and phase (:mod:`specref.layers.polar_activation`): ``modrelu`` ReLU(|z| + b) z/|z|
with b learned per channel, ``cardioid`` (1 + cos arg z) z / 2. In space
(:mod:`specref.layers.spatial_pointwise`): ``spatial-tanh``, ``spatial-relu``, rfft2(g(irfft2(Y))).

Every one of them keeps a map that is non-zero exactly where the threshold kept an entry (f(Y_hat)
with f zero only at zero, or Y_hat itself), so the Threshold before it reads its mask from that
map (``zero_only_at_zero``). :func:`make` builds a layer from a name; :func:`check_keeps_symmetry`
probes any spectral activation layer (what the builder runs on user-supplied ones too).
"""
from __future__ import annotations

import math

import numpy as np

from .. import fft
from ..backend import array_module
from ..spectrum import Spectrum
from .activation import ComplexActivation, ComplexTanh
from .base import check_spectrum
from .polar_activation import Cardioid, ModReLU
from .spatial_pointwise import SpatialPointwise

SHRINK_DEFAULT = 0.1   # the default beta: per component, shrink removes what the threshold does per magnitude

# base name -> (parameter: None, or (symbol, default or None when required), formula)
SPEC_ACTIVATIONS = {
    "tanh": (None, "tanh(a) + i tanh(b) (the paper's, the default)"),
    "scaled-tanh": (("S", None), "S tanh(a/S) + i S tanh(b/S), S > 0 (e.g. scaled-tanh:4)"),
    "softsign": (None, "a/(1 + |a|) + i b/(1 + |b|)"),
    "shrink": (("L", SHRINK_DEFAULT), f"sign(a) max(|a| - L, 0) + i sign(b) max(|b| - L, 0), L >= 0 "
                                      f"(default {SHRINK_DEFAULT:g})"),
    "identity": (None, "a + ib (the linear control)"),
    "modrelu": (None, ModReLU.formula),
    "cardioid": (None, Cardioid.formula),
    "spatial-tanh": (None, SpatialPointwise.FORMULAS["tanh"]),
    "spatial-relu": (None, SpatialPointwise.FORMULAS["relu"]),
}


def usage():
    """Every accepted form, as an error message lists them: "tanh", "scaled-tanh:S", "shrink[:L]", ..."""
    forms = []
    for base, (parameter, _) in SPEC_ACTIVATIONS.items():
        if parameter is None:
            forms.append(base)
        else:
            symbol, default = parameter
            forms.append(f"{base}:{symbol}" if default is None else f"{base}[:{symbol}]")
    return forms


def parse(name):
    """(base name, parameter or None, canonical name) of ``name[:param]``; ValueError names what is wrong."""
    if not isinstance(name, str):
        raise TypeError(f"activation must be a name (str), one of {', '.join(usage())}, got {type(name).__name__}")
    base, colon, text = name.strip().lower().partition(":")
    if base not in SPEC_ACTIVATIONS:
        raise ValueError(f"unknown spectral activation {name!r}; expected one of {', '.join(usage())}")
    parameter = SPEC_ACTIVATIONS[base][0]
    if parameter is None:
        if colon:
            raise ValueError(f"activation {base!r} takes no parameter, got {name!r}")
        return base, None, base
    symbol, default = parameter
    if not colon:
        if default is None:
            raise ValueError(f"activation {base!r} needs its parameter {symbol}: write '{base}:{symbol}', "
                             f"e.g. '{base}:4', got {name!r}")
        return base, None, base
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    low_ok = value > 0 if base == "scaled-tanh" else value >= 0
    if not (math.isfinite(value) and low_ok):
        bound = "> 0" if base == "scaled-tanh" else ">= 0"
        raise ValueError(f"{symbol} in '{base}:{symbol}' must be a finite number {bound}, got {text!r} in {name!r}")
    return base, value, f"{base}:{value:g}"


def make(name, channels, dtype=np.float32):
    """A fresh layer for the activation ``name[:param]`` of a block with ``channels`` channels."""
    base, value, canonical = parse(name)
    if base == "tanh":
        return ComplexTanh()
    if base == "scaled-tanh":
        return scaled_tanh(value)
    if base == "softsign":
        return softsign()
    if base == "shrink":
        return shrink(SHRINK_DEFAULT if value is None else value)
    if base == "identity":
        return Identity()
    if base == "modrelu":
        return ModReLU(channels, dtype=dtype)
    if base == "cardioid":
        return Cardioid()
    return SpatialPointwise(base[len("spatial-"):])


def scaled_tanh(scale):
    """S tanh(t / S) per component; h' = 1 - (h / S)^2 from the kept output."""
    scale = float(scale)

    def h(t):
        return scale * array_module(t).tanh(t / scale)

    def derivative(u):
        return 1 - (u / scale) ** 2

    return _named(ComplexActivation(h, derivative, "output", name=f"scaled-tanh:{scale:g}"), "scaled-tanh")


def softsign():
    """t / (1 + |t|) per component; h' = 1 / (1 + |t|)^2 = (1 - |h|)^2 from the kept output."""
    return _named(ComplexActivation(_softsign, _softsign_derivative_from_output, "output", name="softsign"),
                  "softsign")


def shrink(level=SHRINK_DEFAULT):
    """sign(t) max(|t| - L, 0) per component; h' = [|t| > L] from the kept input (Y_hat)."""
    level = float(level)

    def h(t):
        xp = array_module(t)
        return xp.sign(t) * xp.maximum(xp.abs(t) - level, 0)

    def derivative(t):
        return (array_module(t).abs(t) > level).astype(t.dtype)

    layer = ComplexActivation(h, derivative, "input", name=f"shrink:{level:g}", kinks=(-level, level))
    return _named(layer, "shrink")


class Identity(ComplexActivation):
    """f(z) = z (the linear control). Returns its input Spectrum itself and keeps it (no copy:
    the next layer keeps the same map), so the Threshold before it reads its mask from it."""

    def __init__(self):
        super().__init__(_identity, _one, "input", name="identity")
        self.formula = SPEC_ACTIVATIONS["identity"][1]

    def forward(self, x):
        check_spectrum(x)
        self.cache = {}
        self.keep("u", x)
        return x

    def backward(self, dy):
        self._need_cache("u")
        check_spectrum(dy, "dy")
        return dy.like(dy.values)


def check_keeps_symmetry(layer, channels, name=None, seed=0):
    """Refuse (ValueError) a spectral activation layer that breaks conjugate symmetry or maps 0 to
    something else: probed on the half spectrum of a random real map (float64, two sizes, one
    with Nyquist columns and rows) and on zeros. The layer's cache is cleared afterwards."""
    name = name or repr(layer)
    rng = np.random.default_rng(seed)
    try:
        for size in ((6, 6), (5, 7)):
            x = Spectrum.from_spatial(rng.standard_normal((2, channels, *size)))
            z = layer.forward(x).values
            hermitian = fft.rfft2(fft.irfft2(z, size), size)
            if not np.allclose(z, hermitian, rtol=1e-6, atol=1e-9 * max(1.0, float(np.max(np.abs(z))))):
                raise ValueError(f"activation {name} breaks conjugate symmetry: its output on the spectrum "
                                 "of a real map is not the spectrum of a real map (f(conj z) != conj f(z))")
            zero = layer.forward(x.like(np.zeros_like(x.values))).values
            if np.any(zero != 0):
                raise ValueError(f"activation {name} maps 0 to a non-zero value: f(0) != 0 would fill "
                                 "the threshold's zeros")
    finally:
        layer.clear_cache()


def _named(layer, base):
    layer.formula = SPEC_ACTIVATIONS[base][1]
    return layer


def _softsign(t):
    return t / (1 + array_module(t).abs(t))


def _softsign_derivative_from_output(u):
    s = 1 - array_module(u).abs(u)
    return s * s


def _identity(t):
    return t


def _one(t):
    return array_module(t).ones_like(t)
