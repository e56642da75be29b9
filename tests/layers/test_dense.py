import numpy as np
import pytest

from specref.backend import to_numpy
from specref.layers.dense import Dense
from specref.testing import layer_gradient_errors


def on(xp, layer):
    layer.params = {key: xp.asarray(value) for key, value in layer.params.items()}
    return layer


def test_forward_is_x_times_weight_transposed_plus_bias(xp, rng):
    layer = on(xp, Dense(4, 3, dtype=np.float64, rng=0))
    x = rng.standard_normal((5, 4))
    y = to_numpy(layer.forward(xp.asarray(x)))
    w, b = to_numpy(layer.params["weight"]), to_numpy(layer.params["bias"])
    assert w.shape == (3, 4) and b.shape == (3,)
    np.testing.assert_allclose(y, np.einsum("bi,oi->bo", x, w) + b)


@pytest.mark.parametrize("bias", [True, False])
def test_gradient_check(xp, rng, bias):
    layer = on(xp, Dense(6, 4, bias=bias, dtype=np.float64, rng=rng))
    errors = layer_gradient_errors(layer, xp.asarray(rng.standard_normal((3, 6))), rng)
    assert set(errors) == ({"input", "weight", "bias"} if bias else {"input", "weight"})
    assert max(errors.values()) < 1e-6, errors


def test_float32_in_float32_out(rng):
    layer = Dense(3, 2, rng=1)
    y = layer.forward(rng.standard_normal((2, 3)).astype(np.float32))
    assert y.dtype == np.float32
    assert layer.backward(np.ones_like(y)).dtype == np.float32
    assert layer.grads["weight"].dtype == np.float32


def test_init_is_uniform_within_fan_in_bound_and_seeded():
    layer = Dense(16, 8, rng=np.random.default_rng(3))
    for value in layer.params.values():
        assert np.abs(value).max() <= 0.25
    np.testing.assert_array_equal(layer.params["weight"], Dense(16, 8, rng=3).params["weight"])


def test_bad_inputs_name_the_parameter():
    layer = Dense(4, 2)
    with pytest.raises(ValueError, match=r"x must be 2-D, got shape \(2, 4, 1\)"):
        layer.forward(np.zeros((2, 4, 1), np.float32))
    with pytest.raises(ValueError, match=r"4 features \(in_features\), got shape \(2, 5\)"):
        layer.forward(np.zeros((2, 5), np.float32))
    with pytest.raises(TypeError, match="x has dtype float64 but the layer's dtype is float32"):
        layer.forward(np.zeros((2, 4)))
    with pytest.raises(TypeError, match="real floating.*int64"):
        layer.forward(np.zeros((2, 4), np.int64))
    layer.forward(np.zeros((2, 4), np.float32))
    with pytest.raises(ValueError, match=r"dy must have the output's shape \(2, 2\), got \(2, 3\)"):
        layer.backward(np.zeros((2, 3), np.float32))
    with pytest.raises(ValueError, match="in_features must be an integer >= 1, got -1"):
        Dense(-1, 2)


def test_repr():
    assert repr(Dense(4, 2, bias=False)) == "Dense(in_features=4, out_features=2, bias=False, dtype=float32)"
