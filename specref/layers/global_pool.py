"""Global average pooling: the spatial mean of every channel.

Forward, for x (B, C, H, W):

    y[b, c] = 1/(H W) sum_{i, j} x[b, c, i, j]                      (B, C)

Adjoint (backward): the mean spreads its gradient evenly,

    dx[b, c, i, j] = dy[b, c] / (H W)
"""
from __future__ import annotations

from .base import Layer, check_spatial


class GlobalAvgPool2d(Layer):
    """(B, C, H, W) -> (B, C), the mean over H and W."""

    def forward(self, x):
        check_spatial(x, "x")
        self.cache = {"x_shape": x.shape}
        return x.mean(axis=(2, 3))

    def backward(self, dy):
        (x_shape,) = self._need_cache("x_shape")
        xp = check_spatial(dy, "dy", ndim=2)
        if tuple(dy.shape) != tuple(x_shape[:2]):
            raise ValueError(f"dy must have the output's shape {tuple(x_shape[:2])}, got {tuple(dy.shape)}")
        share = dy / (x_shape[2] * x_shape[3])
        return xp.broadcast_to(share[:, :, None, None], x_shape).copy()
