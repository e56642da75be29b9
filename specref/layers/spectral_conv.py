"""SpectralConv2d: convolution as a per-frequency product of spectra (paper eq. (2)).

Forward, for input spectrum X (B, C, P, H) and spatial kernels w (O, C, k, k):

    K[o, c] = rfft2(w[o, c] zero-padded to P x Q, norm="backward")      (fft.kernel_spectrum)
    Y[b, o] = sum_c X[b, c] * K[o, c]  +  bias[o] * dc_scale * delta(p, h = 0)

which is F_norm of the true convolution y = x (*) w of eq. (1): *linear* for a spatial input
(zero-padded to P = M + k - 1, Q = N + k - 1), *circular* at the input's own size for a Spectrum.
The sum over channels is one batched matrix product over the P*H frequencies.

Backward (dL/dRe + i dL/dIm convention):

    dX[b, c] = sum_o conj(K[o, c]) dY[b, o]
    dK[o, c] = sum_b conj(X[b, c]) dY[b, o];   dw = kernel_spectrum_adjoint(dK)
    dbias[o] = dc_scale * Re(sum_b dY[b, o, 0, 0])

The kernel spectra are recomputed in backward from w (cheap, and far smaller to keep than K);
so is the spectrum of a spatial input: the real M x N map is kept, not its larger padded
(M+k-1) x (N+k-1)/2 complex spectrum.
Outputs are (B, C, P, H) views of frequency-major memory (P, H, B, C): the per-frequency
products then need no transposes, and elementwise layers after this one keep that layout.
K is built in the layout each product reads ((F, C, O) forward, conj K as (F, O, C) backward) in
one scratch buffer (:mod:`specref.workspace`); backward makes dK and dw first, then conj K and
dX in the same buffer, and skips those two with ``input_grad=False`` (a network's first layer).
stride s > 1 is stride-1 convolution followed by SpectralDownsample(s, "alias").
"""
from __future__ import annotations

import numpy as np

from .. import fft
from ..backend import array_module
from ..batched import batched_matmul
from ..spectrum import Spectrum
from ..storage import get_codec
from ..workspace import scratch
from .base import Layer, check_float_dtype, check_positive_int, check_spatial, make_rng
from .downsample import SpectralDownsample


