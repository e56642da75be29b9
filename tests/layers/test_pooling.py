import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from specref.backend import to_numpy
from specref.layers.pooling import AvgPool2d, MaxPool2d
from specref.testing import layer_gradient_errors


def loop_pool(x, k, s, reduce):
    B, C, M, N = x.shape
    Mo, No = (M - k) // s + 1, (N - k) // s + 1
    y = np.empty((B, C, Mo, No))
    for b in range(B):
        for c in range(C):
            for i in range(Mo):
                for j in range(No):
                    y[b, c, i, j] = reduce(x[b, c, i * s:i * s + k, j * s:j * s + k])
    return y


@st.composite
def pool_cases(draw):
    k = draw(st.integers(1, 4))
    s = draw(st.one_of(st.none(), st.integers(1, 4)))
    M, N = draw(st.integers(k, 9)), draw(st.integers(k, 9))
    seed = draw(st.integers(0, 2**32 - 1))
    return k, s, np.random.default_rng(seed).standard_normal((2, 3, M, N))


@settings(max_examples=40)
@given(pool_cases())
def test_forward_matches_loop_reference(case):
    k, s, x = case
    stride = k if s is None else s
    np.testing.assert_allclose(MaxPool2d(k, s).forward(x), loop_pool(x, k, stride, np.max))
    np.testing.assert_allclose(AvgPool2d(k, s).forward(x), loop_pool(x, k, stride, np.mean), atol=1e-14)


def test_avgpool_2x2_is_a_reshape_mean(xp, rng):
    x = rng.standard_normal((2, 3, 8, 6))
    y = AvgPool2d().forward(xp.asarray(x))
    np.testing.assert_allclose(to_numpy(y), x.reshape(2, 3, 4, 2, 3, 2).mean(axis=(3, 5)))


def test_output_size_is_floored_like_pytorch():
    x = np.zeros((1, 1, 7, 5))
    assert MaxPool2d(2).forward(x).shape == (1, 1, 3, 2)
    assert AvgPool2d(3, stride=2).forward(x).shape == (1, 1, 3, 2)


def distinct_values(rng, shape):
    """Values at least 0.1 apart, so a 1e-6 step never changes which entry is the maximum."""
    return rng.permutation(np.prod(shape)).reshape(shape) * 0.1


@pytest.mark.parametrize("k, stride", [(2, None), (3, None), (3, 2), (2, 1)])
@pytest.mark.parametrize("Pool", [MaxPool2d, AvgPool2d])
def test_gradient_check(xp, rng, Pool, k, stride):
    x = xp.asarray(distinct_values(rng, (2, 3, 7, 8)))
    errors = layer_gradient_errors(Pool(k, stride), x, rng)
    assert set(errors) == {"input"}
    assert errors["input"] < 1e-6


def test_maxpool_tie_sends_gradient_to_first_maximum_only(xp):
    x = xp.asarray(np.array([[[[1.0, 3.0], [3.0, 3.0]]]]))
    pool = MaxPool2d(2)
    assert float(pool.forward(x)[0, 0, 0, 0]) == 3.0
    dx = pool.backward(xp.asarray(np.array([[[[5.0]]]])))
    np.testing.assert_array_equal(to_numpy(dx), [[[[0.0, 5.0], [0.0, 0.0]]]])


def test_overlapping_windows_add_their_gradients():
    x = np.zeros((1, 1, 4, 3))
    x[0, 0, 1] = 9.0
    pool = MaxPool2d(2, stride=1)
    pool.forward(x)
    dx = pool.backward(np.ones((1, 1, 3, 2)))
    # The windows starting at rows 0 and 1 both pick row 1; the all-zero window at row 2 ties and
    # picks its first entry.
    np.testing.assert_array_equal(dx[0, 0], [[0, 0, 0], [2, 2, 0], [1, 1, 0], [0, 0, 0]])


def test_bad_inputs_name_the_parameter():
    with pytest.raises(ValueError, match=r"at least 3 x 3 \(kernel_size\), got shape \(1, 1, 2, 5\)"):
        MaxPool2d(3).forward(np.zeros((1, 1, 2, 5)))
    with pytest.raises(ValueError, match=r"x must be 4-D"):
        AvgPool2d().forward(np.zeros((4, 4)))
    with pytest.raises(TypeError, match="real floating.*int32"):
        MaxPool2d().forward(np.zeros((1, 1, 4, 4), np.int32))
    with pytest.raises(ValueError, match="stride must be an integer >= 1, got 0"):
        AvgPool2d(2, stride=0)
    with pytest.raises(ValueError, match="kernel_size must be an integer >= 1, got 1.5"):
        MaxPool2d(1.5)
    pool = AvgPool2d()
    pool.forward(np.zeros((1, 1, 4, 4)))
    with pytest.raises(ValueError, match=r"dy must have the output's shape \(1, 1, 2, 2\)"):
        pool.backward(np.zeros((1, 1, 4, 4)))


def test_repr():
    assert repr(MaxPool2d(3, 2)) == "MaxPool2d(kernel_size=3, stride=2)"
    assert repr(AvgPool2d()) == "AvgPool2d(kernel_size=2, stride=2)"
