import numpy as np
import pytest

from specref import nets
from specref.layers.activation import ComplexTanh
from specref.layers.batchnorm import BatchNorm2d
from specref.layers.conv2d import Conv2d
from specref.layers.dense import Dense
from specref.layers.dense_concat import DenseConcat
from specref.layers.downsample import SpectralDownsample
from specref.layers.loss import SoftmaxCrossEntropy
from specref.layers.pooling import MaxPool2d
from specref.layers.spatial_activation import ReLU, Tanh
from specref.layers.spectral_conv import SpectralConv2d
from specref.layers.sequential import Sequential
from specref.layers.threshold import Threshold
from specref.spectrum import Spectrum
from specref.testing import inner, random_like

BASES = ["lenet", "alexnet", "vgg11", "vgg16", "densenet121", "densenet169"]
# Spatial VGG needs 32 x 32 (five halvings), Spec-VGG at least 31 (its last block's 3 x 3
# convolutions need a 3 x 3 map); the others run at smaller inputs to keep the suite fast
# (a Spec-DenseNet step at 32 x 32 takes 3-11 s here; 16 x 16 still meets both of its pools).
SIDES = {"lenet": 16, "alexnet": 16, "vgg11": 32, "vgg16": 32, "densenet121": 32, "densenet169": 32,
         "spec-lenet": 8, "spec-alexnet": 8, "spec-vgg11": 32, "spec-vgg16": 32,
         "spec-densenet121": 16, "spec-densenet169": 16}
SPEC_NAMES = ["spec-" + base for base in BASES]


def small(name, **options):
    side = SIDES[name]
    return nets.build(name, input_shape=(3, side, side), **options)


def layers_of(net):
    return [layer for _, layer in net.named_layers()]


def training_step(net, batch=2, seed=0):
    rng = np.random.default_rng(seed)
    dtype = next(iter(net.parameters().values())).dtype
    x = rng.standard_normal((batch, *net.input_shape)).astype(dtype)
    labels = rng.integers(0, net.num_classes, batch)
    loss = SoftmaxCrossEntropy()
    value = loss(net.forward(x), labels)
    net.backward(loss.backward())
    return float(value)


def test_names_lists_every_form():
    assert nets.names() == BASES + SPEC_NAMES


@pytest.mark.parametrize("name", BASES + SPEC_NAMES)
def test_one_training_step_gives_finite_gradients(name):
    net = small(name)
    assert net.name == name and net.spectral == name.startswith("spec-")
    assert np.isfinite(training_step(net))
    params, grads = net.parameters(), net.gradients()
    assert params.keys() == grads.keys()
    for key, p in params.items():
        assert grads[key].shape == p.shape and grads[key].dtype == p.dtype, key
        assert np.all(np.isfinite(grads[key])), key


@pytest.mark.parametrize("name", SPEC_NAMES)
def test_spec_nets_are_blocks_of_conv_threshold_tanh(name):
    net = small(name)
    layers = layers_of(net)
    assert not any(isinstance(layer, (BatchNorm2d, Conv2d, MaxPool2d)) for layer in layers)
    convs = [i for i, layer in enumerate(layers) if isinstance(layer, SpectralConv2d)]
    assert convs
    for i in convs:
        assert isinstance(layers[i + 1], Threshold) and isinstance(layers[i + 2], ComplexTanh)
    kinds = (Threshold, ComplexTanh)
    assert sum(isinstance(layer, kinds) for layer in layers) == 2 * len(convs)
    assert all(layer.beta == nets.DEFAULT_BETA for layer in layers if isinstance(layer, Threshold))
    assert net.beta == nets.DEFAULT_BETA and net.fft_norm == "ortho" and net.config["beta"] == net.beta


def test_spec_densenet_concatenates_spectra_in_float64():
    net = nets.build("spec-densenet121", input_shape=(3, 16, 16), dtype=np.float64)
    concats = [layer for layer in net.layers if isinstance(layer, DenseConcat)]
    assert len(concats) == 6 + 12 + 24 + 16
    x = np.random.default_rng(0).standard_normal((1, 3, 16, 16))
    sizes = []
    for layer in net.layers:
        x = layer.forward(x)
        if isinstance(layer, DenseConcat):
            assert isinstance(x, Spectrum)
        assert x.dtype == (np.complex128 if isinstance(x, Spectrum) else np.float64)
        if isinstance(layer, SpectralDownsample):
            sizes.append((x.size, layer.mode, layer.prefilter))
    # 18 x 18 is even: the box average pool; 9 and 5 are odd: crop.
    assert sizes == [((9, 9), "alias", "box"), ((5, 5), "crop", None), ((3, 3), "crop", None)]


