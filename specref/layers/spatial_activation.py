"""Elementwise activations on spatial (real) arrays of any shape.

Tanh:  y = tanh(x);       adjoint dx = dy * (1 - y^2), from the cached output y.
ReLU:  y = max(x, 0);     adjoint dx = dy * [x > 0], the subgradient 0 taken at x = 0.
"""
from __future__ import annotations

from .base import Layer, check_spatial


def _check_input(x, name="x"):
    # Any number of axes; check_spatial still rejects Spectra, non-arrays and non-float dtypes.
    return check_spatial(x, name, ndim=getattr(x, "ndim", None))


def _check_dy(dy, expected_shape):
    xp = _check_input(dy, "dy")
    if tuple(dy.shape) != tuple(expected_shape):
        raise ValueError(f"dy must have the output's shape {tuple(expected_shape)}, got {tuple(dy.shape)}")
    return xp


class Tanh(Layer):
    """y = tanh(x), backward from the cached output."""

    def forward(self, x):
        xp = _check_input(x)
        y = xp.tanh(x)
        self.cache = {"y": y}
        return y

    def backward(self, dy):
        (y,) = self._need_cache("y")
        _check_dy(dy, y.shape)
        return dy * (1 - y * y)


class ReLU(Layer):
    """y = max(x, 0); gradient 0 at x = 0."""

    def forward(self, x):
        xp = _check_input(x)
        positive = x > 0
        self.cache = {"positive": positive}
        return xp.where(positive, x, xp.zeros((), dtype=x.dtype))

    def backward(self, dy):
        (positive,) = self._need_cache("positive")
        xp = _check_dy(dy, positive.shape)
        return xp.where(positive, dy, xp.zeros((), dtype=dy.dtype))
