"""specref.init.lsuv: every weight layer's output has the target RMS, and only scales change."""
import numpy as np
import pytest

from specref import nets
from specref.data import load
from specref.init import SCALED_LAYERS, lsuv
from specref.spectrum import Spectrum
from specref.training import train


def rms(y):
    values = y.values if isinstance(y, Spectrum) else y
    return float(np.sqrt(np.mean(np.abs(values) ** 2)))


def weight_layer_outputs(net, x):
    """RMS of every weight layer's output, by running the leaves one by one (no hooks)."""
    found = []

    def run(seq, x):
        for layer in seq.layers:
            if hasattr(layer, "layers"):              # Sequential / DenseConcat: recurse by hand
                inner = run(layer, x)
                x = _concat(x, inner) if type(layer).__name__ == "DenseConcat" else inner
                continue
            x = layer.forward(x)
            if isinstance(layer, SCALED_LAYERS):
                found.append(rms(x))
        return x

    run(net, x)
    net.clear_cache()
    return found


def _concat(x, out):
    if isinstance(x, Spectrum):
        return x.like(np.concatenate([x.values, out.values], axis=1))
    return np.concatenate([x, out], axis=1)


CASES = [("lenet", {}), ("spec-lenet", {}), ("spec-vgg11", {}),
         ("spec-densenet121", {"input_shape": (3, 16, 16), "growth_rate": 4})]


@pytest.mark.parametrize("name,options", CASES)
def test_every_weight_layer_gets_the_target_rms(name, options, rng):
    options = {"input_shape": (3, 32, 32), **options}
    net = nets.build(name, beta=0.0, dtype=np.float64, **options)
    x = rng.standard_normal((6, *options["input_shape"]))
    before = weight_layer_outputs(net, x)
    report = lsuv(net, x, target=0.7)
    after = weight_layer_outputs(net, x)
    assert len(report) == len(after) - 1                    # the logits layer is skipped
    np.testing.assert_allclose(after[:-1], 0.7, rtol=1e-9)
    assert before[0] == pytest.approx(report[0]["rms_before"], rel=1e-9)
    # the default init shrinks the signal with depth; lsuv undoes exactly that
    assert max(r["scale"] for r in report) > 1.5


def test_only_the_scale_of_each_layer_changes(rng):
    net = nets.build("spec-lenet", beta=0.1, dtype=np.float64)
    drawn = {k: v.copy() for k, v in net.parameters().items()}
    report = lsuv(net, rng.standard_normal((4, 3, 32, 32)))
    scales = {r["layer"]: r["scale"] for r in report}
    for key, value in net.parameters().items():
        layer = key.rsplit(".", 1)[0]
        np.testing.assert_allclose(value, scales.get(layer, 1.0) * drawn[key], rtol=1e-12, err_msg=key)
    last = max(net.parameters(), key=lambda k: int(k.split(".")[0])).rsplit(".", 1)[0]
    assert last not in scales


def test_hooks_are_removed_and_caches_cleared(rng):
    net = nets.build("lenet", dtype=np.float64)
    lsuv(net, rng.standard_normal((4, 3, 32, 32)), skip_last=False)
    for _, layer in net.named_layers():
        assert "forward" not in vars(layer)
        assert not layer.cache
    assert rms(net.forward(rng.standard_normal((4, 3, 32, 32)))) > 0


@pytest.mark.parametrize("target", [0, -1.0, float("nan")])
def test_bad_target_is_refused(target):
    with pytest.raises(ValueError, match="target"):
        lsuv(nets.build("lenet"), np.zeros((1, 3, 32, 32), np.float32), target=target)


def test_train_applies_lsuv_before_the_first_step():
    data = load("digits").subset(160, 64)
    plain = train("spec-lenet", data, epochs=1, max_steps=1, lr=1e-12, momentum=0.0, beta=0.0,
                  batch_size=32, progress=False)
    scaled = train("spec-lenet", data, epochs=1, max_steps=1, lr=1e-12, momentum=0.0, beta=0.0,
                   batch_size=32, progress=False, init="lsuv")
    assert scaled.summary["init"] == "lsuv" and plain.summary["init"] == "default"
    p, s = plain.net.parameters(), scaled.net.parameters()
    ratios = [float(np.linalg.norm(s[k]) / np.linalg.norm(p[k])) for k in p if k.endswith("weight")]
    assert any(abs(r - 1) > 0.2 for r in ratios[:-1])
    assert ratios[-1] == pytest.approx(1.0, abs=1e-6)


def test_train_refuses_an_unknown_init():
    with pytest.raises(ValueError, match="init must be one of"):
        train("lenet", load("digits").subset(64, 32), epochs=1, init="xavier", progress=False)
