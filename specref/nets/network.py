"""``Network``: a registry net, a Sequential that knows what it was built from.

Beta and the storage codec live in the layers that use them (every Threshold's ``beta``, every
layer's ``storage``), nowhere else: the network's ``beta``, ``storage`` and ``config`` read them
back, and setting ``beta`` or ``storage`` on the network sets them on every layer.
"""
from __future__ import annotations

from ..layers.sequential import Sequential
from ..layers.threshold import check_beta
from ..storage import set_storage
from ..tree import leaf_layers


class Network(Sequential):
    """A Sequential with ``name``, ``spectral``, ``fft_norm``, ``input_shape``, ``num_classes``,
    and ``beta``, ``storage``, ``config`` read from its layers (see :func:`specref.nets.build`)."""

    def __init__(self, layers, *, name, spectral, fft_norm, input_shape, num_classes, options):
        super().__init__(layers)
        self.name, self.spectral, self.fft_norm = name, spectral, fft_norm
        self.input_shape, self.num_classes = input_shape, num_classes
        self._options = dict(options)        # the build's arguments but beta and storage

    @property
    def beta(self):
        return beta_of(self)

    @beta.setter
    def beta(self, value):
        set_beta(self, value)

    @property
    def storage(self):
        """The codec every layer keeps its maps with (None when they differ)."""
        codecs = {layer.storage.name: layer.storage for _, layer in leaf_layers(self)}
        return next(iter(codecs.values())) if len(codecs) == 1 else None

    @storage.setter
    def storage(self, codec):
        set_storage(self, codec)

    @property
    def config(self):
        """Every argument of the build, beta and storage as the layers hold them now."""
        storage = self.storage
        return {**self._options, "beta": self.beta, "storage": storage.name if storage else "mixed"}


def beta_of(net):
    """The threshold of ``net``'s layers: a float, a sorted list where they differ, None where no
    layer has one."""
    betas = sorted({float(layer.beta) for _, layer in leaf_layers(net)
                    if getattr(layer, "beta", None) is not None})
    if not betas:
        return None
    return betas[0] if len(betas) == 1 else betas


def set_beta(net, beta):
    """Set the threshold of every layer of ``net`` that has one; returns beta as a float."""
    holders = [layer for _, layer in leaf_layers(net) if hasattr(layer, "beta")]
    if not holders:
        raise ValueError(f"beta={beta!r} was given but the network has no layer with a beta")
    beta = check_beta(beta)
    for holder in holders:
        holder.beta = beta
    return beta