class SpectralConv2d(Layer):
    skips_input_grad = True          # backward(dy, input_grad=False) sets grads, returns None

    def __init__(self, in_channels, out_channels, kernel_size, bias=True, stride=1,
                 dtype=np.float32, fft_norm=fft.DEFAULT_NORM, rng=None):
        super().__init__()
        self.in_channels = check_positive_int(in_channels, "in_channels")
        self.out_channels = check_positive_int(out_channels, "out_channels")
        self.kernel_size = check_positive_int(kernel_size, "kernel_size")
        self.stride = check_positive_int(stride, "stride")
        self.dtype = check_float_dtype(dtype)
        self.fft_norm = fft.check_norm(fft_norm)
        rng = make_rng(rng)
        bound = 1.0 / np.sqrt(in_channels * kernel_size * kernel_size)
        shape = (out_channels, in_channels, kernel_size, kernel_size)
        self.params["weight"] = rng.uniform(-bound, bound, shape).astype(self.dtype)
        if bias:
            self.params["bias"] = rng.uniform(-bound, bound, out_channels).astype(self.dtype)
        self.downsample = SpectralDownsample(self.stride, "alias") if self.stride > 1 else None

    def forward(self, x):
        spatial_shape = None
        if isinstance(x, Spectrum):
            X, size, norm, kept = x.values, x.size, x.norm, x
            self._check_dtype(X.real.dtype, "x")
        else:
            check_spatial(x)
            self._check_dtype(x.dtype, "x")
            spatial_shape = tuple(x.shape[-2:])
            k = self.kernel_size
            size = (x.shape[-2] + k - 1, x.shape[-1] + k - 1)
            norm = self.fft_norm
            X = fft.rfft2(x, size, norm)
            kept = x      # the real map is smaller than its padded spectrum: backward re-transforms it
        self._check_channels(X.shape[1])
        self._check_kernel_fits(size)
        xp = array_module(X, self.params["weight"])
        kernels = fft.kernel_spectrum_frequency_major(
            self.params["weight"], size, order="CO",
            out=self._scratch("kernel_spectra", size, X, (self.in_channels, self.out_channels)))  # (F, C, O)
        Y = _spectrum_view(batched_matmul(_frequency_major(X, xp), kernels), size)
        if "bias" in self.params:
            Y[:, :, 0, 0] += self.params["bias"] * fft.dc_scale(size, norm)
        self.cache = {"size": size, "norm": norm, "spatial_shape": spatial_shape}
        if spatial_shape is None:
            self.keep("X", kept)
        else:   # a real input map has no zeros to drop: any sparse codec would only add indices
            self.cache["X"] = get_codec("dense").encode(kept)
        out = Spectrum(Y, size, norm)
        return self.downsample.forward(out) if self.downsample is not None else out

    def backward(self, dy, input_grad=True):
        """dx (a Spectrum, or an array for a spatial input), with grads set; ``input_grad=False``
        sets the grads only and returns None (a network's first layer: nobody reads dx)."""
        if self.downsample is not None:
            dy = self.downsample.backward(dy)
        size, norm, spatial_shape = self._need_cache("size", "norm", "spatial_shape")
        X = self.kept("X")
        if spatial_shape is not None:
            X = fft.rfft2(X, size, norm)
        dY = dy.values
        xp = array_module(dY, X)
        dYf = _frequency_major(dY, xp)                                               # (F, B, O)
        conj_X = xp.conjugate(_frequency_major(X, xp), out=self._scratch("conj_input", size, dY, X.shape[:2]))
        # dK is dead once dw is made: the conj(K) below reuses its scratch (one buffer, not two)
        dK = batched_matmul(dYf.transpose(0, 2, 1), conj_X,
                            out=self._scratch("kernel_spectra", size, dY))                   # (F, O, C)
        dw = fft.kernel_spectrum_adjoint_frequency_major(dK, self.kernel_size, size)
        self.grads["weight"] = dw.astype(self.dtype, copy=False)
        if "bias" in self.params:
            dc = dY[:, :, 0, 0].real.sum(axis=0) * fft.dc_scale(size, norm)
            self.grads["bias"] = dc.astype(self.dtype)
        if not input_grad:
            return None
        conj_kernels = fft.kernel_spectrum_frequency_major(self.params["weight"], size, conjugate=True,
                                                           out=self._scratch("kernel_spectra", size, dY))
        dX = _spectrum_view(batched_matmul(dYf, conj_kernels), size)                 # conj K (F, O, C)
        if spatial_shape is None:
            return Spectrum(dX, size, norm)
        return fft.rfft2_adjoint(dX, size, norm)[..., : spatial_shape[0], : spatial_shape[1]]

    def _scratch(self, name, size, like, rows_cols=None):
        """(F, O, C) complex scratch (:mod:`specref.workspace`), or (F, *rows_cols): kernel spectra
        and their gradient are as large as 31 MB a layer and live only inside one call."""
        rows_cols = rows_cols or (self.out_channels, self.in_channels)
        shape = (size[0] * fft.half_width(size[1]), *rows_cols)
        return scratch(name, shape, fft.complex_dtype(self.dtype), like)

    def _check_dtype(self, dtype, name):
        if np.dtype(dtype) != self.dtype:
            raise TypeError(f"{name} has dtype {np.dtype(dtype)} but this layer's dtype is {self.dtype}"
                            f" (complex {fft.complex_dtype(self.dtype)} for a Spectrum)")

    def _check_channels(self, channels):
        if channels != self.in_channels:
            raise ValueError(f"x has {channels} channels, expected in_channels={self.in_channels}")

    def _check_kernel_fits(self, size):
        if self.kernel_size > min(size):
            raise ValueError(f"kernel_size={self.kernel_size} is larger than the FFT size {size}")

    def __repr__(self):
        return (f"SpectralConv2d({self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}"
                f", stride={self.stride}, bias={'bias' in self.params})")


def _frequency_major(A, xp):
    """(B, C, P, H) -> (P*H, B, C), one small matrix per frequency.

    Free (a view) when A is already stored frequency-major, as every spectrum this layer
    returns is; a copy otherwise (e.g. straight out of rfft2).
    """
    b, c, p, h = A.shape
    return xp.ascontiguousarray(A.transpose(2, 3, 0, 1)).reshape(p * h, b, c)


def _spectrum_view(freq_major, size):
    """(P*H, B, C) contiguous -> a (B, C, P, H) view of the same memory (no copy)."""
    f, b, c = freq_major.shape
    return freq_major.reshape(size[0], f // size[0], b, c).transpose(2, 3, 0, 1)
