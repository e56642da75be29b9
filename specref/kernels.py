"""The Spec block's elementwise steps (and the small DFT of its kernels), one entry point each:

    threshold(Y, beta)            -> (Z, mask):  mask = |Y| > beta,  Z = where(mask, Y, 0)
                                     (with_mask=False: (Z, None), the mask is not written)
    split_tanh(Y)                 -> Z = tanh(Re Y) + i tanh(Im Y)
    split_tanh_backward(dZ, Z)    -> dY = Re(dZ) (1 - Re(Z)^2) + i Im(dZ) (1 - Im(Z)^2)
                                     [times (Z != 0) with mask_zeros=True]
    where_nonzero(dY, Z)          -> dY * (Z != 0)   (a threshold's backward, mask read from Z)
    threshold_tanh_count(Y, beta) -> (split_tanh(threshold(Y, beta)[0]), count_nonzero of it)
    small_dft(E, w)               -> K = E @ w.T for complex E (F, T), real w (N, T): the
                                     kernel spectra of specref.fft (host only; None without numba)
    small_dft_adjoint(conj E, G)  -> dw = Re(G.T @ conj E), its adjoint (same)
    sgd_momentum(p, g, v, ...)    -> the SGD update of specref.optim in one pass (same)

Y, dZ and Z are complex64 or complex128; every output has the dtype and the memory layout of the
first input (order "K"), so a frequency-major spectrum stays frequency-major. beta is compared in
Y's real precision (as NumPy does with a Python float and a float32 ``|Y|``).

CuPy arrays go to the fused one-pass kernels of :mod:`specref_gpu.kernels`. On the host, numba
(a dependency; compiled on first use and cached on disk; the code is in
:mod:`specref.numba_kernels`) runs the threshold, the backward, ``where_nonzero``, the kernel
spectra and the SGD update as one pass each, split over the thread pool of
:mod:`specref.batched`: faster than NumPy (``specref bench kernels``). The split tanh stays
NumPy's vectorized tanh on the float view of the interleaved (re, im) pairs, split over the same
pool, since numba's scalar tanh does not vectorize. The NumPy formulas here are the fallback
(``SPECREF_NUMBA=0``, or numba failing to import) and the reference the tests hold numba to.
numba's threshold compares |Y| computed in double precision and rounded to float32 with beta;
NumPy's complex64 abs rounds differently, so the masks may differ for |Y| within a few float32
ulps of beta (the kink, which tests and the paper's gradient convention stay away from).
The NumPy threshold multiplies Y by the mask (faster than numpy.where): the same for finite Y;
a NaN below beta stays NaN there, where numba and CuPy give 0.
"""
from __future__ import annotations

import os
import warnings

import numpy as np

from .backend import array_module
from .batched import parallel_ranges

_numba_kernels = None            # numba_kernels.compile_kernels(); False where numba is off


def threshold(values, beta, with_mask=True):
    """(Z, mask): ``mask = abs(Y) > beta`` (bool), ``Z = where(mask, Y, 0)``; mask None when
    ``with_mask`` is False."""
    xp = _check(values, "values")
    beta = float(beta)
    if xp is not np:
        out, mask = _gpu().threshold(values, beta)
        return out, mask if with_mask else None
    order = _memory_order(values)
    fused = _numba()
    if values.dtype == np.complex64 and order is not None and fused:
        out, out_flat = _empty_in_order(values.shape, values.dtype, order)
        mask, mask_flat = (_empty_in_order(values.shape, np.bool_, order) if with_mask
                           else (None, np.empty(0, np.bool_)))
        src, beta32 = _flat(values, order), np.float32(beta)
        parallel_ranges(lambda lo, hi: fused.threshold(
            src[lo:hi], beta32, out_flat[lo:hi], mask_flat[lo:hi], with_mask), src.size)
        return out, mask
    out, mask = _threshold_numpy(values, beta)
    return out, mask if with_mask else None


def split_tanh(values):
    """``tanh(Y.real) + 1j * tanh(Y.imag)`` in Y's dtype."""
    xp = _check(values, "values")
    if xp is not np:
        return _gpu().split_tanh(values)
    order = _memory_order(values)
    if order is None:
        values, order = np.ascontiguousarray(values), tuple(range(values.ndim))
    out, out_flat = _empty_in_order(values.shape, values.dtype, order)
    src, dst = _flat(values, order).view(_real(values)), out_flat.view(_real(values))
    parallel_ranges(lambda lo, hi: np.tanh(src[lo:hi], out=dst[lo:hi]), src.size)
    return out


