"""Fully connected layer.

Forward, for x (B, in), weight W (out, in) and bias b (out,):

    y = x W^T + b

Adjoint (backward), for the upstream gradient dy (B, out):

    dx = dy W,   dW = dy^T x,   db = sum_b dy[b]
"""
from __future__ import annotations

import numpy as np

from ..batched import matmul
from .base import Layer, check_float_dtype, check_positive_int, check_spatial, make_rng


class Dense(Layer):
    """y = x W^T + b; weight (out_features, in_features), bias (out_features,)."""

    def __init__(self, in_features, out_features, bias=True, dtype=np.float32, rng=None):
        super().__init__()
        self.in_features = check_positive_int(in_features, "in_features")
        self.out_features = check_positive_int(out_features, "out_features")
        self.dtype = check_float_dtype(dtype)
        bound = 1.0 / np.sqrt(self.in_features)
        rng = make_rng(rng)
        shape = (self.out_features, self.in_features)
        self.params["weight"] = rng.uniform(-bound, bound, shape).astype(self.dtype)
        if bias:
            self.params["bias"] = rng.uniform(-bound, bound, self.out_features).astype(self.dtype)

    def forward(self, x):
        check_spatial(x, "x", ndim=2)
        if x.shape[1] != self.in_features:
            raise ValueError(f"x must have {self.in_features} features (in_features), got shape {tuple(x.shape)}")
        if x.dtype != self.dtype:
            raise TypeError(f"x has dtype {x.dtype} but the layer's dtype is {self.dtype}: cast one of them")
        y = matmul(x, self.params["weight"].T)
        if "bias" in self.params:
            y += self.params["bias"]
        self.cache = {"x": x}
        return y

    def backward(self, dy):
        (x,) = self._need_cache("x")
        check_spatial(dy, "dy", ndim=2)
        if tuple(dy.shape) != (x.shape[0], self.out_features):
            raise ValueError(f"dy must have the output's shape {(x.shape[0], self.out_features)}, got {tuple(dy.shape)}")
        self.grads["weight"] = matmul(dy.T, x)
        if "bias" in self.params:
            self.grads["bias"] = dy.sum(axis=0)
        return matmul(dy, self.params["weight"])

    def __repr__(self):
        return (f"Dense(in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={'bias' in self.params}, dtype={self.dtype.name})")
