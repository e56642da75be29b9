"""Batched small matrix products, C[f] = A[f] @ B[f], fast on a few CPU cores (and the thread
pool they run on, which :func:`parallel_ranges` lends to elementwise NumPy work).

The spectral convolution is hundreds of small complex products, one per frequency. A threaded
BLAS given a stack of small matrices synchronizes its threads once per matrix, which measured
here 100x slower than one thread (0.1 vs 40 GFLOP/s, complex64 32x64 @ 64x64, 612 frequencies).
So on NumPy each call runs with BLAS held to one thread and the stack split across a small
thread pool (NumPy releases the GIL inside matmul). CuPy arrays go straight to cuBLAS.
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .backend import array_module

WORKERS = max(1, os.cpu_count() or 1)
_INLINE_MACS = 1 << 18      # below this a product is not worth a trip through the pool
_pool = None
_controller = None


def batched_matmul(A, B, out=None):
    """A (F, n, k) @ B (F, k, m) -> (F, n, m), into ``out`` (C-contiguous) when given."""
    xp = array_module(A, B)
    if xp is not np:
        return xp.matmul(A, B, out=out)
    if out is None:
        out = np.empty(A.shape[:-1] + B.shape[-1:], dtype=np.result_type(A.dtype, B.dtype))
    with _single_threaded_blas():
        _run_split(lambda a, b: np.matmul(A[a:b], B[a:b], out=out[a:b]), A.shape[0], WORKERS)
    return out


def matmul(A, B, out=None):
    """A (n, k) @ B (k, m), into ``out`` (C-contiguous) when given: the rows of A (or the columns
    of B, whichever are more) split over the pool, one BLAS thread each, for the same reason as
    :func:`batched_matmul`."""
    xp = array_module(A, B)
    if xp is not np:
        return xp.matmul(A, B, out=out)
    (n, k), m = A.shape, B.shape[1]
    if out is None:
        out = np.empty((n, m), dtype=np.result_type(A.dtype, B.dtype))
    if n * k * m < _INLINE_MACS:
        return np.matmul(A, B, out=out)
    with _single_threaded_blas():
        if n >= m:
            _run_split(lambda a, b: np.matmul(A[a:b], B, out=out[a:b]), n, WORKERS)
        else:
            _run_split(lambda a, b: np.matmul(A, B[:, a:b], out=out[:, a:b]), m, WORKERS)
    return out


def parallel_ranges(fn, n, min_size=1 << 15):
    """Run ``fn(lo, hi)`` over contiguous ranges that cover [0, n), one per worker, in the pool
    (``fn`` must release the GIL to gain anything, as NumPy's ufuncs do); small n runs inline."""
    _run_split(fn, n, min(WORKERS, max(1, n // min_size)))


def _run_split(fn, n, parts):
    """``fn(lo, hi)`` over ``parts`` contiguous ranges covering [0, n): inline for one range, on
    the pool otherwise, waiting for all."""
    parts = max(1, min(parts, n))
    if parts == 1:
        fn(0, n)
        return
    cuts = [n * i // parts for i in range(parts + 1)]
    jobs = [_executor().submit(fn, lo, hi) for lo, hi in zip(cuts[:-1], cuts[1:])]
    for job in jobs:
        job.result()


def _executor():
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="specref-matmul")
    return _pool


def _single_threaded_blas():
    global _controller
    if _controller is None:
        from threadpoolctl import ThreadpoolController

        _controller = ThreadpoolController()
    return _controller.limit(limits=1, user_api="blas")
