"""SpectralDownsample: pooling as downsampling in the spectral domain.

Both modes are linear maps Y = s * R X_full C (R, C: 0/1 matrices picking and summing
frequencies along each axis; s = fft.resample_scale keeps spatial values). In the half layout
the full columns beyond Q//2 are conjugates of stored ones with the rows flipped, so

    Y = s * (R X Ca + Rf conj(X) Cb),        dX = s * (R^T dY Ca^T + conj(Rf^T dY Cb^T))

The matrices are the specification; they are applied as copies and sums of rectangular blocks
(each 0/1 matrix splits into runs of +-1 diagonals, :func:`_runs`), which on a frequency-major
spectrum are slices of its leading axes: no matrix product, no transposed copy.

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

import functools
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
        s = fft.resample_scale(size, out_size, norm)
        plan = _plan(size, out_size, self.mode, self.factor)
        return _apply_blocks(X, plan, s, _half_shape(out_size), adjoint=False)

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
            s = fft.resample_scale(size, out_size, dy.norm)
            plan = _plan(size, out_size, self.mode, self.factor)
            dX = _apply_blocks(dY, plan, s, _half_shape(size), adjoint=True)
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


def _matrices(size, out_size, mode, factor):
    """(R, Rf, Ca, Cb) of the formula above, as host 0/1 arrays."""
    (p, q), (p_out, q_out) = size, out_size
    R = _axis_matrix(p, p_out, mode, factor)
    Rf = R[:, (-np.arange(p)) % p]
    full_cols = _axis_matrix(q, q_out, mode, factor)[: fft.half_width(q_out)]   # (H_out, Q)
    h = fft.half_width(q)
    Ca = full_cols[:, :h].T                                  # stored columns c <= Q//2
    Cb = np.zeros((h, full_cols.shape[0]))
    for c in range(h, q):                                    # c > Q//2 is conj of column Q - c
        Cb[q - c] += full_cols[:, c]
    return R, Rf, Ca, Cb


@functools.lru_cache(maxsize=256)
def _plan(size, out_size, mode, factor):
    """The blocks of Y = R X Ca + conj(Rf X Cb): a tuple of (conjugate, rows, cols), where rows
    and cols are runs (out_start, in_start, length, in_step) of R (or Rf) and of Ca^T (or Cb^T)."""
    R, Rf, Ca, Cb = _matrices(size, out_size, mode, factor)
    direct = [(False, r, c) for r in _runs(R) for c in _runs(Ca.T)]
    mirrored = [(True, r, c) for r in _runs(Rf) for c in _runs(Cb.T)]
    return tuple(direct + mirrored)


def _runs(matrix):
    """Split a 0/1 matrix M (n_out, n_in) into runs (j0, i0, length, step) with step +1 or -1:
    M = sum over runs of the entries (j0 + t, i0 + step * t), t < length, each entry once."""
    if np.any((matrix != 0) & (matrix != 1)):
        raise AssertionError("resampling matrices must hold only 0 and 1")
    left = {(int(j), int(i)) for j, i in zip(*np.nonzero(matrix))}
    runs = []
    for step in (1, -1):
        for j, i in sorted(left):
            if (j, i) not in left or (j - 1, i - step) in left:
                continue                                # not the start of a run of this step
            length = 1
            while (j + length, i + step * length) in left:
                length += 1
            if length > 1 or step == -1:
                runs.append((j, i, length, step))
                left -= {(j + t, i + step * t) for t in range(length)}
    return tuple(runs)


def _span(start, length, step):
    stop = start + step * length
    return slice(start, None if stop < 0 else stop, step)


def _half_shape(size):
    return size[0], fft.half_width(size[1])


def _apply_blocks(X, plan, scale, out_shape, adjoint):
    """s * (R X Ca + conj(Rf X Cb)), or with ``adjoint`` its adjoint, on X (B, C, P, H).

    Works on the (P, H, B, C) view, so a frequency-major input costs only block copies, and the
    result is frequency-major too (a (B, C, P', H') view of (P', H', B, C) memory).
    """
    xp = array_module(X)
    src = X.transpose(2, 3, 0, 1)
    out = xp.zeros(tuple(out_shape) + src.shape[2:], dtype=X.dtype)
    for conjugate, (rj, ri, rn, rstep), (cj, ci, cn, cstep) in plan:
        o_rows, o_cols = slice(rj, rj + rn), slice(cj, cj + cn)
        i_rows, i_cols = _span(ri, rn, rstep), _span(ci, cn, cstep)
        if adjoint:
            o_rows, i_rows, o_cols, i_cols = i_rows, o_rows, i_cols, o_cols
        block = src[i_rows, i_cols]
        out[o_rows, o_cols] += xp.conj(block) if conjugate else block
    if scale != 1:
        out *= out.real.dtype.type(scale)
    return out.transpose(2, 3, 0, 1)


_BOX_RESPONSES = {}


def _box_response(size, factor, xp, dtype):
    """D[nu, mu] = d_P(nu) d_Q(mu), d_n(nu) = mean over a < f of exp(+2 pi i nu a / n); built
    once per size, factor, device and dtype (forward, backward and every recomputation of a
    kept output use it)."""
    device = getattr(getattr(xp, "cuda", None), "Device", lambda: None)()
    key = (tuple(size), factor, xp.__name__, np.dtype(dtype).str, getattr(device, "id", None))
    if key not in _BOX_RESPONSES:
        p, q = size
        a = np.arange(factor)
        rows = np.exp(2j * np.pi * np.outer(np.arange(p), a) / p).mean(axis=1)
        cols = np.exp(2j * np.pi * np.outer(np.arange(fft.half_width(q)), a) / q).mean(axis=1)
        _BOX_RESPONSES[key] = xp.asarray(np.outer(rows, cols), dtype=dtype)
    return _BOX_RESPONSES[key]
