import numpy as np
import pytest

from specref.backend import to_numpy
from specref.layers.batchnorm import BatchNorm2d
from specref.testing import layer_gradient_errors


def on(xp, layer):
    layer.params = {key: xp.asarray(value) for key, value in layer.params.items()}
    layer.buffers = {key: xp.asarray(value) for key, value in layer.buffers.items()}
    return layer


def test_train_output_is_standardized_per_channel(xp, rng):
    x = rng.standard_normal((4, 3, 5, 6)) * np.array([1.0, 10.0, 0.1])[:, None, None] + 7
    y = to_numpy(on(xp, BatchNorm2d(3, dtype=np.float64)).forward(xp.asarray(x)))
    np.testing.assert_allclose(y.mean(axis=(0, 2, 3)), 0, atol=1e-12)
    # var(y) = var / (var + eps): 1 up to eps relative to each channel's variance
    np.testing.assert_allclose(y.var(axis=(0, 2, 3)), x.var(axis=(0, 2, 3)) / (x.var(axis=(0, 2, 3)) + 1e-5))
    assert abs(y[:, 0].var() - 1) < 1e-4


def test_train_updates_running_stats_with_unbiased_variance(rng):
    x = rng.standard_normal((2, 3, 4, 5)) + 3
    bn = BatchNorm2d(3, momentum=0.25, dtype=np.float64)
    running_mean = bn.running_mean
    bn.forward(x)
    assert bn.running_mean is running_mean  # updated in place
    np.testing.assert_allclose(bn.running_mean, 0.25 * x.mean(axis=(0, 2, 3)))
    np.testing.assert_allclose(bn.running_var, 0.75 + 0.25 * x.var(axis=(0, 2, 3), ddof=1))


def test_eval_uses_running_stats_and_leaves_them(xp, rng):
    bn = on(xp, BatchNorm2d(2, dtype=np.float64))
    bn.buffers["running_mean"][...] = xp.asarray(np.array([1.0, -2.0]))
    bn.buffers["running_var"][...] = xp.asarray(np.array([4.0, 0.25]))
    bn.params["gamma"][...] = xp.asarray(np.array([2.0, 3.0]))
    bn.params["beta"][...] = xp.asarray(np.array([0.5, -1.0]))
    x = rng.standard_normal((3, 2, 4, 4))
    y = to_numpy(bn.eval().forward(xp.asarray(x)))
    mean, var = np.array([1.0, -2.0]), np.array([4.0, 0.25])
    expected = (np.array([2.0, 3.0])[:, None, None] * (x - mean[:, None, None]) / np.sqrt(var + 1e-5)[:, None, None]
                + np.array([0.5, -1.0])[:, None, None])
    np.testing.assert_allclose(y, expected)
    np.testing.assert_array_equal(to_numpy(bn.running_mean), mean)
    np.testing.assert_array_equal(to_numpy(bn.running_var), var)
    assert bn.train().training


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_gradient_check(xp, rng, mode):
    bn = on(xp, BatchNorm2d(3, dtype=np.float64))
    bn.params["gamma"][...] = xp.asarray(rng.uniform(0.5, 2, 3))
    bn.params["beta"][...] = xp.asarray(rng.standard_normal(3))
    bn.buffers["running_var"][...] = xp.asarray(rng.uniform(0.5, 2, 3))
    bn.train(mode == "train")
    x = xp.asarray(rng.standard_normal((3, 3, 4, 5)) * 2 + 1)
    errors = layer_gradient_errors(bn, x, rng)
    assert set(errors) == {"input", "gamma", "beta"}
    assert max(errors.values()) < 1e-6, errors


def test_float32_stays_float32(rng):
    bn = BatchNorm2d(2)
    y = bn.forward(rng.standard_normal((2, 2, 3, 3)).astype(np.float32))
    assert y.dtype == np.float32 and bn.running_var.dtype == np.float32
    assert bn.backward(np.ones_like(y)).dtype == np.float32


def test_bad_inputs_name_the_parameter():
    bn = BatchNorm2d(3)
    with pytest.raises(ValueError, match=r"3 channels \(num_features\), got shape \(1, 4, 2, 2\)"):
        bn.forward(np.zeros((1, 4, 2, 2), np.float32))
    with pytest.raises(ValueError, match="x must be 4-D"):
        bn.forward(np.zeros((2, 3), np.float32))
    with pytest.raises(TypeError, match="x has dtype float64 but the layer's dtype is float32"):
        bn.forward(np.zeros((1, 3, 2, 2)))
    with pytest.raises(TypeError, match="real floating.*int64"):
        bn.forward(np.zeros((1, 3, 2, 2), np.int64))
    with pytest.raises(ValueError, match=r"more than one value per channel in train mode, got shape \(1, 3, 1, 1\)"):
        bn.forward(np.zeros((1, 3, 1, 1), np.float32))
    assert bn.eval().forward(np.zeros((1, 3, 1, 1), np.float32)).shape == (1, 3, 1, 1)
    with pytest.raises(ValueError, match="momentum must be a number in \\[0, 1\\], got 1.5"):
        BatchNorm2d(3, momentum=1.5)
    with pytest.raises(ValueError, match="eps must be a positive number, got 0"):
        BatchNorm2d(3, eps=0)
    with pytest.raises(ValueError, match="num_features must be an integer >= 1, got 0"):
        BatchNorm2d(0)


def test_repr():
    assert repr(BatchNorm2d(4)) == "BatchNorm2d(4, eps=1e-05, momentum=0.1, dtype=float32)"
