import numpy as np
import pytest

from specref.optim import SGD, lr_at


def reference_sgd(p, grads, lr, momentum, weight_decay):
    """Independent loop-form reference of PyTorch-convention SGD (float64)."""
    p = p.astype(np.float64).copy()
    v = np.zeros_like(p)
    for g in grads:
        d = g + weight_decay * p
        v = momentum * v + d
        p = p - lr * v
    return p


@pytest.mark.parametrize("momentum", [0.0, 0.9])
@pytest.mark.parametrize("weight_decay", [0.0, 0.01])
def test_matches_reference(momentum, weight_decay):
    rng = np.random.default_rng(0)
    p0 = rng.standard_normal((3, 4))
    grads = [rng.standard_normal((3, 4)) for _ in range(5)]
    p = p0.copy()
    opt = SGD({"w": p}, lr=0.1, momentum=momentum, weight_decay=weight_decay)
    for g in grads:
        opt.step({"w": g})
    np.testing.assert_allclose(p, reference_sgd(p0, grads, 0.1, momentum, weight_decay), rtol=1e-12)


def test_updates_in_place_and_leaves_grads():
    p = np.ones(4, dtype=np.float32)
    g = np.full(4, 2.0, dtype=np.float32)
    opt = SGD({"w": p}, lr=0.5, momentum=0.9, weight_decay=0.1)
    opt.step({"w": g})
    assert opt.params["w"] is p
    assert p.dtype == np.float32
    np.testing.assert_allclose(p, 1 - 0.5 * (2 + 0.1), rtol=1e-5)
    np.testing.assert_array_equal(g, 2.0)


def test_state_dict_round_trip_continues_bit_for_bit():
    rng = np.random.default_rng(1)
    p0 = rng.standard_normal(6).astype(np.float32)
    grads = [rng.standard_normal(6).astype(np.float32) for _ in range(4)]

    p_a = p0.copy()
    opt_a = SGD({"w": p_a}, lr=0.02, momentum=0.95)
    for g in grads:
        opt_a.step({"w": g})

    p_b = p0.copy()
    opt_b = SGD({"w": p_b}, lr=0.02, momentum=0.95)
    for g in grads[:2]:
        opt_b.step({"w": g})
    state = opt_b.state_dict()
    assert isinstance(state["velocity"]["w"], np.ndarray)
    assert state["velocity"]["w"] is not opt_b.velocity["w"]
    p_c = p_b.copy()
    opt_c = SGD({"w": p_c}, lr=1.0)
    opt_c.load_state_dict(state)
    assert opt_c.momentum == 0.95 and opt_c.lr == 0.02
    for g in grads[2:]:
        opt_c.step({"w": g})
    np.testing.assert_array_equal(p_c, p_a)


def test_load_state_dict_rejects_mismatch():
    opt = SGD({"w": np.zeros(3)}, lr=0.1, momentum=0.9)
    state = opt.state_dict()
    state["velocity"] = {"w": np.zeros(4)}
    with pytest.raises(ValueError, match="'w'"):
        opt.load_state_dict(state)
    state["velocity"] = {"other": np.zeros(3)}
    with pytest.raises(ValueError, match="does not match"):
        opt.load_state_dict(state)


def test_step_checks_grads():
    opt = SGD({"w": np.zeros(3)}, lr=0.1)
    with pytest.raises(KeyError, match="'w'"):
        opt.step({})
    with pytest.raises(ValueError, match="shape"):
        opt.step({"w": np.zeros(4)})


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(lr=0.0), "lr"),
        (dict(lr=-1.0), "lr"),
        (dict(lr=float("nan")), "lr"),
        (dict(lr=0.1, momentum=1.0), "momentum"),
        (dict(lr=0.1, momentum=-0.1), "momentum"),
        (dict(lr=0.1, weight_decay=-1.0), "weight_decay"),
    ],
)
def test_validates_hyperparameters(kwargs, name):
    with pytest.raises(ValueError, match=name):
        SGD({"w": np.zeros(2)}, **kwargs)


def test_lr_at_halves_every_period():
    assert lr_at(0, 0.02, 50) == 0.02
    assert lr_at(49, 0.02, 50) == 0.02
    assert lr_at(50, 0.02, 50) == 0.01
    assert lr_at(149, 0.02, 50) == 0.005
    assert lr_at(1000, 0.02, None) == 0.02
    assert lr_at(1000, 0.02, 0) == 0.02


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("weight_decay", [0.0, 0.01])
def test_fused_update_equals_the_array_formula_bit_for_bit(dtype, weight_decay, monkeypatch):
    """The one-pass numba update (the host default) rounds each step as the array formula does."""
    from specref import kernels

    assert kernels._numba() is not None, "numba is a dependency of specref and must import (and SPECREF_NUMBA=0 must not be set)"
    rng = np.random.default_rng(3)
    p0 = rng.standard_normal(70_001).astype(dtype)          # split over the thread pool
    grads = [rng.standard_normal(p0.shape).astype(dtype) for _ in range(3)]
    results = []
    for fused in (True, False):
        if not fused:
            monkeypatch.setattr(kernels, "_numba_kernels", False)
        p = p0.copy()
        opt = SGD({"w": p}, lr=0.05, momentum=0.9, weight_decay=weight_decay)
        for g in grads:
            opt.step({"w": g})
        results.append((p, opt.velocity["w"]))
    np.testing.assert_array_equal(results[0][0], results[1][0])
    np.testing.assert_array_equal(results[0][1], results[1][1])
