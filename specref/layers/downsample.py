"""SpectralDownsample: pooling as downsampling in the spectral domain.

Both modes are linear maps Y = s * R X_full C (R, C: 0/1 matrices picking and summing
frequencies along each axis; s = fft.resample_scale keeps spatial values). In the half layout
the full columns beyond Q//2 are conjugates of stored ones with the rows flipped, so

    Y = s * (R X Ca + Rf conj(X) Cb),        dX = s * (R^T dY Ca^T + conj(Rf^T dY Cb^T))

mode="alias": y = x[..., ::f, ::f] exactly. When f divides the size, the output frequency nu
sums the f aliases nu + a*P/f of each axis (no FFT). When it does not, the map goes through the
spatial domain (irfft2, subsample, rfft2), which is still exactly x[::f, ::f] (output size
ceil(P/f)); the adjoint runs the same path backwards.
mode="crop": keep the ceil(P/f) lowest frequencies (Rippel et al. 2015); for an even output size
the two input frequencies +-P'/2 are summed into the output's Nyquist bin, as aliasing would,
so crop equals alias on maps band-limited to |nu| <= P'/2, and the output stays Hermitian.
Backward needs nothing kept. When the input was kept by an earlier layer (a block's Z), the
output's ``stored`` handle recomputes it from that copy (:class:`specref.storage.DerivedStored`),
so the next convolution keeps no second, downsampled copy.
prefilter="box" multiplies first by the transfer function of the circular f x f box mean
(z[m, l] = mean over a, b < f of x[m + a, l + b]), which turns "alias" into average pooling.
"""
from __future__ import annotations

import math

import numpy as np

from .. import fft
from ..backend import array_module
from ..storage import DerivedStored
from .base import Layer, check_positive_int, check_spectrum

MODES = ("alias", "crop")


class SpectralDownsample(Layer):
    def __init__(self, factor=2, mode="alias", prefilter=None):
        super().__init__()
        self.factor = check_positive_int(factor, "factor")
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if prefilter not in (None, "box"):
            raise ValueError(f"prefilter must be None or 'box', got {prefilter!r}")
        self.mode, self.prefilter = mode, prefilter

    def output_size(self, size):
        return tuple(math.ceil(n / self.factor) for n in size)

    def forward(self, x):
        check_spectrum(x)
        out_size = self.output_size(x.size)
        self.cache = {"size": x.size}
        y = x.__class__(self._resample(x.values, x.size, x.norm), out_size, x.norm)
        if x.stored is not None:
            # The input was kept by an earlier layer: whoever keeps this output recomputes it from
            # that copy in backward instead of storing a second, downsampled one.
            size, norm = x.size, x.norm         # not x itself: the closure must not hold its values
            y.stored = DerivedStored(lambda X: self._resample(X, size, norm), x.stored)
        return y

    def _through_space(self, size):
        """Alias with a factor that does not divide the size goes through the spatial domain."""
        return self.mode == "alias" and bool(size[0] % self.factor or size[1] % self.factor)

    def _resample(self, X, size, norm):
        """The output values for input values X (B, C, P, H) of spatial ``size``."""
        xp = array_module(X)
        out_size = self.output_size(size)
        if self.prefilter == "box":
            X = X * _box_response(size, self.factor, xp, X.dtype)
        if self._through_space(size):
            y = fft.irfft2(X, size, norm)[..., :: self.factor, :: self.factor]
            return fft.rfft2(y, out_size, norm)
        R, Rf, Ca, Cb = _matrices(size, out_size, self.mode, self.factor, xp, X.dtype)
        s = fft.resample_scale(size, out_size, norm)
        return s * (R @ X @ Ca + Rf @ xp.conj(X) @ Cb)

    def backward(self, dy):
        (size,) = self._need_cache("size")
        xp = check_spectrum(dy, "dy")
        out_size, dY = dy.size, dy.values
        if self._through_space(size):
            dy_spatial = fft.rfft2_adjoint(dY, out_size, dy.norm)
            dx = xp.zeros(dY.shape[:2] + tuple(size), dtype=dy_spatial.dtype)
            dx[..., :: self.factor, :: self.factor] = dy_spatial
            dX = fft.irfft2_adjoint(dx, size, dy.norm)
        else:
            R, Rf, Ca, Cb = _matrices(size, out_size, self.mode, self.factor, xp, dY.dtype)
            s = fft.resample_scale(size, out_size, dy.norm)
            dX = s * (R.T @ dY @ Ca.T + xp.conj(Rf.T @ dY @ Cb.T))
        if self.prefilter == "box":
            dX = dX * xp.conj(_box_response(size, self.factor, xp, dY.dtype))
        return dy.__class__(dX, size, dy.norm)

    def __repr__(self):
        return f"SpectralDownsample(factor={self.factor}, mode={self.mode!r}, prefilter={self.prefilter!r})"


def _axis_matrix(n, n_out, mode, factor):
    """M[j, i] = 1 where input frequency index i contributes to output index j (full axis)."""
    m = np.zeros((n_out, n))
    if mode == "alias":
        for j in range(n_out):
            m[j, j::n_out] = 1.0
        return m
    for j in range(n_out):
        nu = j if j < (n_out + 1) // 2 else j - n_out
        m[j, nu % n] += 1.0
        if n_out % 2 == 0 and j == n_out // 2 and (-nu) % n != nu % n:
            m[j, (-nu) % n] += 1.0                  # Nyquist bin: +nu folds in too
    return m


def _matrices(size, out_size, mode, factor, xp, dtype):
    (p, q), (p_out, q_out) = size, out_size
    R = _axis_matrix(p, p_out, mode, factor)
    Rf = R[:, (-np.arange(p)) % p]
    full_cols = _axis_matrix(q, q_out, mode, factor)[: fft.half_width(q_out)]   # (H_out, Q)
    h = fft.half_width(q)
    Ca = full_cols[:, :h].T                                  # stored columns c <= Q//2
    Cb = np.zeros((h, full_cols.shape[0]))
    for c in range(h, q):                                    # c > Q//2 is conj of column Q - c
        Cb[q - c] += full_cols[:, c]
    return tuple(xp.asarray(a, dtype=dtype) for a in (R, Rf, Ca, Cb))


def _box_response(size, factor, xp, dtype):
    """D[nu, mu] = d_P(nu) d_Q(mu), d_n(nu) = mean over a < f of exp(+2 pi i nu a / n)."""
    p, q = size
    a = np.arange(factor)
    rows = np.exp(2j * np.pi * np.outer(np.arange(p), a) / p).mean(axis=1)
    cols = np.exp(2j * np.pi * np.outer(np.arange(fft.half_width(q)), a) / q).mean(axis=1)
    return xp.asarray(np.outer(rows, cols), dtype=dtype)
