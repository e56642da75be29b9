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

import os

import numpy as np

from .backend import array_module

NORMS = ("backward", "ortho", "forward")
DEFAULT_NORM = "ortho"
_DUAL = {"backward": "forward", "ortho": "ortho", "forward": "backward"}
_WORKERS = os.cpu_count() or 1


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

        return (lambda a, s, norm: sfft.rfft2(a, s=s, norm=norm, workers=_WORKERS),
                lambda a, s, norm: sfft.irfft2(a, s=s, norm=norm, workers=_WORKERS))
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
    freq_major = kernel_spectrum_frequency_major(kernels, size)          # (F, C, O)
    return freq_major.transpose(2, 1, 0).reshape(o, c, size[0], half_width(size[1]))


def kernel_spectrum_frequency_major(kernels, size):
    """K as (P*H, C, O): K[f, c, o] = sum_(a,b) E[(a, b), f] w[o, c, a, b], one matrix product.

    E[(a, b), (p, h)] = exp(-2 pi i (p a / P + h b / Q)); for k*k << P*Q this costs far less
    than one FFT per kernel, and it lands directly in the layout the channel products use.
    """
    o, c, k, _ = kernels.shape
    dft = _kernel_dft(kernels, k, size)                                   # (k*k, F)
    flat = kernels.transpose(2, 3, 1, 0).reshape(k * k, c * o).astype(dft.dtype)
    return (dft.T @ flat).reshape(-1, c, o)


def kernel_spectrum_adjoint(spectrum_grad, kernel_size, size):
    """Adjoint of :func:`kernel_spectrum`: (O, C, P, H) -> dw (O, C, k, k)."""
    o, c = spectrum_grad.shape[:2]
    freq_major = spectrum_grad.reshape(o, c, -1).transpose(2, 0, 1)      # (F, O, C)
    return kernel_spectrum_adjoint_frequency_major(freq_major, kernel_size, size)


def kernel_spectrum_adjoint_frequency_major(grad_freq_major, kernel_size, size):
    """dw[o, c, a, b] = Re(sum_f conj(E[(a, b), f]) G[f, o, c]) for G (F, O, C)."""
    f, o, c = grad_freq_major.shape
    k = kernel_size
    dft = _kernel_dft(grad_freq_major, k, size)
    dw = (dft.conj() @ grad_freq_major.reshape(f, o * c)).real          # (k*k, O*C)
    return dw.reshape(k, k, o, c).transpose(2, 3, 0, 1).copy()


_DFT_CACHE = {}


def _kernel_dft(like, k, size):
    """E (k*k, P*H) on ``like``'s device in its complex precision, cached."""
    xp = array_module(like)
    dtype = complex_dtype(like.real.dtype if xp.iscomplexobj(like) else like.dtype)
    key = (xp.__name__, k, tuple(size), np.dtype(dtype).str)
    if key not in _DFT_CACHE:
        p, q = size
        a = np.arange(k)
        rows = np.exp(-2j * np.pi * np.outer(a, np.arange(p)) / p)                # (k, P)
        cols = np.exp(-2j * np.pi * np.outer(a, np.arange(half_width(q))) / q)    # (k, H)
        dft = np.einsum("ap,bh->abph", rows, cols).reshape(k * k, -1)
        _DFT_CACHE[key] = xp.asarray(dft, dtype=dtype)
    return _DFT_CACHE[key]


def complex_dtype(real_dtype):
    """complex64 for float32 (and smaller), complex128 for float64."""
    return np.result_type(real_dtype, np.complex64)