@pytest.mark.parametrize("name", ["spec-lenet", "spec-alexnet"])   # spec-densenet121: above
def test_float64_build_keeps_complex128_spectra(name):
    net = nets.build(name, input_shape=(3, 16, 16), dtype=np.float64)
    assert all(p.dtype == np.float64 for p in net.parameters().values())
    x = np.random.default_rng(0).standard_normal((1, 3, 16, 16))
    spectra = 0
    for layer in net.layers:
        x = layer.forward(x)
        if isinstance(x, Spectrum):
            assert x.dtype == np.complex128
            spectra += 1
        else:
            assert x.dtype == np.float64
    assert spectra > 0


@pytest.mark.parametrize("name", ["lenet", "spec-lenet", "densenet121", "spec-densenet121"])
def test_weights_are_drawn_from_the_seed(name):
    build = lambda seed: nets.build(name, input_shape=(3, 16, 16), seed=seed).parameters()  # noqa: E731
    first, again, other = build(3), build(3), build(4)
    assert first.keys() == again.keys() == other.keys()
    for key in first:
        np.testing.assert_array_equal(first[key], again[key])
    drawn = [key for key in first if key.endswith("weight")]
    assert drawn and all(not np.array_equal(first[key], other[key]) for key in drawn)


def lenet_parameter_count(channels, features):
    conv1 = 6 * channels * 5 * 5 + 6
    conv2 = 16 * 6 * 5 * 5 + 16
    dense = features * 120 + 120 + 120 * 84 + 84 + 84 * 10 + 10
    return conv1 + conv2 + dense


@pytest.mark.parametrize("name, channels, features, total", [
    ("lenet", 3, 16 * 5 * 5, 62_006),        # 32 -> 28 -> 14 -> 10 -> 5
    ("lenet", 1, 16 * 5 * 5, 61_706),        # digits
    ("spec-lenet", 3, 16 * 9 * 9, 169_526),  # 32 -> 36 -> 18 -> 18 -> 9
    ("spec-lenet", 1, 16 * 9 * 9, 169_226),
])
def test_lenet_parameter_counts(name, channels, features, total):
    net = nets.build(name, input_shape=(channels, 32, 32))
    assert lenet_parameter_count(channels, features) == total
    assert sum(p.size for p in net.parameters().values()) == total
    assert next(layer for layer in net.layers if isinstance(layer, Dense)).in_features == features


@pytest.mark.parametrize("name, features", [
    ("vgg16", 512), ("spec-vgg16", 512 * 2 * 2), ("alexnet", 256 * 4 * 4), ("spec-alexnet", 256 * 5 * 5),
    ("densenet121", 384), ("spec-densenet121", 384), ("densenet169", 624), ("spec-densenet169", 624),
])
def test_dense_head_input_follows_the_map_shape(name, features):
    net = nets.build(name)
    assert next(layer for layer in net.layers if isinstance(layer, Dense)).in_features == features


def test_options_reach_the_layers():
    relu = nets.build("vgg11", activation="relu", batch_norm=True)
    layers = layers_of(relu)
    convs = [i for i, layer in enumerate(layers) if isinstance(layer, Conv2d)]
    assert all(isinstance(layers[i + 1], BatchNorm2d) and isinstance(layers[i + 2], ReLU) for i in convs)
    assert not any(isinstance(layer, Tanh) for layer in layers)
    assert any(isinstance(layer, BatchNorm2d) for layer in layers_of(nets.build("densenet121")))
    assert not any(isinstance(layer, BatchNorm2d)
                   for layer in layers_of(nets.build("densenet121", batch_norm=False)))
    alias = nets.build("spec-lenet", pooling="alias", beta=0.5, fft_norm="backward")
    assert all(layer.mode == "alias" for layer in alias.layers if isinstance(layer, SpectralDownsample))
    assert alias.beta == 0.5 and alias.fft_norm == "backward"
    assert all(layer.fft_norm == "backward" for layer in alias.layers if isinstance(layer, SpectralConv2d))
    dense = nets.build("densenet121", growth_rate=4, compression=0.5, input_shape=(1, 16, 16), num_classes=3)
    # k = 4: 8 + 6*4 = 32 -> 16, + 12*4 = 64 -> 32, + 24*4 = 128 -> 64, + 16*4 = 128
    assert dense.layers[-1].in_features == 128 and dense.layers[-1].out_features == 3
    assert nets.build("alexnet", fc_width=64).layers[-1].in_features == 64


