"""The one place where the Fourier conventions live.

Real feature maps are held as half spectra: ``rfft2`` over the last two axes, shape
(..., P, Q//2 + 1) for a P x Q spatial map. The spatial size must travel with the values
(``Spectrum.size``) because Q cannot be recovered from Q//2 + 1.

Normalization ``norm`` (default ``"ortho"``) is the ``numpy.fft`` convention:

    "backward": X = sum x e^{-i...},           x = 1/(PQ) sum X e^{+i...}
    "ortho":    X = 1/sqrt(PQ) sum x e^{-i...}  (unitary, so a threshold beta is on the same
                scale as spatial values at every size)
    "forward":  X = 1/(PQ) sum x e^{-i...}

Kernels are always transformed *unnormalized*, so that for every norm
F_norm(x (*) k) = F_norm(x) * F_backward(k)   (circular convolution theorem).

Gradients of complex arrays follow dL/dRe(z) + i dL/dIm(z) (PyTorch, JAX), taken with respect
to the stored half-spectrum values as free variables. With that convention:

    adjoint of  Z = rfft2(x, norm)   is  x_bar = irfft2(Z_bar / w, norm=dual(norm))
    adjoint of  x = irfft2(Z, norm)  is  Z_bar = w * rfft2(x_bar, norm=dual(norm))

where w = 2 on the columns that stand for two conjugate columns of the full spectrum and 1 on
the DC column and (Q even) the Nyquist column, and dual swaps "backward" and "forward".
"""
from __future__ import annotations

import functools
import os

import numpy as np

from .backend import array_module
from .batched import matmul
from .kernels import small_dft, small_dft_adjoint

NORMS = ("backward", "ortho", "forward")
DEFAULT_NORM = "ortho"
_DUAL = {"backward": "forward", "ortho": "ortho", "forward": "backward"}
# Threads of scipy.fft per transform, read at call time (specref.sweep holds it to 1 per worker).
WORKERS = os.cpu_count() or 1


def check_norm(norm):
    if norm not in NORMS:
        raise ValueError(f"fft norm must be one of {NORMS}, got {norm!r}")
    return norm


def half_width(q: int) -> int:
    """Number of stored columns of the half spectrum of a width-q map."""
    return q // 2 + 1


def _transforms(xp):
    if xp is np:
        import scipy.fft as sfft

        return (lambda a, s, norm: sfft.rfft2(a, s=s, norm=norm, workers=WORKERS),
                lambda a, s, norm: sfft.irfft2(a, s=s, norm=norm, workers=WORKERS))
    return (lambda a, s, norm: xp.fft.rfft2(a, s=s, norm=norm),
            lambda a, s, norm: xp.fft.irfft2(a, s=s, norm=norm))


def rfft2(x, size, norm=DEFAULT_NORM):
    """Half spectrum of real ``x`` (..., M, N), zero-padded at the end to ``size`` = (P, Q)."""
    forward, _ = _transforms(array_module(x))
    return forward(x, tuple(size), check_norm(norm))


def irfft2(spectrum, size, norm=DEFAULT_NORM):
    """Real map (..., P, Q) of a half spectrum (..., P, Q//2 + 1)."""
    _, inverse = _transforms(array_module(spectrum))
    return inverse(spectrum, tuple(size), check_norm(norm))


def conjugate_weights(q: int, xp=np, dtype=np.float64):
    """w over the half-spectrum columns: 1 for DC (and Nyquist when q is even), 2 elsewhere."""
    w = xp.full(half_width(q), 2.0, dtype=dtype)
    w[0] = 1.0
    if q % 2 == 0:
        w[-1] = 1.0
    return w


def rfft2_adjoint(spectrum_grad, size, norm=DEFAULT_NORM):
    """Adjoint of :func:`rfft2` at spatial size ``size`` (crop afterwards for zero padding)."""
    xp = array_module(spectrum_grad)
    w = conjugate_weights(size[1], xp, spectrum_grad.real.dtype)
    return irfft2(spectrum_grad / w, size, _DUAL[check_norm(norm)])


def irfft2_adjoint(spatial_grad, size, norm=DEFAULT_NORM):
    """Adjoint of :func:`irfft2` with output size ``size``."""
    xp = array_module(spatial_grad)
    w = conjugate_weights(size[1], xp, spatial_grad.dtype)
    return rfft2(spatial_grad, size, _DUAL[check_norm(norm)]) * w


def dc_scale(size, norm=DEFAULT_NORM) -> float:
    """DC bin of F_norm(ones(P, Q)): how a constant added in space shows in the spectrum."""
    p, q = size
    return {"backward": float(p * q), "ortho": float(np.sqrt(p * q)), "forward": 1.0}[check_norm(norm)]


def resample_scale(size_in, size_out, norm=DEFAULT_NORM) -> float:
    """Factor that keeps spatial values when a spectrum moves from size_in to size_out."""
    ratio = (size_out[0] * size_out[1]) / (size_in[0] * size_in[1])
    return {"backward": ratio, "ortho": float(np.sqrt(ratio)), "forward": 1.0}[check_norm(norm)]


