"""Activations on magnitude and phase: modReLU (Arjovsky et al. 2016) and the cardioid (Virtue et al. 2017).

With r = |z|, u = z / r, z = x + iy, G = dL/dRe f + i dL/dIm f (the gradient that arrives):

    modReLU   f(z) = ReLU(r + b_c) u                   (b_c learned, one per channel c)
              dL/dz = [r + b > 0] (G + (b / r) i Im(conj(u) G) u)
              dL/db_c = sum over the channel's entries of [r + b > 0] Re(conj(u) G)
    cardioid  f(z) = (1 + cos arg z) z / 2 = (1 + x / r) z / 2
              dL/dz = (1 + x / r) G / 2 - (i / 2) (y / r) Re(conj(u) G) u

Both are f(z) = s(r, cos arg z) z with a real s, so f(conj z) = conj f(z): the spectrum of a real
map stays one. They are not holomorphic; each dL/dz above is the transpose of the real 2 x 2
Jacobian of (Re f, Im f) in (x, y) applied to (Re G, Im G), written in complex form. f(0) = 0;
f is not differentiable at 0 and the gradient used there is 0 (the threshold passes none there).

Both keep their input Y_hat (zero exactly where the threshold zeroed it, so the Threshold reads
its mask from it) and rebuild r and u from it in backward.
"""
from __future__ import annotations

import numpy as np

from ..checks import check_positive_int
from .activation import SpectralActivation
from .base import check_float_dtype, check_spectrum

MODRELU_BIAS_INIT = -0.01


class ModReLU(SpectralActivation):
    """ReLU(|z| + b_c) z / |z| per channel; ``params["b"]`` shape (channels,), initially
    ``bias_init`` (-0.01: slightly shrinking, so it is not the identity at the start; a constant, so
    building it draws nothing from the net's Generator)."""

    formula = "ReLU(|z| + b_c) z/|z|, b learned per channel (initially -0.01), f(0) = 0"
    zero_only_at_zero = True        # the kept map is the input Y_hat

    def __init__(self, channels, bias_init=MODRELU_BIAS_INIT, dtype=np.float32):
        super().__init__()
        self.channels = check_positive_int(channels, "channels")
        self.bias_init = float(bias_init)
        if not np.isfinite(self.bias_init):
            raise ValueError(f"bias_init must be a finite number, got {bias_init!r}")
        self.name, self.formula = "modrelu", ModReLU.formula      # instance attributes: golden manifests list them
        self.params = {"b": np.full(self.channels, self.bias_init, dtype=check_float_dtype(dtype))}
        self.zero_grad()

    def forward(self, x):
        xp = check_spectrum(x)
        self._check_channels(x.values)
        z = x.values
        r, safe_r, _ = _polar(z, xp)
        b = self.params["b"].reshape(1, -1, 1, 1)
        scale = xp.where(r > 0, xp.maximum(r + b, 0) / safe_r, 0)
        self.cache = {}
        self.keep("u", x)
        return x.like((z * scale).astype(z.dtype, copy=False))

    def backward(self, dy):
        z = self.kept("u")
        xp = check_spectrum(dy, "dy")
        g = dy.values
        r, safe_r, u = _polar(z, xp)
        b = self.params["b"].reshape(1, -1, 1, 1)
        active = (r > 0) & (r + b > 0)
        along = xp.conj(u) * g                        # Re: radial part of G, Im: tangential part
        dz = xp.where(active, g + (b / safe_r) * (1j * along.imag) * u, 0)
        db = xp.where(active, along.real, 0).sum(axis=(0, 2, 3))
        self.grads["b"] = db.astype(self.params["b"].dtype, copy=False)
        return dy.like(dz.astype(g.dtype, copy=False))

    def _check_channels(self, values):
        if values.shape[1] != self.channels:
            raise ValueError(f"ModReLU has a bias b for {self.channels} channels, got an input with "
                             f"{values.shape[1]} channels (shape {tuple(values.shape)})")

    def __repr__(self):
        return f"ModReLU(channels={self.channels})"


class Cardioid(SpectralActivation):
    """(1 + cos arg z) z / 2: passes the positive real axis, removes the negative one."""

    formula = "(1 + cos arg z) z / 2, f(0) = 0"
    zero_only_at_zero = True        # the kept map is the input Y_hat

    def __init__(self):
        super().__init__()
        self.name, self.formula = "cardioid", Cardioid.formula

    def forward(self, x):
        xp = check_spectrum(x)
        z = x.values
        _, safe_r, _ = _polar(z, xp)
        self.cache = {}
        self.keep("u", x)
        return x.like((0.5 * (1 + z.real / safe_r) * z).astype(z.dtype, copy=False))

    def backward(self, dy):
        z = self.kept("u")
        xp = check_spectrum(dy, "dy")
        g = dy.values
        r, safe_r, u = _polar(z, xp)
        radial = (xp.conj(u) * g).real
        dz = 0.5 * (1 + z.real / safe_r) * g - 0.5j * (z.imag / safe_r) * radial * u
        return dy.like(xp.where(r > 0, dz, 0).astype(g.dtype, copy=False))


def _polar(z, xp):
    """(r, r with 1 where r = 0, u = z / r with 0 where z = 0)."""
    r = xp.abs(z)
    safe_r = xp.where(r > 0, r, 1)
    return r, safe_r, z / safe_r