def test_attributes_of_a_spatial_net():
    net = nets.build("lenet", beta=2.0, input_shape=(1, 32, 32), num_classes=4)
    assert (net.name, net.beta, net.fft_norm, net.spectral) == ("lenet", None, None, False)
    assert net.input_shape == (1, 32, 32) and net.num_classes == 4
    assert net.config["batch_norm"] is False


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="unknown network 'resnet50'.*spec-densenet169"):
        nets.build("resnet50")
    with pytest.raises(ValueError, match="Spec nets have no batch norm"):
        nets.build("spec-vgg16", batch_norm=True)
    with pytest.raises(ValueError, match="unknown option.*'depth'.*growth_rate"):
        nets.build("densenet121", depth=40)
    with pytest.raises(ValueError, match="too small for vgg16"):
        nets.build("vgg16", input_shape=(3, 16, 16))
    with pytest.raises(ValueError, match="activation"):
        nets.build("lenet", activation="sigmoid")
    with pytest.raises(ValueError, match="pooling"):
        nets.build("spec-lenet", pooling="max")
    with pytest.raises(ValueError, match="input_shape"):
        nets.build("lenet", input_shape=(32, 32))
    with pytest.raises(ValueError, match="beta"):
        nets.build("spec-lenet", beta=-1)
    with pytest.raises(TypeError, match="float32 or float64"):
        nets.build("lenet", dtype=np.int32)


def threshold_margin(net, x):
    """The smallest distance between |Y| and beta over every Threshold input of the forward pass."""
    margin = np.inf
    for layer in net.layers:
        if isinstance(layer, Threshold):
            margin = min(margin, float(np.min(np.abs(np.abs(x.values) - layer.beta))))
        x = layer.forward(x)
    return margin


def test_spec_lenet_end_to_end_gradient(rng):
    net = nets.build("spec-lenet", beta=0.02, dtype=np.float64, input_shape=(1, 12, 12), num_classes=3)
    x = rng.standard_normal((2, 1, 12, 12))
    labels = np.array([0, 2])
    assert threshold_margin(net, x) > 1e-4      # no entry sits on the threshold's kink
    loss = SoftmaxCrossEntropy()
    loss(net.forward(x), labels)
    dx = net.backward(loss.backward())
    params, grads = net.parameters(), net.gradients()
    grads = {key: g.copy() for key, g in grads.items()}
    directions = {key: random_like(p, rng) for key, p in params.items()}
    x_direction = random_like(x, rng)
    originals = {key: p.copy() for key, p in params.items()}
    eps = 1e-6

    def loss_at(step):
        for key, p in params.items():
            p[...] = originals[key] + step * directions[key]
        return float(loss(net.forward(x + step * x_direction), labels))

    numeric = (loss_at(eps) - loss_at(-eps)) / (2 * eps)
    analytic = sum(inner(grads[key], directions[key]) for key in params) + inner(dx, x_direction)
    assert abs(numeric - analytic) / max(1.0, abs(numeric)) < 1e-6
    assert abs(analytic) > 1e-3                 # the check is not vacuous


def test_beta_lives_in_the_thresholds_only():
    net = nets.build("spec-lenet", beta=0.3, input_shape=(1, 16, 16))
    thresholds = [layer for _, layer in net.named_layers() if isinstance(layer, Threshold)]
    assert net.beta == net.config["beta"] == 0.3 and all(t.beta == 0.3 for t in thresholds)
    net.beta = 0.05
    assert net.config["beta"] == 0.05 and all(t.beta == 0.05 for t in thresholds)
    thresholds[0].beta = 0.2
    assert net.beta == [0.05, 0.2]
    with pytest.raises(ValueError, match="beta must be a finite number >= 0, got nan"):
        net.beta = float("nan")
    with pytest.raises(ValueError, match="no layer with a beta"):
        nets.build("lenet").beta = 0.1


def test_spatial_baselines_have_the_same_architecture():
    net = nets.build("spec-alexnet", input_shape=(3, 16, 16), num_classes=4, fc_width=32, seed=3)
    found = list(nets.spatial_baselines(net, dtype=np.float64, input_shape=(3, 16, 16)))
    assert [(suffix, label) for suffix, label, _ in found] == [
        ("", "alexnet (tanh, no batch norm)"), ("_bn", "alexnet (relu, batch norm)")]
    for (_, _, spatial), batch_norm in zip(found, (False, True)):
        assert spatial.name == "alexnet" and spatial.config["batch_norm"] is batch_norm
        assert spatial.config["fc_width"] == 32 and spatial.config["seed"] == 3
        assert spatial.config["dtype"] == "float64" and spatial.num_classes == 4
    lenet = nets.build("lenet")
    assert next(nets.spatial_baselines(lenet, np.float32, (3, 32, 32)))[2] is lenet
    assert list(nets.spatial_baselines(Sequential([Dense(2, 2)]), np.float32, (3, 32, 32))) == []
