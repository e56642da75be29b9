"""A chain of layers, itself a layer.

Forward:  y = f_n(... f_2(f_1(x)))
Adjoint (backward): dx = J_1^T (J_2^T (... J_n^T dy)), each layer's backward in reverse order.

Parameters are named by position, nested Sequentials adding a level: "0.weight", "2.1.bias".
``parameters()`` returns the layers' own arrays (not copies), so in-place updates reach them.
"""
from __future__ import annotations

from .base import Layer


class Sequential(Layer):
    """Layers applied in order; ``parameters()``/``gradients()`` by qualified name."""

    skips_input_grad = True

    def __init__(self, layers):
        super().__init__()
        if isinstance(layers, Layer) or not hasattr(layers, "__iter__"):
            raise TypeError(f"layers must be a list of layers, got {type(layers).__name__}")
        self.layers = list(layers)
        for i, layer in enumerate(self.layers):
            if not isinstance(layer, Layer):
                raise TypeError(f"layers[{i}] must be a Layer, got {type(layer).__name__}")

    def forward(self, x):
        for layer in self.layers:
            x = layer.forward(x)
        return x

    def backward(self, dy, input_grad=True):
        """dx; with ``input_grad=False`` None, and a first layer that can skip its input gradient
        (``skips_input_grad``: a convolution, or a Sequential) does (training discards it)."""
        for i, layer in enumerate(reversed(self.layers)):
            if i == len(self.layers) - 1 and not input_grad and getattr(layer, "skips_input_grad", False):
                return layer.backward(dy, input_grad=False)
            dy = layer.backward(dy)
        return None if not input_grad else dy

    def named_layers(self, prefix=""):
        """[(qualified name, layer)] for every leaf layer, nested Sequentials flattened."""
        named = []
        for i, layer in enumerate(self.layers):
            name = f"{prefix}{i}"
            if isinstance(layer, Sequential):
                named.extend(layer.named_layers(prefix=f"{name}."))
            else:
                named.append((name, layer))
        return named

    def parameters(self):
        """{qualified name: parameter array}, the layers' own arrays."""
        return {f"{name}.{key}": value
                for name, layer in self.named_layers() for key, value in layer.params.items()}

    def gradients(self):
        """{qualified name: gradient array}, with the keys of ``parameters()``."""
        grads = {}
        for name, layer in self.named_layers():
            for key in layer.params:
                if key not in layer.grads:
                    raise RuntimeError(f"no gradient for {name}.{key} yet: call backward (or zero_grad) first")
                grads[f"{name}.{key}"] = layer.grads[key]
        return grads

    def zero_grad(self):
        for layer in self.layers:
            layer.zero_grad()

    def train(self, mode: bool = True):
        super().train(mode)
        for layer in self.layers:
            layer.train(mode)
        return self

    def clear_cache(self):
        for layer in self.layers:
            layer.clear_cache()

    def __len__(self):
        return len(self.layers)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return Sequential(self.layers[index])
        return self.layers[index]

    def __iter__(self):
        return iter(self.layers)

    def __repr__(self):
        lines = [f"{type(self).__name__}("]
        for i, layer in enumerate(self.layers):
            body = repr(layer).replace("\n", "\n  ")
            lines.append(f"  ({i}): {body}")
        lines.append(")")
        return "\n".join(lines)
