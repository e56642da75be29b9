"""The Spec block's elementwise steps, one array-generic entry point each:

    threshold(Y, beta)            -> (Z, mask):  mask = |Y| > beta,  Z = where(mask, Y, 0)
    split_tanh(Y)                 -> Z = tanh(Re Y) + i tanh(Im Y)
    split_tanh_backward(dZ, Z)    -> dY = Re(dZ) (1 - Re(Z)^2) + i Im(dZ) (1 - Im(Z)^2)
                                     [times (Z != 0) with mask_zeros=True]
    threshold_tanh_count(Y, beta) -> (split_tanh(threshold(Y, beta)[0]), count_nonzero of it)

Y, dZ and Z are complex64 or complex128; every output has the dtype and the memory layout of the
first input (order "K"), so a frequency-major spectrum stays frequency-major. beta is compared in
Y's real precision (as NumPy does with a Python float and a float32 ``|Y|``).

CuPy arrays go to the fused one-pass kernels of :mod:`specref_gpu.kernels`. NumPy arrays get
NumPy written without temporaries: the split tanh and its backward act on the float view of the
interleaved (re, im) pairs, one contiguous real array, so tanh(re) and tanh(im) are one
vectorized call. numba, where it imports (optional; imported on first use; ``SPECREF_NUMBA=0``
turns it off), runs the threshold (complex64) and the backward, where it measured faster; its
split tanh lost (its scalar tanh does not vectorize). Figures: :func:`print_benchmark`.
numba's threshold compares |Y| computed in double precision and rounded to float32 with beta;
NumPy's complex64 abs rounds differently, so the masks may differ for |Y| within a few float32
ulps of beta (the kink, which tests and the paper's gradient convention stay away from).
The NumPy threshold multiplies Y by the mask (faster than numpy.where): the same for finite Y;
a NaN below beta stays NaN there, where numba and CuPy give 0.
"""
from __future__ import annotations

import os
from types import SimpleNamespace

import numpy as np

from .backend import array_module

_numba_kernels = None            # SimpleNamespace of compiled kernels; False where numba is off


def threshold(values, beta):
    """(Z, mask): ``mask = abs(Y) > beta`` (bool), ``Z = where(mask, Y, 0)``."""
    xp = _check(values, "values")
    beta = float(beta)
    if xp is not np:
        return _gpu().threshold(values, beta)
    if values.dtype == np.complex64 and _memory_order(values) is not None and _numba():
        return _threshold_numba(values, beta)
    return _threshold_numpy(values, beta)


def split_tanh(values):
    """``tanh(Y.real) + 1j * tanh(Y.imag)`` in Y's dtype."""
    xp = _check(values, "values")
    if xp is not np:
        return _gpu().split_tanh(values)
    order = _memory_order(values)
    if order is None:
        values, order = np.ascontiguousarray(values), tuple(range(values.ndim))
    out, out_flat = _empty_in_order(values.shape, values.dtype, order)
    np.tanh(_flat(values, order).view(_real(values)), out=out_flat.view(_real(values)))
    return out


def split_tanh_backward(grad, out, mask_zeros=False):
    """dY from dZ = ``grad`` and the kept output Z = ``out`` of :func:`split_tanh`:

    ``dY = grad.real * (1 - out.real**2) + 1j * grad.imag * (1 - out.imag**2)``, in grad's dtype
    and layout; with ``mask_zeros``, also ``dY[out == 0] = 0`` (the threshold's mask, read from Z).
    """
    _check(grad, "grad")
    _check(out, "out")
    xp = array_module(grad, out)                      # TypeError on mixed host/device arrays
    if tuple(out.shape) != tuple(grad.shape):
        raise ValueError(f"out must have grad's shape {tuple(grad.shape)}, got {tuple(out.shape)}")
    out = out.astype(grad.dtype, copy=False)
    if xp is not np:
        return _gpu().split_tanh_backward(grad, out, mask_zeros)
    order = _memory_order(grad)
    if order is None:
        grad, order = np.ascontiguousarray(grad), tuple(range(grad.ndim))
    dx, dx_flat = _empty_in_order(grad.shape, grad.dtype, order)
    z_flat = np.ascontiguousarray(out.transpose(order)).reshape(-1)   # a view when laid out alike
    fused = _numba()
    if fused:
        fused.backward(_flat(grad, order), z_flat, _real(grad).type(1), bool(mask_zeros), dx_flat)
    else:
        _backward_numpy(_flat(grad, order), z_flat, mask_zeros, dx_flat)
    return dx


def threshold_tanh_count(values, beta):
    """(Z, count): ``Z = split_tanh(threshold(Y, beta)[0])``, ``count = count_nonzero(Z)`` as a 0-d
    int64 array on Y's device (one fused pass on CuPy; reading it there is a sync)."""
    xp = _check(values, "values")
    if xp is not np:
        return _gpu().threshold_tanh_count(values, float(beta))
    z = split_tanh(threshold(values, beta)[0])
    return z, np.asarray(np.count_nonzero(z), dtype=np.int64)


# --- NumPy and numba paths ------------------------------------------------------------------
def _threshold_numpy(values, beta):
    mask = np.abs(values) > _real(values).type(beta)
    return np.multiply(values, mask), mask


