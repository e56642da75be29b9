"""Fused CuPy kernels of the Spec block: one pass over the spectrum instead of three to five.

Each function takes CuPy arrays and returns new ones laid out like its first input (order "K":
a frequency-major spectrum from SpectralConv2d stays frequency-major). The NumPy formula each
one computes is in its docstring, and :mod:`specref.kernels` runs exactly that formula on NumPy.
The kernels are ``cupy.ElementwiseKernel`` objects built on first use (importing this module
imports nothing from CuPy) and compiled by CuPy on first call, once per device and dtype
(complex64 / complex128); CuPy keeps the binaries in its kernel cache.

In the kernel sources, ``T`` is the complex type (``thrust::complex<float>`` or ``<double>``)
and ``T::value_type`` its real type: beta is cast to it before the comparison, as NumPy casts a
Python float beta to float32 when it compares a float32 ``|Y|`` with it.
"""
from __future__ import annotations

import numpy as np

# name -> (in_params, out_params, operation, extra ElementwiseKernel keyword arguments).
SOURCES = {
    "threshold": (
        "T y, float64 beta", "T z, bool mask",
        """
        const bool keep = abs(y) > static_cast<T::value_type>(beta);
        mask = keep;
        z = keep ? y : T(0);
        """, {}),
    "split_tanh": (
        "T y", "T z",
        "z = T(tanh(y.real()), tanh(y.imag()));", {}),
    "split_tanh_backward": (
        "T dz, T z, bool masked", "T dy",
        """
        const T::value_type re = z.real(), im = z.imag();
        dy = (masked && re == 0 && im == 0)
            ? T(0) : T(dz.real() * (1 - re * re), dz.imag() * (1 - im * im));
        """, {}),
    # The count: each element votes (Z != 0) in a warp-wide ballot among the lanes that are
    # active at that point, and the lowest active lane adds the ballot's popcount with one
    # atomicAdd: about one atomic per 32 elements instead of one per element. Every lane is in
    # exactly one ballot per element it handles, so the sum is exact under any warp divergence
    # (the pattern of cooperative_groups::coalesced_threads(); CuPy launches 1-D blocks, so the
    # lane is threadIdx.x & 31).
    "threshold_tanh_count": (
        "T y, float64 beta", "T z, raw uint64 count",
        """
        const bool keep = abs(y) > static_cast<T::value_type>(beta);
        const T out = keep ? T(tanh(y.real()), tanh(y.imag())) : T(0);
        z = out;
        const unsigned int active = __activemask();
        const unsigned int votes = __ballot_sync(active, out != T(0));
        if ((threadIdx.x & 31) == __ffs(active) - 1 && votes != 0) {
            atomicAdd(&count[0], (unsigned long long)__popc(votes));
        }
        """, {}),
}

_KERNELS = {}


def kernel(name):
    """The ``cupy.ElementwiseKernel`` called ``name`` (see :data:`SOURCES`), built once."""
    built = _KERNELS.get(name)
    if built is None:
        import cupy

        in_params, out_params, operation, extra = SOURCES[name]
        built = cupy.ElementwiseKernel(in_params, out_params, operation, name=f"specref_{name}", **extra)
        _KERNELS[name] = built
    return built


def threshold(values, beta):
    """(Z, mask) with ``mask = numpy.abs(Y) > beta`` and ``Z = numpy.where(mask, Y, 0)``."""
    cp = _check(values, "values")
    out = cp.empty_like(values)
    mask = cp.empty_like(values, dtype=bool)
    kernel("threshold")(values, float(beta), out, mask)
    return out, mask


def split_tanh(values):
    """``numpy.tanh(Y.real) + 1j * numpy.tanh(Y.imag)`` in Y's dtype."""
    cp = _check(values, "values")
    out = cp.empty_like(values)
    kernel("split_tanh")(values, out)
    return out


def split_tanh_backward(grad, out, mask_zeros=False):
    """dY from dZ = ``grad`` and the forward output Z = ``out`` (same shape and dtype):

    ``dY = dZ.real * (1 - Z.real**2) + 1j * dZ.imag * (1 - Z.imag**2)``, then, when
    ``mask_zeros``, ``dY * (Z != 0)`` (the threshold's mask read from Z: Z = 0 exactly where the
    threshold zeroed Y, since tanh is zero only at zero).
    """
    cp = _check(grad, "grad")
    _check(out, "out")
    _same(grad, out)
    dx = cp.empty_like(grad)
    kernel("split_tanh_backward")(grad, out, bool(mask_zeros), dx)
    return dx


def threshold_tanh_count(values, beta):
    """(Z, count): ``Z = split_tanh(threshold(Y, beta)[0])`` and ``count = numpy.count_nonzero(Z)``
    in one pass; ``count`` is a 0-d int64 array on the device (reading it is a sync)."""
    cp = _check(values, "values")
    out = cp.empty_like(values)
    counter = cp.zeros(1, dtype=cp.uint64)
    kernel("threshold_tanh_count")(values, float(beta), out, counter)
    return out, counter.view(cp.int64)[0]


def _check(a, name):
    import cupy

    if not isinstance(a, cupy.ndarray):
        raise TypeError(f"{name} must be a cupy.ndarray, got {type(a).__module__}.{type(a).__name__}")
    if a.dtype not in (np.complex64, np.complex128):
        raise TypeError(f"{name} must be complex64 or complex128, got dtype {a.dtype}")
    return cupy


def _same(a, b):
    if a.shape != b.shape or a.dtype != b.dtype:
        raise ValueError(f"grad and out must have the same shape and dtype, got {a.shape} {a.dtype} "
                         f"and {b.shape} {b.dtype}")
