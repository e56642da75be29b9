"""Walking a network: its leaf layers, in forward order.

A network is a :class:`~specref.layers.sequential.Sequential` (nested Sequentials and DenseNet
branches flattened by ``named_layers()``) or a single layer, which is then its own only leaf.
Everything that visits every layer (moving state to a backend, setting a storage codec, counting
what the caches hold, naming buffers in a checkpoint) walks it through :func:`leaf_layers`.
"""
from __future__ import annotations


def leaf_layers(net):
    """[(qualified name, layer)] of every leaf layer of ``net``; ``[("", net)]`` for a single layer."""
    named = getattr(net, "named_layers", None)
    return list(named()) if callable(named) else [("", net)]


def state_stores(net):
    """Every dict of state arrays (``params``, and ``buffers`` where a layer has them), layer by layer."""
    for _, layer in leaf_layers(net):
        yield layer.params
        buffers = getattr(layer, "buffers", None)
        if buffers:
            yield buffers
