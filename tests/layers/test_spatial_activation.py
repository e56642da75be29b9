import numpy as np
import pytest

from specref.backend import to_numpy
from specref.layers.spatial_activation import ReLU, Tanh
from specref.testing import layer_gradient_errors


def test_values(xp, rng):
    x = rng.standard_normal((2, 3, 4, 5)) * 3
    np.testing.assert_allclose(to_numpy(Tanh().forward(xp.asarray(x))), np.tanh(x))
    np.testing.assert_array_equal(to_numpy(ReLU().forward(xp.asarray(x))), np.maximum(x, 0))


@pytest.mark.parametrize("shape", [(3, 7), (2, 3, 4, 5)])
def test_gradient_check(xp, rng, shape):
    x = rng.standard_normal(shape) * 2
    assert layer_gradient_errors(Tanh(), xp.asarray(x), rng)["input"] < 1e-6
    away_from_kink = np.where(np.abs(x) < 0.1, 0.5, x)
    assert layer_gradient_errors(ReLU(), xp.asarray(away_from_kink), rng)["input"] < 1e-6


def test_relu_subgradient_at_zero_is_zero():
    relu = ReLU()
    relu.forward(np.array([[-1.0, 0.0, 2.0]]))
    np.testing.assert_array_equal(relu.backward(np.array([[5.0, 5.0, 5.0]])), [[0.0, 0.0, 5.0]])


def test_tanh_backward_uses_the_cached_output():
    tanh = Tanh()
    y = tanh.forward(np.array([[0.3, -1.2]]))
    tanh.cache["y"] = np.zeros_like(y)  # the output, not x, is what backward reads
    np.testing.assert_array_equal(tanh.backward(np.ones((1, 2))), np.ones((1, 2)))


def test_float32_stays_float32():
    x = np.ones((2, 2), np.float32)
    for layer in (Tanh(), ReLU()):
        assert layer.forward(x).dtype == np.float32
        assert layer.backward(x).dtype == np.float32


@pytest.mark.parametrize("Layer", [Tanh, ReLU])
def test_bad_inputs_name_the_parameter(Layer):
    with pytest.raises(TypeError, match="x must be a real floating array.*int64"):
        Layer().forward(np.zeros((2, 2), np.int64))
    with pytest.raises(TypeError, match="numpy.ndarray or cupy.ndarray, got builtins.list"):
        Layer().forward([1.0, 2.0])
    with pytest.raises(RuntimeError, match="backward called before forward"):
        Layer().backward(np.zeros((2, 2)))
    layer = Layer()
    layer.forward(np.zeros((2, 2)))
    with pytest.raises(ValueError, match=r"dy must have the output's shape \(2, 2\), got \(2, 3\)"):
        layer.backward(np.zeros((2, 3)))
