"""Multi-channel 2-D true convolution (the paper's eq. (1)), by im2col and one matrix product.

Forward, for x (B, C, M, N), weight w (O, C, k, k) and bias b (O,):

    y[b, o] = sum_c convolve2d(x[b, c], w[o, c], mode) + b[o]

with ``convolve2d`` the true convolution (kernel flipped, as ``scipy.signal.convolve2d``):
full[i, j] = sum_{p, q} x[i - p, j - q] w[p, q]. The modes crop the full output of size
(M + k - 1, N + k - 1):

- ``"full"``: all of it;
- ``"same"``: M x N starting at s = (k - 1) // 2, which is scipy's "same" for odd and even k
  (for even k the full output loses one more row/column at the bottom/right than at the top/left);
- ``"valid"``: (M - k + 1, N - k + 1), the positions where the kernel lies inside x.

So y is x zero-padded by (k - 1 - s) before and s after on each spatial axis (s = k - 1 for
"full", 0 for "valid"), correlated with the flipped kernel: y = W @ cols(x) + b, with
W = w.reshape(O, C k k) and cols(x)[(c, p, q), (b, i, j)] = x_pad[b, c, i + k-1-p, j + k-1-q].

Adjoint (backward), with dY = dy reshaped to (O, B M' N'):

    dW = dY @ cols(x)^T,   db = sum_{b, i, j} dy[b, :, i, j],
    dx[b, c] = sum_o correlate2d(dy[b, o], w[o, c]) over x's positions,

the transpose of a true convolution being a correlation with the same kernel: the same im2col
and one matrix product, on dy padded by (k - 1 - before, k - 1 - after). When C is much smaller
than O (a first layer) dx is instead col2im(W^T @ dY), col2im being the adjoint of im2col.
"""
from __future__ import annotations

import numpy as np

from ..backend import array_module
from ..workspace import scratch
from .base import Layer, check_float_dtype, check_positive_int, check_spatial, make_rng

PADDINGS = ("full", "same", "valid")


def padding_widths(padding, kernel_size):
    """(before, after): the zeros added to each spatial axis of x for ``padding``."""
    k = kernel_size
    if padding == "full":
        return k - 1, k - 1
    if padding == "same":
        start = (k - 1) // 2
        return k - 1 - start, start
    return 0, 0


def im2col(x, kernel_size, before, after, flip, out=None):
    """x (B, C, M, N) padded by (before, after) -> cols (C k k, B M' N'), M' = M + before + after - k + 1.

    cols[(c, p, q), (b, i, j)] = x_pad[b, c, i + p, j + q], or with p, q reversed when ``flip``
    (so that W @ cols is a true convolution). ``out``: a reusable buffer of the right shape.
    """
    xp = array_module(x)
    k = kernel_size
    B, C = x.shape[:2]
    if before or after:
        x = xp.pad(x, ((0, 0), (0, 0), (before, after), (before, after)))
    Mo, No = x.shape[2] - k + 1, x.shape[3] - k + 1
    cols = xp.empty((C, k, k, B, Mo, No), dtype=x.dtype) if out is None else out.reshape(C, k, k, B, Mo, No)
    for p in range(k):
        for q in range(k):
            row, col = (k - 1 - p, k - 1 - q) if flip else (p, q)
            cols[:, row, col] = x[:, :, p:p + Mo, q:q + No].transpose(1, 0, 2, 3)
    return cols.reshape(C * k * k, B * Mo * No)


def col2im(cols, x_shape, kernel_size, before, after, flip):
    """The adjoint of :func:`im2col`: each column entry added back where it was gathered from."""
    xp = array_module(cols)
    k = kernel_size
    B, C, M, N = x_shape
    Mp, Np = M + before + after, N + before + after
    Mo, No = Mp - k + 1, Np - k + 1
    cols = cols.reshape(C, k, k, B, Mo, No)
    x = xp.zeros((B, C, Mp, Np), dtype=cols.dtype)
    for p in range(k):
        for q in range(k):
            row, col = (k - 1 - p, k - 1 - q) if flip else (p, q)
            x[:, :, p:p + Mo, q:q + No] += cols[:, row, col].transpose(1, 0, 2, 3)
    return x[:, :, before:before + M, before:before + N]


