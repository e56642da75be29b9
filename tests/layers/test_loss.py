import numpy as np
import pytest

from specref.layers.loss import SoftmaxCrossEntropy, accuracy
from specref.testing import inner, random_like


def test_value_matches_direct_log_softmax(xp, rng):
    logits = rng.standard_normal((6, 4)) * 3
    labels = rng.integers(0, 4, 6)
    loss = SoftmaxCrossEntropy().forward(xp.asarray(logits), xp.asarray(labels))
    log_softmax = np.log(np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True))
    assert float(loss) == pytest.approx(-log_softmax[np.arange(6), labels].mean(), rel=1e-12)


def test_large_logits_do_not_overflow():
    logits = np.array([[1000.0, 0.0], [0.0, 1000.0]], dtype=np.float32)
    loss = SoftmaxCrossEntropy()
    assert float(loss.forward(logits, np.array([0, 0]))) == pytest.approx(500.0)
    assert np.isfinite(loss.backward()).all()


def test_gradient_by_finite_differences(xp, rng):
    logits = xp.asarray(rng.standard_normal((5, 3)))
    labels = xp.asarray(rng.integers(0, 3, 5))
    loss = SoftmaxCrossEntropy()
    loss.forward(logits, labels)
    dlogits = loss.backward()
    t, eps = random_like(logits, rng), 1e-6
    numeric = (float(loss.forward(logits + eps * t, labels)) - float(loss.forward(logits - eps * t, labels))) / (2 * eps)
    assert abs(numeric - inner(dlogits, t)) < 1e-6 * max(1.0, abs(numeric))


def test_gradient_is_softmax_minus_onehot_over_batch_and_scales_with_dy(rng):
    logits = rng.standard_normal((4, 5))
    labels = np.array([0, 4, 2, 2])
    loss = SoftmaxCrossEntropy()
    loss.forward(logits, labels)
    softmax = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(loss.backward(), (softmax - np.eye(5)[labels]) / 4)
    np.testing.assert_allclose(loss.backward(2.5), 2.5 * (softmax - np.eye(5)[labels]) / 4)


def test_float32_loss_and_gradient_stay_float32(rng):
    loss = SoftmaxCrossEntropy()
    value = loss.forward(rng.standard_normal((3, 4)).astype(np.float32), np.array([1, 2, 3]))
    assert value.dtype == np.float32 and value.shape == ()
    assert loss.backward().dtype == np.float32


def test_accuracy(xp):
    logits = xp.asarray(np.array([[0.1, 0.9], [2.0, -1.0], [0.3, 0.2], [0.0, 5.0]]))
    assert accuracy(logits, xp.asarray(np.array([1, 0, 1, 0]))) == 0.5
    assert isinstance(accuracy(logits, xp.asarray(np.array([1, 0, 0, 1]))), float)


@pytest.mark.parametrize("check", [SoftmaxCrossEntropy().forward, accuracy])
def test_bad_labels_raise_clear_errors(check):
    logits = np.zeros((3, 4))
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 4\) for 4 classes .*got values in \[0, 4\]"):
        check(logits, np.array([0, 4, 1]))
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 4\).*\[-1, 2\]"):
        check(logits, np.array([-1, 2, 1]))
    with pytest.raises(ValueError, match=r"one entry per row of logits \(3\), got 2"):
        check(logits, np.array([0, 1]))
    with pytest.raises(ValueError, match=r"labels must be a 1-D integer array, got shape \(3, 1\)"):
        check(logits, np.zeros((3, 1), int))
    with pytest.raises(TypeError, match="labels must be an integer array .*float64"):
        check(logits, np.zeros(3))
    with pytest.raises(ValueError, match=r"logits must be 2-D, got shape \(3,\)"):
        check(np.zeros(3), np.zeros(3, int))
    with pytest.raises(ValueError, match=r"logits must hold at least one row, got shape \(0, 4\)"):
        check(np.zeros((0, 4)), np.zeros(0, int))


def test_backward_before_forward():
    with pytest.raises(RuntimeError, match="backward called before forward"):
        SoftmaxCrossEntropy().backward()
