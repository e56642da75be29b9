"""Softmax cross-entropy, the mean over the batch, and classification accuracy.

Forward, for logits z (B, K) and integer labels t (B,) in [0, K):

    L = (1 / B) sum_b [ logsumexp(z[b]) - z[b, t_b] ]

with logsumexp(z) = max(z) + log(sum(exp(z - max(z)))) so that no exp overflows.

Adjoint (backward), for an upstream scalar dL (1 by default):

    dz = dL (softmax(z) - onehot(t)) / B
"""
from __future__ import annotations

import numpy as np

from ..backend import array_module
from .base import Layer, check_spatial


def _check_logits_labels(logits, labels):
    xp = check_spatial(logits, "logits", ndim=2)
    array_module(logits, labels)  # TypeError if they mix host and device
    if not hasattr(labels, "ndim") or labels.ndim != 1:
        raise ValueError(f"labels must be a 1-D integer array, got {_describe(labels)}")
    if not xp.issubdtype(labels.dtype, xp.integer):
        raise TypeError(f"labels must be an integer array (class indices), got dtype {labels.dtype}")
    B, K = logits.shape
    if labels.shape[0] != B:
        raise ValueError(f"labels must have one entry per row of logits ({B}), got {labels.shape[0]}")
    if B == 0:
        raise ValueError(f"logits must hold at least one row, got shape {tuple(logits.shape)}")
    if type(labels) is np.ndarray:      # free on the host; on a device it would be two syncs a step
        check_labels(labels, K)
    return xp


def check_labels(labels, num_classes):
    """ValueError unless every entry of the host array ``labels`` lies in [0, num_classes).

    A label out of range would silently index another class. Labels on a device are not checked
    by the loss (reading their range back is a sync every step): check them here on the host
    before moving them, as :func:`specref.train` does with every batch.
    """
    if labels.size:
        low, high = int(labels.min()), int(labels.max())
        if low < 0 or high >= num_classes:
            raise ValueError(f"labels must lie in [0, {num_classes}) for {num_classes} classes "
                             f"(logits.shape[1]), got values in [{low}, {high}]")


def _describe(x):
    return f"shape {tuple(x.shape)}" if hasattr(x, "shape") else type(x).__name__


class SoftmaxCrossEntropy(Layer):
    """Mean softmax cross-entropy: ``forward(logits, labels)`` -> 0-d array, ``backward()`` -> dlogits."""

    def forward(self, logits, labels):
        xp = _check_logits_labels(logits, labels)
        B = logits.shape[0]
        shifted = logits - logits.max(axis=1, keepdims=True)
        log_normalizer = xp.log(xp.exp(shifted).sum(axis=1, keepdims=True))
        log_probs = shifted - log_normalizer
        rows = xp.arange(B)
        loss = -log_probs[rows, labels].mean()
        self.cache = {"probs": xp.exp(log_probs), "labels": labels}
        return loss

    def backward(self, dy=1.0):
        probs, labels = self._need_cache("probs", "labels")
        xp = array_module(probs)
        B = probs.shape[0]
        dlogits = probs.copy()
        dlogits[xp.arange(B), labels] -= 1
        dlogits *= dy / B
        return dlogits

    def __call__(self, logits, labels):
        return self.forward(logits, labels)


def accuracy(logits, labels) -> float:
    """The fraction of rows whose largest logit is at the label (a host float: it syncs)."""
    xp = _check_logits_labels(logits, labels)
    return float(xp.mean(logits.argmax(axis=1) == labels))