class Conv2d(Layer):
    """True 2-D convolution summed over input channels: weight (O, C, k, k), bias (O,)."""

    skips_input_grad = True          # backward(dy, input_grad=False) sets grads, returns None

    def __init__(self, in_channels, out_channels, kernel_size, padding="same", bias=True,
                 dtype=np.float32, rng=None):
        super().__init__()
        self.in_channels = check_positive_int(in_channels, "in_channels")
        self.out_channels = check_positive_int(out_channels, "out_channels")
        self.kernel_size = check_positive_int(kernel_size, "kernel_size")
        if padding not in PADDINGS:
            raise ValueError(f"padding must be one of {PADDINGS}, got {padding!r}")
        self.padding = padding
        self.dtype = check_float_dtype(dtype)
        k = self.kernel_size
        bound = 1.0 / np.sqrt(self.in_channels * k * k)
        rng = make_rng(rng)
        shape = (self.out_channels, self.in_channels, k, k)
        self.params["weight"] = rng.uniform(-bound, bound, shape).astype(self.dtype)
        if bias:
            self.params["bias"] = rng.uniform(-bound, bound, self.out_channels).astype(self.dtype)

    def forward(self, x):
        xp = self._check_input(x)
        B, C, M, N = x.shape
        k, O = self.kernel_size, self.out_channels
        before, after = padding_widths(self.padding, k)
        Mo, No = M + before + after - k + 1, N + before + after - k + 1
        cols = im2col(x, k, before, after, flip=True, out=scratch("im2col", (C * k * k, B * Mo * No), x.dtype, x))
        y = self.params["weight"].reshape(O, C * k * k) @ cols
        y = xp.ascontiguousarray(y.reshape(O, B, Mo, No).transpose(1, 0, 2, 3))
        if "bias" in self.params:
            y += self.params["bias"][:, None, None]
        # Keep x, not its k*k times larger columns (as cuDNN does): backward rebuilds them.
        self.cache = {"x_shape": x.shape}
        self.keep("x", x)
        return y

    def backward(self, dy, input_grad=True):
        """dx, with grads set; ``input_grad=False`` sets the grads only and returns None."""
        (B, C, M, N), x = self._need_cache("x_shape")[0], self.kept("x")
        xp = check_spatial(dy, "dy")
        k, O = self.kernel_size, self.out_channels
        before, after = padding_widths(self.padding, k)
        Mo, No = M + before + after - k + 1, N + before + after - k + 1
        cols = im2col(x, k, before, after, flip=True, out=scratch("im2col", (C * k * k, B * Mo * No), x.dtype, x))
        out_shape = (B, O, M + before + after - k + 1, N + before + after - k + 1)
        if tuple(dy.shape) != out_shape:
            raise ValueError(f"dy must have the output's shape {out_shape}, got {tuple(dy.shape)}")
        dY = dy.transpose(1, 0, 2, 3).reshape(O, -1)
        self.grads["weight"] = (dY @ cols.T).reshape(self.params["weight"].shape)
        if "bias" in self.params:
            self.grads["bias"] = dy.sum(axis=(0, 2, 3))
        if not input_grad:
            return None
        if 2 * C < O:  # scatter the C k k rows back: cheaper than gathering O k k rows of dy
            dcols = self.params["weight"].reshape(O, C * k * k).T @ dY
            dx = col2im(dcols, (B, C, M, N), k, before, after, flip=True)
        else:
            dy_cols = im2col(dy, k, k - 1 - before, k - 1 - after, flip=False,
                             out=scratch("im2col_dy", (O * k * k, B * M * N), dy.dtype, dy))
            weight_t = self.params["weight"].transpose(1, 0, 2, 3).reshape(C, O * k * k)
            dx = (weight_t @ dy_cols).reshape(C, B, M, N).transpose(1, 0, 2, 3)
        return xp.ascontiguousarray(dx)

    def _check_input(self, x):
        xp = check_spatial(x, "x")
        if x.shape[1] != self.in_channels:
            raise ValueError(f"x must have {self.in_channels} channels (in_channels), got shape {tuple(x.shape)}")
        if x.dtype != self.dtype:
            raise TypeError(f"x has dtype {x.dtype} but the layer's dtype is {self.dtype}: cast one of them")
        k = self.kernel_size
        if self.padding == "valid" and (x.shape[2] < k or x.shape[3] < k):
            raise ValueError(f"x must be at least {k} x {k} for padding='valid', got shape {tuple(x.shape)}")
        return xp

    def __repr__(self):
        return (f"Conv2d({self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"padding={self.padding!r}, bias={'bias' in self.params}, dtype={self.dtype.name})")
