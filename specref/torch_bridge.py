"""A specref network, spatial or Spec, as a PyTorch module with the same weights.

``to_torch(net)`` walks a ``Sequential`` and builds the equivalent ``torch.nn.Sequential``;
``convert(net)`` also returns, per leaf layer of ``net`` (its qualified name, as in
``net.named_layers()``), the module whose output is that layer's and how each specref parameter
maps to a torch one (what :mod:`specref.golden_torch` needs to write a golden-format file).

Spatial layers become torch.nn's own. specref's Conv2d is the true convolution of the paper's
eq. (1); PyTorch's is a cross-correlation, so each kernel is flipped on the way (and back for its
gradient). Spec layers become :mod:`specref.torch_spectral`'s modules, an independent
implementation of the conventions with torch.fft and autograd (no flip: a product of spectra is
the true convolution). A layer with no PyTorch form (e.g. a spectral activation other than tanh)
raises TypeError naming the layer and its index. PyTorch is optional and imported only when a
function here runs; specref never needs it otherwise.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .backend import to_numpy
from .layers import (activation, batchnorm, conv2d, dense, dense_concat, downsample, flatten, global_pool,
                     pooling, sequential, spatial_activation, spectral_conv, threshold, to_spatial)
from .nets.network import Network

INSTALL_HINT = "pip install -e '.[torch]' (or: pip install torch)"


class Leaf(NamedTuple):
    """One specref leaf layer and its PyTorch counterpart. ``params``: specref parameter name ->
    (torch parameter, flipped), flipped when the torch tensor is the kernel flipped in both axes."""
    name: str
    layer: object
    module: object
    params: dict


def import_torch():
    """The torch module, or ModuleNotFoundError with the install hint."""
    try:
        import torch
    except ImportError:
        raise ModuleNotFoundError(f"PyTorch is not installed: {INSTALL_HINT}", name="torch") from None
    return torch


def to_torch(net):
    """torch.nn.Sequential equivalent of a specref network (weights copied, dtype kept)."""
    return convert(net)[0]


def convert(net):
    """(torch.nn.Sequential, [Leaf] in forward order) for a specref Sequential ``net``."""
    import_torch()
    if not isinstance(net, sequential.Sequential):
        raise TypeError(f"net must be a specref Sequential, got {type(net).__name__}")
    leaves = []
    return _container(net, "", leaves), leaves


def _container(net, prefix, leaves):
    from torch import nn

    from . import torch_spectral

    if type(net) not in _CONTAINERS:
        raise TypeError(f"to_torch cannot convert layer {prefix.rstrip('.') or '(top)'} "
                        f"({type(net).__name__}): an unknown kind of Sequential")
    modules = [_convert(layer, f"{prefix}{i}", leaves) for i, layer in enumerate(net)]
    kind = torch_spectral.DenseConcat if type(net) is dense_concat.DenseConcat else nn.Sequential
    return kind(*modules)


_CONTAINERS = (sequential.Sequential, Network, dense_concat.DenseConcat)


def _convert(layer, name, leaves):
    import torch
    from torch import nn

    from . import torch_spectral as ts

    if isinstance(layer, sequential.Sequential):
        return _container(layer, f"{name}.", leaves)

    def tensor(a):
        return torch.from_numpy(np.array(to_numpy(a), copy=True))

    def bias_of(lay):
        return tensor(lay.params["bias"]) if "bias" in lay.params else None

    kind = type(layer)
    params = {}
    if kind is conv2d.Conv2d:
        k = layer.kernel_size
        before, after = conv2d.padding_widths(layer.padding, k)
        conv = nn.Conv2d(layer.in_channels, layer.out_channels, k, bias="bias" in layer.params)
        conv.weight.data = tensor(layer.params["weight"][..., ::-1, ::-1])
        params["weight"] = (conv.weight, True)
        if "bias" in layer.params:
            conv.bias.data = bias_of(layer)
            params["bias"] = (conv.bias, False)
        if before == after:
            conv.padding = (before, before)
            module = conv
        else:
            module = nn.Sequential(nn.ZeroPad2d((before, after, before, after)), conv)
    elif kind is dense.Dense:
        module = nn.Linear(layer.in_features, layer.out_features, bias="bias" in layer.params)
        module.weight.data = tensor(layer.params["weight"])
        if "bias" in layer.params:
            module.bias.data = bias_of(layer)
        params = {key: (getattr(module, key), False) for key in layer.params}
    elif kind is batchnorm.BatchNorm2d:
        module = nn.BatchNorm2d(layer.num_features, eps=layer.eps, momentum=layer.momentum)
        module.weight.data = tensor(layer.params["gamma"])
        module.bias.data = tensor(layer.params["beta"])
        module.running_mean.data = tensor(layer.buffers["running_mean"])
        module.running_var.data = tensor(layer.buffers["running_var"])
        params = {"gamma": (module.weight, False), "beta": (module.bias, False)}
    elif kind is spectral_conv.SpectralConv2d:
        module = ts.SpectralConv2d(tensor(layer.params["weight"]), bias_of(layer), layer.fft_norm, layer.stride)
        params = {key: (getattr(module, key), False) for key in layer.params}
    elif kind in _SIMPLE:
        module = _SIMPLE[kind](layer, nn, ts)
    else:
        known = ", ".join(sorted(k.__name__ for k in (*_SIMPLE, conv2d.Conv2d, dense.Dense, batchnorm.BatchNorm2d,
                                                       spectral_conv.SpectralConv2d)))
        raise TypeError(f"to_torch cannot convert layer {name} ({kind.__name__}): it has no PyTorch form; "
                        f"layers that have one: {known} (of the spectral activations, only ComplexTanh)")
    leaves.append(Leaf(name, layer, module, params))
    return module


# Layers without parameters: type -> factory(layer, torch.nn, specref.torch_spectral).
_SIMPLE = {
    pooling.MaxPool2d: lambda layer, nn, ts: nn.MaxPool2d(layer.kernel_size, layer.stride),
    pooling.AvgPool2d: lambda layer, nn, ts: nn.AvgPool2d(layer.kernel_size, layer.stride),
    flatten.Flatten: lambda layer, nn, ts: nn.Flatten(),
    spatial_activation.Tanh: lambda layer, nn, ts: nn.Tanh(),
    spatial_activation.ReLU: lambda layer, nn, ts: nn.ReLU(),
    global_pool.GlobalAvgPool2d: lambda layer, nn, ts: ts.GlobalAvgPool2d(),
    threshold.Threshold: lambda layer, nn, ts: ts.Threshold(layer.beta),
    activation.ComplexTanh: lambda layer, nn, ts: ts.ComplexTanh(),
    downsample.SpectralDownsample: lambda layer, nn, ts: ts.SpectralDownsample(layer.factor, layer.mode,
                                                                                layer.prefilter),
    to_spatial.ToSpatial: lambda layer, nn, ts: ts.ToSpatial(),
}


def gradients(leaves):
    """{specref qualified parameter name ("0.weight"): gradient as a NumPy array in specref's layout}."""
    grads = {}
    for leaf in leaves:
        for key, (param, flipped) in leaf.params.items():
            if param.grad is None:
                raise RuntimeError(f"no gradient for {leaf.name}.{key} yet: run backward first")
            grad = param.grad.detach().cpu().numpy()
            grads[f"{leaf.name}.{key}"] = grad[..., ::-1, ::-1].copy() if flipped else grad
    return grads
