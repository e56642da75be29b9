"""specref's CuPy backend: the few pieces that differ on a GPU.

specref's layers are array-generic: each looks the array module up from the arrays it gets, so
the same code runs on NumPy and on CuPy. The backend is picked once, at the boundary
(``specref.train(net, data, backend="cupy")``, ``specref.Backend("cupy")``), which moves the
parameters and each batch to the device. Most of the GPU work goes through CuPy's NumPy API:
cuFFT through ``cupy.fft`` and its plan cache (:mod:`specref.fft`), the per-frequency channel
products as batched cuBLAS matmuls (:mod:`specref.batched`), CSR storage through
``cupyx.scipy.sparse`` (:mod:`specref.storage`). This package holds the rest:

- :mod:`specref_gpu.kernels`: fused ``cupy.ElementwiseKernel`` s (threshold, split tanh, its
  backward, threshold + tanh + non-zero count), called by :mod:`specref.kernels` on CuPy arrays;
- :mod:`specref_gpu.memory`: :class:`~specref_gpu.memory.PoolPeak`, peak bytes from a CuPy
  memory hook.

Importing it imports no CuPy.
"""
from __future__ import annotations


def unavailable_reason():
    """None where ``backend="cupy"`` works here, else the error it raises (what to install)."""
    from specref.backend import Backend

    try:
        Backend("cupy")
    except (ImportError, RuntimeError) as exc:
        return str(exc)
    return None


__all__ = ["unavailable_reason"]
