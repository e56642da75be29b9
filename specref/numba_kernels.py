"""The numba kernels behind :mod:`specref.kernels` (host arrays; imported only when numba is on).

Each is a serial loop without the GIL over a range of a flat array (or of a block of kernels),
run by :mod:`specref.kernels` on ranges split over the thread pool of :mod:`specref.batched`.
The formula each one computes is the docstring of its entry point in :mod:`specref.kernels`,
where the tests hold it to a NumPy reference.
"""
from __future__ import annotations

import math
from types import SimpleNamespace

import numba
import numpy as np


def compile_kernels():
    """The kernels, compiled on first call of each (``cache=True``: once per machine)."""

    # Serial kernels without the GIL, each run on ranges split over specref.batched's thread
    # pool: numba's own parallel regions spin-wait at their barrier, and a Spec-VGG-16 step built
    # on them ran slower than plain NumPy whenever another process shared the 2 cores.
    jit = numba.njit(nogil=True, cache=True)

    @jit
    def threshold_kernel(values, beta, out, mask, with_mask):   # complex64, float32, ..., bool
        for i in range(values.size):
            v = values[i]
            re, im = np.float64(v.real), np.float64(v.imag)
            keep = np.float32(math.sqrt(re * re + im * im)) > beta
            if with_mask:
                mask[i] = keep
            out[i] = v if keep else 0

    @jit
    def backward_kernel(grad, out, one, mask_zeros, dx):    # one: 1 in the real dtype
        for i in range(grad.size):
            g, u = grad[i], out[i]
            if mask_zeros and u.real == 0 and u.imag == 0:
                dx[i] = 0
            else:
                dx[i] = complex(g.real * (one - u.real * u.real), g.imag * (one - u.imag * u.imag))

    @jit
    def where_nonzero_kernel(grad, kept, dx):
        for i in range(grad.size):
            u = kept[i]
            dx[i] = grad[i] if (u.real != 0 or u.imag != 0) else 0

    chunk = 512      # kernels per block: the block's taps and one row of sums stay in L1

    @numba.njit(nogil=True, cache=True, fastmath={"contract"})
    def small_dft_kernel(dft, taps, lo, hi, out):     # complex (F, T), real (A, B, T), complex (F, A*B)
        frequencies, count = dft.shape
        inner = taps.shape[1]
        block = np.empty((count, chunk), dtype=taps.dtype)
        for start in range(lo, hi, chunk):
            width = min(chunk, hi - start)
            for j in range(width):                          # the block's taps, tap-major
                a, b = divmod(start + j, inner)
                for t in range(count):
                    block[t, j] = taps[a, b, t]
            for f in range(frequencies):
                row = out[f, start:start + width]
                e = dft[f, 0]
                for j in range(width):
                    row[j] = complex(e.real * block[0, j], e.imag * block[0, j])
                for t in range(1, count):
                    e = dft[f, t]
                    for j in range(width):
                        x = block[t, j]
                        row[j] += complex(e.real * x, e.imag * x)

    @jit
    def sgd_momentum_kernel(p, g, v, lr, momentum, weight_decay):
        for i in range(p.size):
            d = g[i] + weight_decay * p[i] if weight_decay != 0 else g[i]
            velocity = momentum * v[i] + d
            v[i] = velocity
            p[i] -= lr * velocity

    # reassoc lets LLVM vectorize a*re - b*im over the block; no NaN or infinity assumptions
    @numba.njit(nogil=True, cache=True, fastmath={"contract", "reassoc"})
    def small_dft_adjoint_kernel(conj_dft, grad, lo, hi, out):  # complex (F, T), (F, N); real (N, T)
        frequencies, count = conj_dft.shape
        sums = np.empty((count, chunk), dtype=out.dtype)
        for start in range(lo, hi, chunk):
            width = min(chunk, hi - start)
            sums[:, :width] = 0
            for f in range(frequencies):
                row = grad[f, start:start + width]
                for t in range(count):
                    a, b = conj_dft[f, t].real, conj_dft[f, t].imag
                    total = sums[t]
                    for j in range(width):
                        total[j] += a * row[j].real - b * row[j].imag     # Re(conj(E) G)
            for j in range(width):
                for t in range(count):
                    out[start + j, t] = sums[t, j]

    # 3 x 3 kernels (T = 9), the common case, spelled out: all nine taps sum in registers and each
    # output is stored once (the loops above re-read and re-store the block row once per tap,
    # which made them about twice as slow as these).
    @numba.njit(nogil=True, cache=True, fastmath={"contract"})
    def small_dft_9_kernel(dft, taps, lo, hi, out):
        frequencies, inner = dft.shape[0], taps.shape[1]
        block = np.empty((9, chunk), dtype=taps.dtype)
        for start in range(lo, hi, chunk):
            width = min(chunk, hi - start)
            for j in range(width):
                a, b = divmod(start + j, inner)
                for t in range(9):
                    block[t, j] = taps[a, b, t]
            w0, w1, w2, w3, w4, w5, w6, w7, w8 = block[0], block[1], block[2], block[3], block[4], \
                block[5], block[6], block[7], block[8]
            for f in range(frequencies):
                e = dft[f]
                r0, r1, r2, r3, r4, r5, r6, r7, r8 = e[0].real, e[1].real, e[2].real, e[3].real, e[4].real, \
                    e[5].real, e[6].real, e[7].real, e[8].real
                i0, i1, i2, i3, i4, i5, i6, i7, i8 = e[0].imag, e[1].imag, e[2].imag, e[3].imag, e[4].imag, \
                    e[5].imag, e[6].imag, e[7].imag, e[8].imag
                row = out[f, start:start + width]
                for j in range(width):
                    x0, x1, x2, x3, x4, x5, x6, x7, x8 = w0[j], w1[j], w2[j], w3[j], w4[j], w5[j], w6[j], \
                        w7[j], w8[j]
                    re = r0 * x0 + r1 * x1 + r2 * x2 + r3 * x3 + r4 * x4 + r5 * x5 + r6 * x6 + r7 * x7 + r8 * x8
                    im = i0 * x0 + i1 * x1 + i2 * x2 + i3 * x3 + i4 * x4 + i5 * x5 + i6 * x6 + i7 * x7 + i8 * x8
                    row[j] = complex(re, im)

    @numba.njit(nogil=True, cache=True, fastmath={"contract", "reassoc"})
    def small_dft_adjoint_9_kernel(conj_dft, grad, lo, hi, out):
        frequencies = conj_dft.shape[0]
        sums = np.empty((9, chunk), dtype=out.dtype)
        for start in range(lo, hi, chunk):
            width = min(chunk, hi - start)
            sums[:, :width] = 0
            s0, s1, s2, s3, s4, s5, s6, s7, s8 = sums[0], sums[1], sums[2], sums[3], sums[4], sums[5], \
                sums[6], sums[7], sums[8]
            for f in range(frequencies):
                e = conj_dft[f]
                r0, r1, r2, r3, r4, r5, r6, r7, r8 = e[0].real, e[1].real, e[2].real, e[3].real, e[4].real, \
                    e[5].real, e[6].real, e[7].real, e[8].real
                i0, i1, i2, i3, i4, i5, i6, i7, i8 = e[0].imag, e[1].imag, e[2].imag, e[3].imag, e[4].imag, \
                    e[5].imag, e[6].imag, e[7].imag, e[8].imag
                row = grad[f, start:start + width]
                for j in range(width):
                    g_re, g_im = row[j].real, row[j].imag               # Re(conj(E) G), tap by tap
                    s0[j] += r0 * g_re - i0 * g_im
                    s1[j] += r1 * g_re - i1 * g_im
                    s2[j] += r2 * g_re - i2 * g_im
                    s3[j] += r3 * g_re - i3 * g_im
                    s4[j] += r4 * g_re - i4 * g_im
                    s5[j] += r5 * g_re - i5 * g_im
                    s6[j] += r6 * g_re - i6 * g_im
                    s7[j] += r7 * g_re - i7 * g_im
                    s8[j] += r8 * g_re - i8 * g_im
            for j in range(width):
                for t in range(9):
                    out[start + j, t] = sums[t, j]

    return SimpleNamespace(sgd_momentum=sgd_momentum_kernel, small_dft_adjoint=small_dft_adjoint_kernel,
                           small_dft_9=small_dft_9_kernel, small_dft_adjoint_9=small_dft_adjoint_9_kernel, threshold=threshold_kernel, backward=backward_kernel,
                           where_nonzero=where_nonzero_kernel, small_dft=small_dft_kernel)
