"""Threshold: keep spectral entries with |Y| > beta (strictly), zero the rest (Algorithm 1, l.16).

    Y_hat = Y * [|Y| > beta]          dY = dY_hat * [|Y| > beta]

|Y| is the complex magnitude, so the mask is conjugate-symmetric and Y_hat stays the spectrum of
a real map. The gradient is the one of the thresholded network (the kink |Y| = beta has measure
zero; the subgradient used there is 0).
"""
from __future__ import annotations

import math

from .. import kernels
from .base import Layer, check_spectrum


class Threshold(Layer):
    def __init__(self, beta):
        super().__init__()
        self.beta = check_beta(beta)
        self.mask_source = None

    def share_mask_with(self, activation):
        """Read the mask in backward from ``activation``'s kept map instead of keeping it.

        For the activation right after this threshold, whose h is zero only at zero, the map
        it keeps (Y_hat or Z = f(Y_hat)) is non-zero exactly where |Y| > beta: the mask is that
        map's non-zero pattern, so nothing is stored twice. An activation that can (ComplexTanh)
        applies that mask in its own backward pass, and this layer's backward then passes dY on.
        """
        if not getattr(activation, "zero_only_at_zero", False):
            raise ValueError(f"share_mask_with needs an activation whose h(t) is 0 only at t = 0, got {activation!r}")
        self.mask_source = activation
        if getattr(activation, "can_mask_in_backward", False):
            activation.mask_in_backward = True   # it applies the mask in its own backward pass
        return self

    def forward(self, x):
        check_spectrum(x)
        shared = self.mask_source is not None
        values, mask = kernels.threshold(x.values, self.beta, with_mask=not shared)
        self.cache = {} if shared else {"mask": mask}
        return x.like(values)

    def backward(self, dy):
        check_spectrum(dy, "dy")
        if self.mask_source is not None:
            if self.mask_source.cache.get("masked"):      # dY is already zero where |Y| <= beta
                return dy.like(dy.values)
            return dy.like(self.mask_source.where_kept_nonzero(dy.values))
        (mask,) = self._need_cache("mask")
        return dy.like(dy.values * mask)

    def __repr__(self):
        return f"Threshold(beta={self.beta})"


def check_beta(beta):
    try:
        value = float(beta)
    except (TypeError, ValueError):
        raise TypeError(f"beta must be a real number >= 0, got {beta!r}") from None
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"beta must be a finite number >= 0, got {beta!r}")
    return value

