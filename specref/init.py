"""Data-dependent weight scaling: layer-sequential unit-RMS initialization (LSUV).

Deep tanh networks without batch norm lose their signal at PyTorch's default initialization
(uniform +-1/sqrt(fan_in), output variance 1/3 of the input's per layer): in Spec-VGG-16 the
RMS of the spectra falls about 60-fold over its 13 blocks, and neither form of VGG-16 learns.
``lsuv`` rescales each weight layer, in forward order, so that its output on one batch has a
chosen root mean square:

    (w, b) <- s (w, b),    s = target / rms(layer output),    rms(y) = sqrt(mean |y|^2)

A layer's output is linear in its own (w, b), so one rescale per layer is exact, and one forward
pass sets every layer (the layers after it see the already rescaled input). For a Spectrum the
mean runs over the stored half-spectrum entries; with ``fft_norm="ortho"`` a white map of unit
RMS has spectral entries of unit RMS too, so the same target serves both forms.
The directions of the weights (what the seed drew) are kept; only their per-layer scale changes.
"""
from __future__ import annotations

import math

from .backend import array_module
from .layers.conv2d import Conv2d
from .layers.dense import Dense
from .layers.spectral_conv import SpectralConv2d
from .spectrum import Spectrum

SCALED_LAYERS = (Conv2d, SpectralConv2d, Dense)


def lsuv(net, x, target=1.0, skip_last=True):
    """Rescale ``net``'s (a Sequential) Conv2d, SpectralConv2d and Dense layers in place so that, on the batch
    ``x``, each one's output has root mean square ``target``.

    ``skip_last`` leaves the last weight layer (the logits) as drawn. Returns a list of
    ``{"layer", "rms_before", "scale"}`` in forward order. The network's caches are cleared.
    """
    target = float(target)
    if not math.isfinite(target) or target <= 0:
        raise ValueError(f"target must be a finite number > 0, got {target!r}")
    layers = [(name, layer) for name, layer in net.named_layers() if isinstance(layer, SCALED_LAYERS)]
    if not layers:
        raise ValueError("the network has no Conv2d, SpectralConv2d or Dense layer to rescale")
    if skip_last:
        layers = layers[:-1]
    report = []

    def rescaling(name, layer, forward):
        def scaled_forward(inputs):
            y = forward(inputs)
            values = y.values if isinstance(y, Spectrum) else y
            xp = array_module(values)
            rms = float(xp.sqrt(xp.mean(xp.abs(values) ** 2)))
            if not math.isfinite(rms):
                raise FloatingPointError(f"lsuv: the output of layer {name} is not finite")
            scale = target / rms if rms > 0 else 1.0
            for value in layer.params.values():
                value *= value.dtype.type(scale)
            report.append({"layer": name, "rms_before": rms, "scale": scale})
            values = values * values.real.dtype.type(scale)
            return y.like(values) if isinstance(y, Spectrum) else values
        return scaled_forward

    was_training = getattr(net, "training", True)
    for name, layer in layers:
        layer.forward = rescaling(name, layer, layer.forward)
    try:
        net.train()
        net.forward(x)
    finally:
        for _, layer in layers:
            del layer.forward                   # back to the class's method
        net.clear_cache()
        net.train(was_training)
    return report

