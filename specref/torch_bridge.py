"""A PyTorch copy of a *spatial* specref network, for benchmarks and outside checks.

``to_torch(net)`` walks a spatial ``Sequential`` and builds the equivalent ``torch.nn``
module with the same weights. specref's Conv2d is the true convolution of the paper's eq. (1);
PyTorch's is a cross-correlation, so each kernel is flipped on the way. PyTorch is optional and
imported here only; specref never needs it at run time.
"""
from __future__ import annotations

import numpy as np

from .backend import to_numpy


def to_torch(net):
    """torch.nn.Sequential equivalent of a spatial specref network (weights copied)."""
    import torch
    from torch import nn

    modules = [_convert(layer, nn, torch) for layer in net]
    return nn.Sequential(*modules)


def _convert(layer, nn, torch):
    from .layers import batchnorm, conv2d, dense, flatten, pooling, sequential, spatial_activation

    def tensor(a):
        return torch.from_numpy(np.ascontiguousarray(to_numpy(a)))

    if isinstance(layer, sequential.Sequential):
        if type(layer) is not sequential.Sequential:
            raise TypeError(f"to_torch cannot convert {type(layer).__name__}")
        return nn.Sequential(*[_convert(inner, nn, torch) for inner in layer])
    if isinstance(layer, conv2d.Conv2d):
        k = layer.kernel_size
        before, after = conv2d.padding_widths(layer.padding, k)
        module = nn.Conv2d(layer.in_channels, layer.out_channels, k, bias="bias" in layer.params)
        module.weight.data = tensor(layer.params["weight"][..., ::-1, ::-1])
        if "bias" in layer.params:
            module.bias.data = tensor(layer.params["bias"])
        if before == after:
            module.padding = (before, before)
            return module
        return nn.Sequential(nn.ZeroPad2d((before, after, before, after)), module)
    if isinstance(layer, dense.Dense):
        module = nn.Linear(layer.in_features, layer.out_features, bias="bias" in layer.params)
        module.weight.data = tensor(layer.params["weight"])
        if "bias" in layer.params:
            module.bias.data = tensor(layer.params["bias"])
        return module
    if isinstance(layer, batchnorm.BatchNorm2d):
        module = nn.BatchNorm2d(layer.num_features, eps=layer.eps, momentum=layer.momentum)
        module.weight.data = tensor(layer.params["gamma"])
        module.bias.data = tensor(layer.params["beta"])
        module.running_mean.data = tensor(layer.buffers["running_mean"])
        module.running_var.data = tensor(layer.buffers["running_var"])
        return module
    simple = {
        pooling.MaxPool2d: lambda: nn.MaxPool2d(layer.kernel_size, layer.stride),
        pooling.AvgPool2d: lambda: nn.AvgPool2d(layer.kernel_size, layer.stride),
        flatten.Flatten: nn.Flatten,
        spatial_activation.Tanh: nn.Tanh,
        spatial_activation.ReLU: nn.ReLU,
    }
    for kind, make in simple.items():
        if isinstance(layer, kind):
            return make()
    raise TypeError(f"to_torch cannot convert {type(layer).__name__} (spatial networks only)")
