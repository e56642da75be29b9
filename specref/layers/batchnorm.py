"""Batch normalization over the channels of (B, C, M, N) arrays.

Forward, per channel c, with n = B M N values:

    train:  mu = mean(x),  var = mean((x - mu)^2)   (batch statistics, biased variance)
    eval:   mu = running_mean,  var = running_var
    x_hat = (x - mu) / sqrt(var + eps),   y = gamma x_hat + beta

Train mode also updates running_mean <- (1 - momentum) running_mean + momentum mu, and running_var
likewise with the unbiased batch variance var n / (n - 1), as PyTorch does.

Adjoint (backward), sums over (b, i, j):

    dgamma = sum(dy x_hat),   dbeta = sum(dy)
    train:  dx = gamma / sqrt(var + eps) (dy - dbeta / n - x_hat dgamma / n)
    eval:   dx = gamma / sqrt(var + eps) dy           (mu, var are constants)
"""
from __future__ import annotations

import numbers

import numpy as np

from ..backend import array_module
from .base import Layer, check_float_dtype, check_positive_int, check_spatial

AXES = (0, 2, 3)


class BatchNorm2d(Layer):
    """Per-channel normalization; params gamma, beta; running stats in ``buffers`` (not trained)."""

    def __init__(self, num_features, eps=1e-5, momentum=0.1, dtype=np.float32):
        super().__init__()
        self.num_features = check_positive_int(num_features, "num_features")
        if not isinstance(eps, numbers.Real) or not eps > 0:
            raise ValueError(f"eps must be a positive number, got {eps!r}")
        if not isinstance(momentum, numbers.Real) or not 0 <= momentum <= 1:
            raise ValueError(f"momentum must be a number in [0, 1], got {momentum!r}")
        self.eps, self.momentum = float(eps), float(momentum)
        self.dtype = check_float_dtype(dtype)
        self.params["gamma"] = np.ones(self.num_features, dtype=self.dtype)
        self.params["beta"] = np.zeros(self.num_features, dtype=self.dtype)
        # State that is not trained; kept in a dict so that whoever moves params to a device finds it.
        self.buffers = {"running_mean": np.zeros(self.num_features, dtype=self.dtype),
                        "running_var": np.ones(self.num_features, dtype=self.dtype)}

    @property
    def running_mean(self):
        return self.buffers["running_mean"]

    @property
    def running_var(self):
        return self.buffers["running_var"]

    def forward(self, x):
        xp = self._check_input(x)
        if self.training:
            n = x.size // self.num_features
            if n < 2:
                raise ValueError(f"x must hold more than one value per channel in train mode, got shape {tuple(x.shape)}")
            mean = x.mean(axis=AXES)
            centered = x - mean[:, None, None]
            var = (centered * centered).mean(axis=AXES)
            self._update_running_stats(mean, var * (n / (n - 1)))
        else:
            mean, var = self.running_mean, self.running_var
            centered = x - mean[:, None, None]
        inv_std = 1 / xp.sqrt(var + self.eps)
        x_hat = centered * inv_std[:, None, None]
        self.cache = {"x_hat": x_hat, "inv_std": inv_std, "batch_stats": self.training}
        return self.params["gamma"][:, None, None] * x_hat + self.params["beta"][:, None, None]

    def backward(self, dy):
        x_hat, inv_std, batch_stats = self._need_cache("x_hat", "inv_std", "batch_stats")
        check_spatial(dy, "dy")
        if dy.shape != x_hat.shape:
            raise ValueError(f"dy must have the output's shape {tuple(x_hat.shape)}, got {tuple(dy.shape)}")
        dbeta = dy.sum(axis=AXES)
        dgamma = (dy * x_hat).sum(axis=AXES)
        self.grads["gamma"], self.grads["beta"] = dgamma, dbeta
        scale = (self.params["gamma"] * inv_std)[:, None, None]
        if not batch_stats:
            return scale * dy
        n = dy.size // self.num_features
        return scale * (dy - (dbeta / n)[:, None, None] - x_hat * (dgamma / n)[:, None, None])

    def _update_running_stats(self, mean, unbiased_var):
        m = self.momentum
        for key, batch_value in (("running_mean", mean), ("running_var", unbiased_var)):
            running = self.buffers[key]  # in place: whoever holds the array sees the update
            running *= 1 - m
            running += m * batch_value

    def _check_input(self, x):
        xp = check_spatial(x, "x")
        if x.shape[1] != self.num_features:
            raise ValueError(f"x must have {self.num_features} channels (num_features), got shape {tuple(x.shape)}")
        if x.dtype != self.dtype:
            raise TypeError(f"x has dtype {x.dtype} but the layer's dtype is {self.dtype}: cast one of them")
        array_module(x, self.params["gamma"], self.running_mean)  # TypeError if they mix host and device
        return xp

    def __repr__(self):
        return (f"BatchNorm2d({self.num_features}, eps={self.eps}, momentum={self.momentum}, "
                f"dtype={self.dtype.name})")
