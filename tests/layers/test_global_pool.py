import numpy as np
import pytest

from specref.layers.global_pool import GlobalAvgPool2d
from specref.testing import layer_gradient_errors


def test_is_the_spatial_mean(xp, rng):
    x = rng.standard_normal((2, 3, 5, 4))
    y = GlobalAvgPool2d().forward(xp.asarray(x))
    assert y.shape == (2, 3)
    np.testing.assert_allclose(y if xp is np else y.get(), x.mean(axis=(2, 3)), rtol=1e-12)


@pytest.mark.parametrize("shape", [(2, 3, 5, 4), (1, 1, 1, 1), (3, 2, 7, 7)])
def test_gradient(shape, rng):
    errors = layer_gradient_errors(GlobalAvgPool2d(), rng.standard_normal(shape), rng)
    assert max(errors.values()) < 1e-6, errors


def test_backward_spreads_evenly(rng):
    layer = GlobalAvgPool2d()
    layer.forward(rng.standard_normal((2, 3, 4, 5)))
    dy = rng.standard_normal((2, 3))
    dx = layer.backward(dy)
    np.testing.assert_allclose(dx, np.broadcast_to(dy[:, :, None, None] / 20, (2, 3, 4, 5)))


def test_keeps_float32(rng):
    layer = GlobalAvgPool2d()
    y = layer.forward(rng.standard_normal((2, 3, 4, 4)).astype(np.float32))
    assert y.dtype == np.float32
    assert layer.backward(np.ones((2, 3), np.float32)).dtype == np.float32


def test_rejects_wrong_inputs(rng):
    layer = GlobalAvgPool2d()
    with pytest.raises(ValueError, match="4-D"):
        layer.forward(rng.standard_normal((2, 3, 4)))
    layer.forward(rng.standard_normal((2, 3, 4, 4)))
    with pytest.raises(ValueError, match=r"output's shape \(2, 3\)"):
        layer.backward(np.ones((2, 4)))
    with pytest.raises(RuntimeError, match="before forward"):
        GlobalAvgPool2d().backward(np.ones((2, 3)))
