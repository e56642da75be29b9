import numpy as np
import pytest

from specref.backend import to_numpy
from specref.layers.flatten import Flatten
from specref.testing import layer_gradient_errors


def test_flattens_in_row_major_order_and_back(xp, rng):
    x = rng.standard_normal((2, 3, 4, 5))
    flatten = Flatten()
    y = flatten.forward(xp.asarray(x))
    assert y.shape == (2, 60)
    np.testing.assert_array_equal(to_numpy(y)[1], x[1].ravel())
    dy = rng.standard_normal((2, 60))
    np.testing.assert_array_equal(to_numpy(flatten.backward(xp.asarray(dy))), dy.reshape(2, 3, 4, 5))


def test_gradient_check(rng):
    errors = layer_gradient_errors(Flatten(), rng.standard_normal((3, 2, 5)), rng)
    assert set(errors) == {"input"} and errors["input"] < 1e-6


def test_bad_inputs_name_the_parameter():
    with pytest.raises(ValueError, match=r"ndim >= 2\), got shape \(5,\)"):
        Flatten().forward(np.zeros(5))
    with pytest.raises(TypeError, match="x must be a real floating array.*int64"):
        Flatten().forward(np.zeros((2, 2), np.int64))
    flatten = Flatten()
    flatten.forward(np.zeros((2, 3, 4)))
    with pytest.raises(ValueError, match=r"dy must have the output's shape \(2, 12\), got \(2, 3, 4\)"):
        flatten.backward(np.zeros((2, 3, 4)))
