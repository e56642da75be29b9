"""Flatten every axis after the batch axis.

Forward: x (B, d1, ..., dn) -> y (B, d1 * ... * dn), a reshape (row-major, C order).
Adjoint (backward): dx = dy reshaped back to x's shape (a reshape only relabels entries, so its
adjoint is its inverse).
"""
from __future__ import annotations

import numpy as np

from ..backend import array_module
from .base import Layer


class Flatten(Layer):
    """(B, ...) -> (B, prod(...)) and back."""

    def forward(self, x):
        xp = array_module(x)
        if not hasattr(x, "ndim") or x.ndim < 2:
            raise ValueError(f"x must have a batch axis and at least one more (ndim >= 2), got {_describe(x)}")
        if not xp.issubdtype(x.dtype, xp.floating):
            raise TypeError(f"x must be a real floating array (float32 or float64), got dtype {x.dtype}")
        self.cache = {"x_shape": x.shape}
        return x.reshape(x.shape[0], -1)

    def backward(self, dy):
        (x_shape,) = self._need_cache("x_shape")
        expected = (x_shape[0], int(np.prod(x_shape[1:])))
        if tuple(dy.shape) != expected:
            raise ValueError(f"dy must have the output's shape {expected}, got {tuple(dy.shape)}")
        return dy.reshape(x_shape)


def _describe(x):
    return f"shape {tuple(x.shape)}" if hasattr(x, "shape") else type(x).__name__
