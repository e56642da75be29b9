"""The nonlinearity applied in space, between two transforms: the control for spectral activations.

    s = irfft2(Y_hat, (P, Q), norm)      Z = rfft2(g(s), (P, Q), norm)
    dY = irfft2_adjoint(g'(s) * rfft2_adjoint(dZ))

at the map's carried size (P, Q) and FFT normalization (see :mod:`specref.fft` for the adjoints).
g = tanh (g' = 1 - tanh(s)^2) or ReLU (g' = [s > 0], the subgradient 0 at s = 0). Z is the
spectrum of a real map by construction, and g(0) = 0 gives Z = 0 for Y_hat = 0; Z is dense in
general (a pointwise function in space spreads the spectrum), the threshold still acts on the
spectrum before it.

What is kept for backward is the input Y_hat (the sparse thresholded spectrum, zero exactly where
|Y| <= beta, so the Threshold before it reads its mask from it); backward recomputes s and g'(s)
from it (one inverse transform) rather than keeping a dense spatial map.
"""
from __future__ import annotations

from .. import fft
from ..backend import array_module
from .activation import SpectralActivation
from .base import check_spectrum


class SpatialPointwise(SpectralActivation):
    """rfft2(g(irfft2(Y))) with g = ``"tanh"`` or ``"relu"``."""

    FORMULAS = {"tanh": "rfft2(tanh(irfft2(Y))) at the map's size and FFT norm",
                "relu": "rfft2(max(irfft2(Y), 0)) at the map's size and FFT norm"}
    zero_only_at_zero = True        # the kept map is the input Y_hat

    def __init__(self, function="tanh"):
        super().__init__()
        if function not in self.FORMULAS:
            raise ValueError(f"function must be one of {tuple(self.FORMULAS)}, got {function!r}")
        self.function = function
        self.name = f"spatial-{function}"
        self.formula = self.FORMULAS[function]

    def forward(self, x):
        check_spectrum(x)
        s = fft.irfft2(x.values, x.size, x.norm)
        self.cache = {}
        self.keep("u", x)
        out = fft.rfft2(self._g(s), x.size, x.norm)
        return x.like(out.astype(x.values.dtype, copy=False))

    def backward(self, dy):
        kept = self.kept("u")
        check_spectrum(dy, "dy")
        size, norm = dy.size, dy.norm
        s = fft.irfft2(kept, size, norm)
        ds = fft.rfft2_adjoint(dy.values, size, norm) * self._g_prime(s)
        return dy.like(fft.irfft2_adjoint(ds, size, norm).astype(dy.values.dtype, copy=False))

    def _g(self, s):
        xp = array_module(s)
        return xp.tanh(s) if self.function == "tanh" else xp.maximum(s, 0)

    def _g_prime(self, s):
        if self.function == "tanh":
            t = array_module(s).tanh(s)
            return 1 - t * t
        return (s > 0).astype(s.dtype)

    def __repr__(self):
        return f"SpatialPointwise({self.function!r})"