def _threshold_numba(values, beta):
    order = _memory_order(values)
    out, out_flat = _empty_in_order(values.shape, values.dtype, order)
    mask, mask_flat = _empty_in_order(values.shape, np.bool_, order)
    _numba().threshold(_flat(values, order), np.float32(beta), out_flat, mask_flat)
    return out, mask


def _backward_numpy(grad_flat, out_flat, mask_zeros, dx_flat):
    """The backward on flat arrays laid out alike, through their real (re, im) views."""
    real = _real(grad_flat)
    d, z = dx_flat.view(real), out_flat.view(real)
    np.multiply(z, z, out=d)
    np.subtract(1, d, out=d)
    np.multiply(grad_flat.view(real), d, out=d)
    if mask_zeros:
        dx_flat[out_flat == 0] = 0


def _numba():
    """The compiled numba kernels, or None (numba missing or SPECREF_NUMBA=0)."""
    global _numba_kernels
    if _numba_kernels is None:
        _numba_kernels = False
        if os.environ.get("SPECREF_NUMBA", "1") != "0":
            try:
                _numba_kernels = _compile_numba()
            except ImportError:
                pass
    return _numba_kernels or None


def _compile_numba():
    import math

    import numba

    @numba.njit(nogil=True)
    def threshold_kernel(values, beta, out, mask):       # flat complex64, float32, complex64, bool
        for i in range(values.size):
            v = values[i]
            re, im = np.float64(v.real), np.float64(v.imag)
            keep = np.float32(math.sqrt(re * re + im * im)) > beta
            mask[i] = keep
            out[i] = v if keep else 0

    @numba.njit(nogil=True)
    def backward_kernel(grad, out, one, mask_zeros, dx):  # one: 1 in the real dtype
        for i in range(grad.size):
            g, u = grad[i], out[i]
            if mask_zeros and u.real == 0 and u.imag == 0:
                dx[i] = 0
            else:
                dx[i] = complex(g.real * (one - u.real * u.real), g.imag * (one - u.imag * u.imag))

    return SimpleNamespace(threshold=threshold_kernel, backward=backward_kernel)


# --- layout helpers ---------------------------------------------------------------------------
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


def _gpu():
    from specref_gpu import kernels

    return kernels


# --- the measurement behind the numba choice (print_benchmark) --------------------------------
def _benchmark(shape=(32, 64, 34, 18), rounds=30, warmup=3):
    """Round-robin medians (ms; time.perf_counter; one process) of each candidate on a
    frequency-major complex64 spectrum of ``shape``: NumPy as written here, the formulas as
    ComplexActivation and the old Threshold wrote them, and numba (where it imports; its split
    tanh is written here only to be measured)."""
    import time

    rng = np.random.default_rng(0)
    b, c, p, h = shape
    draw = lambda: (rng.standard_normal((p, h, b, c)) + 1j * rng.standard_normal((p, h, b, c)))  # noqa: E731
    y = draw().astype(np.complex64).transpose(2, 3, 0, 1)
    dz = draw().astype(np.complex64).transpose(2, 3, 0, 1)
    z = split_tanh(_threshold_numpy(y, 1.0)[0])
    order = _memory_order(y)
    flat = lambda a: _flat(a, order)  # noqa: E731
    empty = lambda: np.empty(y.size, y.dtype)  # noqa: E731
    candidates = {
        "threshold/numpy (Y * mask)": lambda: _threshold_numpy(y, 1.0),
        "threshold/numpy.where": lambda: np.where(np.abs(y) > np.float32(1), y, 0),
        "split_tanh/numpy (real view)": lambda: split_tanh(y),
        "split_tanh/generic formula": lambda: np.tanh(y.real) + 1j * np.tanh(y.imag),
        "backward/numpy (real view)": lambda: _backward_numpy(flat(dz), flat(z), False, empty()),
        "backward/generic formula": lambda: dz.real * (1 - z.real * z.real) + 1j * (dz.imag * (1 - z.imag * z.imag)),
    }
    fused = _numba()
    if fused:
        import numba

        @numba.njit(nogil=True)
        def tanh_kernel(values, out):
            for i in range(values.size):
                out[i] = complex(np.tanh(values[i].real), np.tanh(values[i].imag))

        one = np.float32(1)
        candidates["threshold/numba"] = lambda: _threshold_numba(y, 1.0)
        candidates["split_tanh/numba"] = lambda: tanh_kernel(flat(y), empty())
        candidates["backward/numba"] = lambda: fused.backward(flat(dz), flat(z), one, False, empty())
    times = {name: [] for name in candidates}
    for round_ in range(warmup + rounds):
        for name, run in candidates.items():
            start = time.perf_counter()
            run()
            if round_ >= warmup:
                times[name].append((time.perf_counter() - start) * 1e3)
    return {name: float(np.median(t)) for name, t in sorted(times.items())}


def print_benchmark():
    """``python -c "from specref import kernels; kernels.print_benchmark()"``"""
    print(f"round-robin medians, (32, 64, 34, 18) complex64, {os.cpu_count()} CPUs:")
    for name, ms in _benchmark().items():
        print(f"  {name:44s} {ms:7.2f} ms")
