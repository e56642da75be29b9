"""ToSpatial: back to real maps, x = irfft2(X, size, norm), (B, C, P, Q).

Backward is the adjoint of irfft2: dX = w * rfft2(dx, norm=dual(norm)) (see specref.fft).
"""
from __future__ import annotations

from .. import fft
from ..spectrum import Spectrum
from .base import Layer, check_spatial, check_spectrum


class ToSpatial(Layer):
    def forward(self, x):
        check_spectrum(x)
        self.cache = {"size": x.size, "norm": x.norm}
        return x.to_spatial()

    def backward(self, dy):
        size, norm = self._need_cache("size", "norm")
        check_spatial(dy, "dy")
        return Spectrum(fft.irfft2_adjoint(dy, size, norm), size, norm)