def split_tanh_backward(grad, out, mask_zeros=False):
    """dY from dZ = ``grad`` and the kept output Z = ``out`` of :func:`split_tanh`:

    ``dY = grad.real * (1 - out.real**2) + 1j * grad.imag * (1 - out.imag**2)``, in grad's dtype
    and layout; with ``mask_zeros``, also ``dY[out == 0] = 0`` (the threshold's mask, read from Z).
    """
    xp = _check_pair(grad, out)
    out = out.astype(grad.dtype, copy=False)
    if xp is not np:
        return _gpu().split_tanh_backward(grad, out, mask_zeros)
    grad, dx, dx_flat, grad_flat, z_flat = _pair_layout(grad, out)
    fused = _numba()
    if z_flat is None:                     # Z laid out otherwise (decoded by a sparse codec)
        _backward_strided(grad, out, mask_zeros, dx)
    elif fused:
        one, mask_zeros = _real(grad).type(1), bool(mask_zeros)
        parallel_ranges(lambda lo, hi: fused.backward(
            grad_flat[lo:hi], z_flat[lo:hi], one, mask_zeros, dx_flat[lo:hi]), grad_flat.size)
    else:
        _backward_numpy(grad_flat, z_flat, mask_zeros, dx_flat)
    return dx


def where_nonzero(grad, kept):
    """``grad * (kept != 0)`` in grad's dtype and layout: a threshold's backward, its mask read
    from the map the next layer kept (non-zero exactly where the threshold passed)."""
    xp = _check_pair(grad, kept, ("grad", "kept"))
    if xp is not np:
        return xp.where(kept != 0, grad, xp.zeros((), grad.dtype))
    grad, dx, dx_flat, grad_flat, kept_flat = _pair_layout(grad, kept)
    fused = _numba()
    if kept_flat is None:
        np.multiply(grad, kept != 0, out=dx)
    elif fused and kept_flat.dtype == grad_flat.dtype:
        parallel_ranges(lambda lo, hi: fused.where_nonzero(
            grad_flat[lo:hi], kept_flat[lo:hi], dx_flat[lo:hi]), grad_flat.size)
    else:
        np.multiply(grad_flat, kept_flat != 0, out=dx_flat)
    return dx


def threshold_tanh_count(values, beta):
    """(Z, count): ``Z = split_tanh(threshold(Y, beta)[0])``, ``count = count_nonzero(Z)`` as a 0-d
    int64 array on Y's device (one fused pass on CuPy; reading it there is a sync)."""
    xp = _check(values, "values")
    if xp is not np:
        return _gpu().threshold_tanh_count(values, float(beta))
    z = split_tanh(threshold(values, beta, with_mask=False)[0])
    return z, np.asarray(np.count_nonzero(z), dtype=np.int64)


def small_dft(dft, taps, out=None):
    """K (F, A*B) complex, K[f, a*B + b] = sum_t dft[f, t] taps[a, b, t], for real ``taps``
    (A, B, T) of any strides: the spectra of A*B small kernels of T taps each (T = k*k), in the
    order (a, b) of the first two axes (so w (O, C, T) viewed as (C, O, T) gives K in (C, O)
    order without a copy of w), written once (into ``out``, C-contiguous, when given), or None
    where numba is off (the caller then runs the matrix product). Host arrays only. The product
    has only T = 9 terms to sum per output and spends its time packing operands: for the 13
    layers of Spec-VGG-16 this took 24 ms against its 67 (``specref bench kernels``)."""
    fused = _numba()
    if fused is None or array_module(dft, taps) is not np:
        return None
    count = taps.shape[0] * taps.shape[1]
    if out is None:
        out = np.empty((dft.shape[0], count), dtype=dft.dtype)
    kernel = fused.small_dft_9 if dft.shape[1] == 9 else fused.small_dft
    parallel_ranges(lambda lo, hi: kernel(dft, taps, lo, hi, out), count, 1 << 10)
    return out


def sgd_momentum(param, grad, velocity, lr, momentum, weight_decay):
    """In place, in one pass: ``d = grad + weight_decay * param``, ``velocity = momentum * velocity
    + d``, ``param -= lr * velocity`` (each step rounded as NumPy rounds it in the parameter's
    dtype). Returns False, touching nothing, where it does not apply (numba off, a device array,
    mixed dtypes, non-contiguous memory): the caller then runs the same formula on arrays."""
    fused = _numba()
    arrays = (param, grad, velocity)
    if fused is None or any(type(a) is not np.ndarray or a.dtype != param.dtype
                            or not a.flags.c_contiguous for a in arrays):
        return False
    real = param.dtype.type
    p, g, v = (a.reshape(-1) for a in arrays)
    parallel_ranges(lambda lo, hi: fused.sgd_momentum(p[lo:hi], g[lo:hi], v[lo:hi], real(lr), real(momentum),
                                                      real(weight_decay)), p.size, 1 << 16)
    return True


