import numpy as np
import pytest

from specref.layers.batchnorm import BatchNorm2d
from specref.layers.conv2d import Conv2d
from specref.layers.dense import Dense
from specref.layers.flatten import Flatten
from specref.layers.pooling import AvgPool2d
from specref.layers.sequential import Sequential
from specref.layers.spatial_activation import ReLU, Tanh
from specref.testing import inner, layer_gradient_errors, random_like


def network_gradient_errors(net, x, rng, eps=1e-6):
    """Relative errors of <grad, t> against central differences, per parameter of parameters()."""
    c = random_like(net.forward(x), rng)
    net.backward(c)
    grads = {name: g.copy() for name, g in net.gradients().items()}
    errors = {}
    for name, p in net.parameters().items():
        original, t = p.copy(), random_like(p, rng)
        p[...] = original + eps * t
        plus = inner(c, net.forward(x))
        p[...] = original - eps * t
        minus = inner(c, net.forward(x))
        p[...] = original
        numeric = (plus - minus) / (2 * eps)
        errors[name] = abs(numeric - inner(grads[name], t)) / max(1.0, abs(numeric))
    return errors


def mlp(rng):
    return Sequential([Dense(4, 6, dtype=np.float64, rng=rng), Tanh(), Dense(6, 3, dtype=np.float64, rng=rng)])


def test_mlp_end_to_end_gradients(rng):
    net = mlp(rng)
    x = rng.standard_normal((5, 4))
    errors = network_gradient_errors(net, x, rng)
    assert set(errors) == {"0.weight", "0.bias", "2.weight", "2.bias"}
    assert max(errors.values()) < 1e-6, errors
    assert layer_gradient_errors(net, x, rng)["input"] < 1e-6


def test_nested_conv_net_end_to_end_gradients(xp, rng):
    net = Sequential([
        Conv2d(2, 3, 3, dtype=np.float64, rng=rng),
        Sequential([BatchNorm2d(3, dtype=np.float64), Tanh(), AvgPool2d()]),
        Flatten(),
        Dense(3 * 3 * 2, 4, dtype=np.float64, rng=rng),
    ])
    for _, layer in net.named_layers():
        layer.params = {key: xp.asarray(value) for key, value in layer.params.items()}
        if hasattr(layer, "buffers"):
            layer.buffers = {key: xp.asarray(value) for key, value in layer.buffers.items()}
    x = xp.asarray(rng.standard_normal((2, 2, 6, 4)))
    errors = network_gradient_errors(net, x, rng)
    assert set(errors) == {"0.weight", "0.bias", "1.0.gamma", "1.0.beta", "3.weight", "3.bias"}
    assert max(errors.values()) < 1e-6, errors
    assert layer_gradient_errors(net, x, rng)["input"] < 1e-6


def test_names_and_layer_access(rng):
    inner_block = Sequential([ReLU(), Dense(3, 3, rng=0)])
    net = Sequential([Dense(2, 3, rng=0), inner_block, Dense(3, 1, bias=False, rng=0)])
    assert list(net.parameters()) == ["0.weight", "0.bias", "1.1.weight", "1.1.bias", "2.weight"]
    assert [name for name, _ in net.named_layers()] == ["0", "1.0", "1.1", "2"]
    assert net.named_layers()[2][1] is inner_block[1]
    assert len(net) == 3 and net[1] is inner_block and list(net)[2] is net[2]
    assert isinstance(net[1:], Sequential) and len(net[1:]) == 2
    assert net.params == {} and net.grads == {}


def test_parameters_are_the_layers_own_arrays(rng):
    net = mlp(rng)
    params = net.parameters()
    assert params["2.bias"] is net[2].params["bias"]
    original = net[0].params["weight"].copy()
    params["0.weight"] -= 1.0
    np.testing.assert_array_equal(net[0].params["weight"], original - 1.0)
    net.forward(rng.standard_normal((2, 4)))
    net.backward(np.ones((2, 3)))
    assert all(net.gradients()[name] is net[int(name[0])].grads[name[2:]] for name in params)


def test_zero_grad_and_missing_gradients(rng):
    net = mlp(rng)
    with pytest.raises(RuntimeError, match="no gradient for 0.weight yet"):
        net.gradients()
    net.zero_grad()
    grads = net.gradients()
    assert set(grads) == set(net.parameters())
    assert all(not g.any() and g.shape == net.parameters()[name].shape for name, g in grads.items())


def test_train_and_eval_propagate_to_nested_layers():
    bn = BatchNorm2d(2)
    net = Sequential([Sequential([bn]), ReLU()])
    assert net.eval() is net
    assert not net.training and not net[0].training and not bn.training
    net.train()
    assert net.training and bn.training


def test_backward_runs_in_reverse_order(rng):
    calls = []

    class Recorder(Tanh):
        def __init__(self, name):
            super().__init__()
            self.name = name

        def backward(self, dy):
            calls.append(self.name)
            return super().backward(dy)

    net = Sequential([Recorder("a"), Sequential([Recorder("b"), Recorder("c")])])
    net.forward(rng.standard_normal((2, 2)))
    net.backward(np.ones((2, 2)))
    assert calls == ["c", "b", "a"]


def test_repr_shows_nesting():
    net = Sequential([Dense(2, 3), Sequential([ReLU()])])
    assert repr(net) == (
        "Sequential(\n"
        "  (0): Dense(in_features=2, out_features=3, bias=True, dtype=float32)\n"
        "  (1): Sequential(\n"
        "    (0): ReLU()\n"
        "  )\n"
        ")")


def test_bad_layers_are_refused():
    with pytest.raises(TypeError, match=r"layers\[1\] must be a Layer, got ufunc"):
        Sequential([Tanh(), np.tanh])
    with pytest.raises(TypeError, match="layers must be a list of layers, got Tanh"):
        Sequential(Tanh())


@pytest.mark.parametrize("first", ["spectral", "conv2d", "nested"])
def test_backward_without_input_grad_sets_the_same_grads(first, rng):
    """input_grad=False (what training asks for) skips the first layer's dx, nothing else."""
    from specref import Conv2d, Dense, Flatten, SpectralConv2d, Tanh, ToSpatial

    f64 = np.float64
    if first == "conv2d":
        head = [Conv2d(2, 3, 3, dtype=f64, rng=1), Tanh(), Flatten(), Dense(3 * 5 * 5, 4, dtype=f64, rng=2)]
    else:
        head = [SpectralConv2d(2, 3, 3, dtype=f64, rng=1), ToSpatial(), Flatten(), Dense(3 * 7 * 7, 4, dtype=f64, rng=2)]
    layers = [Sequential(head[:2]), *head[2:]] if first == "nested" else head
    net = Sequential(layers)
    x, dy = rng.standard_normal((2, 2, 5, 5)), rng.standard_normal((2, 4))
    net.forward(x)
    dx = net.backward(dy)
    full = {k: g.copy() for k, g in net.gradients().items()}
    net.forward(x)
    assert dx is not None and net.backward(dy, input_grad=False) is None
    for key, grad in net.gradients().items():
        np.testing.assert_array_equal(grad, full[key])