def kernel_spectrum(kernels, size):
    """Unnormalized half spectrum of small kernels (O, C, k, k) zero-padded to ``size``: (O, C, P, H)."""
    o, c = kernels.shape[:2]
    freq_major = kernel_spectrum_frequency_major(kernels, size)          # (F, O, C)
    return freq_major.reshape(-1, o * c).T.reshape(o, c, size[0], half_width(size[1]))


def kernel_spectrum_frequency_major(kernels, size, conjugate=False, out=None, order="OC"):
    """K as (P*H, O, C): K[f, o, c] = sum_t E[t, f] w[o, c, t] (t = (a, b) over the k x k taps),
    or conj(K) with ``conjugate``; ``order="CO"`` lays each K[f] out as (C, O) instead. Written
    into ``out`` (C-contiguous memory of that shape) when given. One product
    (:func:`specref.kernels.small_dft` on the host, a matrix product on a GPU or without numba):

        K (F, O*C) = E^T (F, k*k) @ W^T,   W = w.reshape(O*C, k*k)
        E[(a, b), (p, h)] = exp(-2 pi i (p a / P + h b / Q))

    For k*k << P*Q this costs far less than one FFT per kernel and lands frequency-major, in the
    layout each product reads without a transposed operand (BLAS ran those 20% slower here).
    """
    o, c, k, _ = kernels.shape
    dft = _kernel_dft(kernels, k, size, conjugate)                       # (F, k*k)
    taps = kernels.reshape(o, c, k * k)
    if order == "CO":
        taps = taps.transpose(1, 0, 2)                                   # a view: (C, O, k*k)
    rows, cols = taps.shape[:2]
    flat = None if out is None else out.reshape(dft.shape[0], rows * cols)
    spectra = small_dft(dft, taps, out=flat)                             # numba, host
    if spectra is None:
        spectra = matmul(dft, taps.reshape(rows * cols, k * k).astype(dft.dtype).T, out=flat)
    return spectra.reshape(-1, rows, cols)


def kernel_spectrum_adjoint(spectrum_grad, kernel_size, size):
    """Adjoint of :func:`kernel_spectrum`: (O, C, P, H) -> dw (O, C, k, k)."""
    o, c = spectrum_grad.shape[:2]
    freq_major = spectrum_grad.reshape(o, c, -1).transpose(2, 0, 1)      # (F, O, C)
    return kernel_spectrum_adjoint_frequency_major(freq_major, kernel_size, size)


def kernel_spectrum_adjoint_frequency_major(grad_freq_major, kernel_size, size):
    """dw[o, c, t] = Re(sum_f conj(E[t, f]) G[f, o, c]) for G (F, O, C): one product
    conj(E) (k*k, F) @ G (F, O*C) (:func:`specref.kernels.small_dft_adjoint` on the host)."""
    f, o, c = grad_freq_major.shape
    k = kernel_size
    xp = array_module(grad_freq_major)
    conj_dft = _kernel_dft(grad_freq_major, k, size, conjugate=True)                # (F, k*k)
    G = xp.ascontiguousarray(grad_freq_major).reshape(f, o * c)
    dw = small_dft_adjoint(conj_dft, G)                                             # numba, host
    if dw is None:
        dw = xp.ascontiguousarray(matmul(conj_dft.T, G).real.T)
    return dw.reshape(o, c, k, k)


_DFT_CACHE = {}


def _kernel_dft(like, k, size, conjugate=False):
    """E^T (P*H, k*k) (or conj(E)^T) on ``like``'s device in its complex precision, cached."""
    xp = array_module(like)
    dtype = complex_dtype(like.real.dtype if xp.iscomplexobj(like) else like.dtype)
    key = (xp.__name__, k, tuple(size), np.dtype(dtype).str, bool(conjugate))
    if key not in _DFT_CACHE:
        dft = _host_kernel_dft(k, tuple(size))
        _DFT_CACHE[key] = xp.asarray(dft.conj() if conjugate else dft, dtype=dtype)
    return _DFT_CACHE[key]


@functools.lru_cache(maxsize=64)
def _host_kernel_dft(k, size):
    """E^T in complex128 on the host: E^T[(p, h), (a, b)] = exp(-2 pi i (p a / P + h b / Q))."""
    p, q = size
    a = np.arange(k)
    rows = np.exp(-2j * np.pi * np.outer(np.arange(p), a) / p)                # (P, k)
    cols = np.exp(-2j * np.pi * np.outer(np.arange(half_width(q)), a) / q)    # (H, k)
    return np.einsum("pa,hb->phab", rows, cols).reshape(-1, k * k)


def complex_dtype(real_dtype):
    """complex64 for float32 (and smaller), complex128 for float64."""
    return np.result_type(real_dtype, np.complex64)
