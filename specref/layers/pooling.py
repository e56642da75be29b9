"""Max and average pooling over k x k windows with stride s (s = k by default).

For x (B, C, M, N) the output is (B, C, M', N') with M' = (M - k) // s + 1 (floor, as PyTorch:
rows and columns past the last whole window are ignored), and window (i, j) is
x[:, :, s i : s i + k, s j : s j + k].

MaxPool:  y[i, j] = max over the window.  Adjoint: dy[i, j] goes to the window's first maximum
          in row-major order (the subgradient chosen at ties); windows that overlap (s < k) add up.
AvgPool:  y[i, j] = mean over the window.  Adjoint: dx[window(i, j)] += dy[i, j] / k^2.

Both loop over the k*k offsets (p, q) of a window, each a strided slice of x.
"""
from __future__ import annotations

from .base import Layer, check_positive_int, check_spatial


class _Pool2d(Layer):
    def __init__(self, kernel_size=2, stride=None):
        super().__init__()
        self.kernel_size = check_positive_int(kernel_size, "kernel_size")
        self.stride = self.kernel_size if stride is None else check_positive_int(stride, "stride")

    def _check_input(self, x):
        xp = check_spatial(x, "x")
        k = self.kernel_size
        if x.shape[2] < k or x.shape[3] < k:
            raise ValueError(f"x must be at least {k} x {k} (kernel_size), got shape {tuple(x.shape)}")
        return xp

    def _output_size(self, x_shape):
        k, s = self.kernel_size, self.stride
        return (x_shape[2] - k) // s + 1, (x_shape[3] - k) // s + 1

    def _window_slices(self, Mo, No):
        """(p, q, slice of x giving offset (p, q) of every window)."""
        k, s = self.kernel_size, self.stride
        for p in range(k):
            for q in range(k):
                yield p, q, (slice(None), slice(None),
                             slice(p, p + s * (Mo - 1) + 1, s), slice(q, q + s * (No - 1) + 1, s))

    def _check_dy(self, dy, x_shape):
        xp = check_spatial(dy, "dy")
        expected = (*x_shape[:2], *self._output_size(x_shape))
        if tuple(dy.shape) != expected:
            raise ValueError(f"dy must have the output's shape {expected}, got {tuple(dy.shape)}")
        return xp

    def __repr__(self):
        return f"{type(self).__name__}(kernel_size={self.kernel_size}, stride={self.stride})"


class MaxPool2d(_Pool2d):
    """Max over each window; the gradient goes to the first maximum (row-major) at ties."""

    def forward(self, x):
        xp = self._check_input(x)
        Mo, No = self._output_size(x.shape)
        windows = self._window_slices(Mo, No)
        _, _, first = next(windows)
        y = x[first].copy()
        argmax = xp.zeros(y.shape, dtype=xp.int32)  # flat offset p k + q of the maximum
        for p, q, window in windows:
            values = x[window]
            larger = values > y  # strict: a tie keeps the earlier offset
            y = xp.where(larger, values, y)
            argmax = xp.where(larger, p * self.kernel_size + q, argmax).astype(xp.int32, copy=False)
        self.cache = {"argmax": argmax, "x_shape": x.shape}
        return y

    def backward(self, dy):
        argmax, x_shape = self._need_cache("argmax", "x_shape")
        xp = self._check_dy(dy, x_shape)
        dx = xp.zeros(x_shape, dtype=dy.dtype)
        zero = xp.zeros((), dtype=dy.dtype)
        for p, q, window in self._window_slices(*argmax.shape[2:]):
            dx[window] += xp.where(argmax == p * self.kernel_size + q, dy, zero)
        return dx


class AvgPool2d(_Pool2d):
    """Mean over each window."""

    def forward(self, x):
        xp = self._check_input(x)
        Mo, No = self._output_size(x.shape)
        y = xp.zeros((*x.shape[:2], Mo, No), dtype=x.dtype)
        for _, _, window in self._window_slices(Mo, No):
            y += x[window]
        y /= self.kernel_size ** 2
        self.cache = {"x_shape": x.shape}
        return y

    def backward(self, dy):
        (x_shape,) = self._need_cache("x_shape")
        xp = self._check_dy(dy, x_shape)
        share = dy / self.kernel_size ** 2
        dx = xp.zeros(x_shape, dtype=dy.dtype)
        for _, _, window in self._window_slices(*dy.shape[2:]):
            dx[window] += share
        return dx