def small_dft_adjoint(conj_dft, grad):
    """dw (N, T) real = Re(grad.T @ conj_dft) for complex grad (F, N) and conj_dft (F, T): the
    adjoint of :func:`small_dft` (given conj(E)), reading grad once and writing dw in w's own
    layout; None where numba is off (32 ms against the matrix product's 73 for Spec-VGG-16's
    13 layers, ``specref bench kernels``)."""
    fused = _numba()
    if fused is None or array_module(conj_dft, grad) is not np:
        return None
    grad = np.ascontiguousarray(grad)
    out = np.empty((grad.shape[1], conj_dft.shape[1]), dtype=_real(grad))
    kernel = fused.small_dft_adjoint_9 if conj_dft.shape[1] == 9 else fused.small_dft_adjoint
    parallel_ranges(lambda lo, hi: kernel(conj_dft, grad, lo, hi, out), grad.shape[1], 1 << 10)
    return out


# --- NumPy formulas (fallback and reference) ----------------------------------------------------
def _threshold_numpy(values, beta):
    mask = np.abs(values) > _real(values).type(beta)
    return np.multiply(values, mask), mask


def _backward_numpy(grad_flat, out_flat, mask_zeros, dx_flat):
    """The backward on flat arrays laid out alike, through their real (re, im) views."""
    real = _real(grad_flat)
    d, z = dx_flat.view(real), out_flat.view(real)
    np.multiply(z, z, out=d)
    np.subtract(1, d, out=d)
    np.multiply(grad_flat.view(real), d, out=d)
    if mask_zeros:
        dx_flat[out_flat == 0] = 0


# --- numba --------------------------------------------------------------------------------------
def _numba():
    """The compiled numba kernels, or None (``SPECREF_NUMBA=0``, or numba does not import)."""
    global _numba_kernels
    if _numba_kernels is None:
        _numba_kernels = False
        if os.environ.get("SPECREF_NUMBA", "1") != "0":
            try:
                from .numba_kernels import compile_kernels

                _numba_kernels = compile_kernels()
            except Exception as exc:     # e.g. a numba built for another NumPy: fall back, say so
                warnings.warn(f"specref: numba is unavailable ({type(exc).__name__}: {exc}); "
                              "the Spec block's elementwise steps run on plain NumPy (slower)",
                              RuntimeWarning, stacklevel=3)
    return _numba_kernels or None


# --- layout helpers ---------------------------------------------------------------------------
def _pair_layout(grad, other):
    """(grad, dx, dx_flat, grad_flat, other_flat): a new dx laid out like grad, and flat views
    of all three in one memory order; other_flat is None when ``other`` is laid out otherwise
    (a copy of it into grad's order would be one more full map at the step's peak)."""
    order = _memory_order(grad)
    if order is None:
        grad, order = np.ascontiguousarray(grad), tuple(range(grad.ndim))
    dx, dx_flat = _empty_in_order(grad.shape, grad.dtype, order)
    arranged = other.transpose(order)
    other_flat = arranged.reshape(-1) if arranged.flags.c_contiguous else None
    return grad, dx, dx_flat, _flat(grad, order), other_flat


def _backward_strided(grad, out, mask_zeros, dx):
    """The backward formula through the arrays' real and imaginary views, whatever their
    layouts (NumPy iterates them in place, with no full-size copy)."""
    for part in ("real", "imag"):
        d, z, g = getattr(dx, part), getattr(out, part), getattr(grad, part)
        np.multiply(z, z, out=d)
        np.subtract(1, d, out=d)
        np.multiply(g, d, out=d)
    if mask_zeros:
        np.copyto(dx, 0, where=(out == 0))


def _memory_order(a):
    """The axis order in which ``a`` is one C-contiguous block (a tuple), or None."""
    order = tuple(sorted(range(a.ndim), key=lambda axis: -a.strides[axis]))
    return order if a.transpose(order).flags.c_contiguous else None


def _flat(a, order):
    """The 1-D view of ``a``'s memory, ``a`` being contiguous in ``order``."""
    return a.transpose(order).reshape(-1)


def _empty_in_order(shape, dtype, order):
    """(array of ``shape`` laid out contiguously in axis ``order``, its flat view)."""
    block = np.empty([shape[axis] for axis in order], dtype=dtype)
    return block.transpose(np.argsort(order)), block.reshape(-1)


def _real(a):
    return np.finfo(a.dtype).dtype


def _check(a, name):
    xp = array_module(a)
    if a.dtype not in (np.complex64, np.complex128):
        raise TypeError(f"{name} must be complex64 or complex128, got dtype {a.dtype}")
    return xp


def _check_pair(grad, other, names=("grad", "out")):
    _check(grad, names[0])
    _check(other, names[1])
    xp = array_module(grad, other)                    # TypeError on mixed host/device arrays
    if tuple(other.shape) != tuple(grad.shape):
        raise ValueError(f"{names[1]} must have {names[0]}'s shape {tuple(grad.shape)}, got {tuple(other.shape)}")
    return xp


def _gpu():
    from specref_gpu import kernels

    return kernels
