"""The PyTorch implementation of the Spec layers (specref.torch_spectral, via torch_bridge.to_torch)
against specref, layer by layer and on whole nets, in float64: values, every gradient.

Gradient convention, made explicit: for a real loss L and complex z, torch's z.grad is twice the
conjugate Wirtinger derivative dL/d conj(z), which is dL/dRe(z) + i dL/dIm(z), specref's
convention; so complex gradients are compared with no conversion (the first test pins this).
Layer-level cases use generic complex inputs (not Hermitian on the DC and Nyquist columns): both
implementations treat the stored half-spectrum values as free variables.
"""
import subprocess
import sys

import numpy as np
import pytest

from specref import fft, nets
from specref.init import lsuv
from specref.layers.activation import ComplexActivation, ComplexTanh
from specref.layers.downsample import SpectralDownsample
from specref.layers.loss import SoftmaxCrossEntropy
from specref.layers.spectral_conv import SpectralConv2d
from specref.layers.threshold import Threshold
from specref.layers.to_spatial import ToSpatial
from specref.optim import SGD
from specref.spectrum import Spectrum

torch = pytest.importorskip("torch", reason="PyTorch is not installed: pip install -e '.[torch]'")

from specref import torch_bridge, torch_spectral  # noqa: E402  (needs torch)

TOLERANCE = 1e-10          # max|a - b| / max|a|, float64


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """These ops are small: with its default two threads on the shared 2-core machine, torch ran
    Spec-DenseNet-121's step 10x slower than with one."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def relative(a, b):
    a, b = np.asarray(a), np.asarray(b)
    scale = np.abs(a).max()
    return float(np.abs(a - b).max() / scale) if scale > 0 else float(np.abs(b).max())


def complex_normal(rng, shape):
    return rng.standard_normal(shape) + 1j * rng.standard_normal(shape)


def test_torch_complex_gradient_is_dL_dRe_plus_i_dL_dIm():
    """L = |z|^2 + 3 Re z - Im z: dL/dRe + i dL/dIm = (2a + 3) + i (2b - 1); dL/d conj(z) is half that."""
    z = torch.tensor([0.3 - 1.2j, -2.0 + 0.5j], dtype=torch.complex128, requires_grad=True)
    (z.abs() ** 2 + 3 * z.real - z.imag).sum().backward()
    a, b = z.detach().real.numpy(), z.detach().imag.numpy()
    np.testing.assert_allclose(z.grad.numpy(), (2 * a + 3) + 1j * (2 * b - 1), rtol=0, atol=1e-15)


# --- layer by layer -----------------------------------------------------------------------------
def _spectral_pair(layer, module, size, rng, channels=3, batch=2):
    """(specref (y, dx), torch (y, dx)) for a random generic half spectrum and cotangent."""
    X = complex_normal(rng, (batch, channels, size[0], fft.half_width(size[1])))
    y = layer.forward(Spectrum(X.copy(), size))
    out = y.values if isinstance(y, Spectrum) else y
    cotangent = complex_normal(rng, out.shape) if np.iscomplexobj(out) else rng.standard_normal(out.shape)
    dx = layer.backward(y.like(cotangent) if isinstance(y, Spectrum) else cotangent).values
    Xt = torch.tensor(X, requires_grad=True)
    yt = module(torch_spectral.Half(Xt, size, "ortho"))
    values = yt.values if isinstance(yt, torch_spectral.Half) else yt
    (dXt,) = torch.autograd.grad(values, Xt, grad_outputs=torch.tensor(cotangent))
    if isinstance(yt, torch_spectral.Half):
        assert yt.size == y.size and yt.norm == y.norm
    return (out, dx), (values.detach().numpy(), dXt.numpy())


@pytest.mark.parametrize("size", [(8, 8), (9, 7), (6, 5), (36, 36)])
@pytest.mark.parametrize("mode", ["alias", "crop"])
@pytest.mark.parametrize("factor", [2, 3])
@pytest.mark.parametrize("prefilter", [None, "box"])
def test_downsample_matches_specref(size, mode, factor, prefilter):
    layer = SpectralDownsample(factor, mode, prefilter=prefilter)
    module = torch_spectral.SpectralDownsample(factor, mode, prefilter)
    (y, dx), (yt, dxt) = _spectral_pair(layer, module, size, np.random.default_rng(sum(size) + factor))
    assert relative(y, yt) <= TOLERANCE and relative(dx, dxt) <= TOLERANCE


@pytest.mark.parametrize("make", [lambda: (Threshold(0.8), torch_spectral.Threshold(0.8)),
                                  lambda: (ComplexTanh(), torch_spectral.ComplexTanh()),
                                  lambda: (ToSpatial(), torch_spectral.ToSpatial())],
                         ids=["threshold", "tanh", "to_spatial"])
@pytest.mark.parametrize("size", [(8, 8), (7, 9)])
def test_elementwise_layers_and_to_spatial_match_specref(make, size):
    layer, module = make()
    (y, dx), (yt, dxt) = _spectral_pair(layer, module, size, np.random.default_rng(size[1]))
    assert relative(y, yt) <= TOLERANCE and relative(dx, dxt) <= TOLERANCE
    if isinstance(layer, Threshold):
        kept = np.mean(y != 0)
        assert 0 < kept < 1                      # the threshold is exercised


@pytest.mark.parametrize("norm", ["backward", "ortho", "forward"])
@pytest.mark.parametrize("spectral_input", [False, True], ids=["linear", "circular"])
@pytest.mark.parametrize("kernel_size, stride, bias", [(3, 1, True), (2, 1, False), (3, 2, True)])
def test_spectral_conv_matches_specref(norm, spectral_input, kernel_size, stride, bias):
    rng = np.random.default_rng(kernel_size + stride)
    layer = SpectralConv2d(3, 4, kernel_size, bias=bias, stride=stride, dtype=np.float64, fft_norm=norm, rng=rng)
    module = torch_bridge.to_torch(_sequential(layer))[0]
    if spectral_input:
        size = (9, 8)
        x = Spectrum(complex_normal(rng, (2, 3, 9, fft.half_width(8))), size, norm)
        xt = torch_spectral.Half(torch.tensor(x.values, requires_grad=True), size, norm)
        leaf = xt.values
    else:
        x = rng.standard_normal((2, 3, 7, 6))
        xt = leaf = torch.tensor(x, requires_grad=True)
    y = layer.forward(x)
    cotangent = complex_normal(rng, y.values.shape)
    dx = layer.backward(y.like(cotangent))
    yt = module(xt)
    assert (yt.size, yt.norm) == (y.size, y.norm)
    grads = torch.autograd.grad(yt.values, [leaf, *module.parameters()], grad_outputs=torch.tensor(cotangent))
    assert relative(y.values, yt.values.detach().numpy()) <= TOLERANCE
    assert relative(dx.values if spectral_input else dx, grads[0].numpy()) <= TOLERANCE
    for key, grad in zip(["weight", "bias"], grads[1:]):
        assert relative(layer.grads[key], grad.numpy()) <= TOLERANCE, key


def _sequential(*layers):
    from specref.layers.sequential import Sequential

    return Sequential(list(layers))


# --- whole networks -----------------------------------------------------------------------------
def _step_both(net, x, labels):
    """specref's and torch's (logits, loss, {param: grad}, grad_input, kept density per Threshold)."""
    loss_layer = SoftmaxCrossEntropy()
    logits = net.forward(x)
    loss = loss_layer.forward(logits, labels)
    grad_input = net.backward(loss_layer.backward())
    ours = (logits, loss, net.gradients(), grad_input)
    model, leaves = torch_bridge.convert(net)
    density = {}
    for leaf in leaves:
        if isinstance(leaf.module, torch_spectral.Threshold):
            leaf.module.register_forward_hook(
                lambda m, i, out, name=leaf.name: density.__setitem__(name, (out.values != 0).double().mean().item()))
    xt = torch.tensor(x, requires_grad=True)
    logits_t = model(xt)
    loss_t = torch.nn.functional.cross_entropy(logits_t, torch.from_numpy(labels))
    loss_t.backward()
    theirs = (logits_t.detach().numpy(), loss_t.item(), torch_bridge.gradients(leaves), xt.grad.numpy())
    return ours, theirs, density


def _assert_agree(ours, theirs):
    (logits, loss, grads, grad_input), (logits_t, loss_t, grads_t, grad_input_t) = ours, theirs
    assert relative(logits, logits_t) <= TOLERANCE
    assert abs(loss - loss_t) <= TOLERANCE * abs(loss)
    assert relative(grad_input, grad_input_t) <= TOLERANCE
    assert sorted(grads) == sorted(grads_t)
    errors = {name: relative(grads[name], grads_t[name]) for name in grads}
    worst = max(errors, key=errors.get)
    assert errors[worst] <= TOLERANCE, (worst, errors[worst])


def _net_case(name, shape, beta, pooling="crop", batch=2, seed=0):
    net = nets.build(name, beta=beta, dtype=np.float64, seed=seed, input_shape=shape, pooling=pooling)
    rng = np.random.default_rng(seed)
    x, labels = rng.standard_normal((batch, *shape)), rng.integers(0, 10, batch)
    lsuv(net, x)                   # unit-RMS spectra, so the thresholds keep part of every map
    return net, x, labels


def _assert_threshold_exercised(density, beta, every_layer=True):
    """At beta > 0 the thresholds keep part of the entries: overall (and in every Threshold with
    ``every_layer``) strictly between 0 and 1; no block is dead, so every gradient is compared on
    a live path. At beta 0 (almost) everything is kept."""
    assert density, "no Threshold ran"
    values = list(density.values())
    if beta > 0:
        assert 0 < np.mean(values) < 1 and min(values) > 0, density
        if every_layer:
            assert max(values) < 1, density
    else:
        assert min(values) > 0.99, density


@pytest.mark.parametrize("pooling", ["crop", "alias"])
@pytest.mark.parametrize("beta", [0.0, 0.1, 0.5])
def test_spec_lenet_agrees(beta, pooling):
    net, x, labels = _net_case("spec-lenet", (3, 32, 32), beta, pooling)
    ours, theirs, density = _step_both(net, x, labels)
    _assert_agree(ours, theirs)
    _assert_threshold_exercised(density, beta)


@pytest.mark.parametrize("pooling", ["crop", "alias"])
@pytest.mark.parametrize("beta", [0.0, 0.1, 0.5])
def test_spec_vgg11_agrees(beta, pooling):
    """32 x 32 (31 is the smallest Spec-VGG-11 accepts): 34 -> 17 -> 9 -> 5 -> 3 -> 2, so alias
    goes through space from 17 on and crop folds its Nyquist bin at 3 -> 2."""
    net, x, labels = _net_case("spec-vgg11", (3, 32, 32), beta, pooling, batch=1)
    ours, theirs, density = _step_both(net, x, labels)
    _assert_agree(ours, theirs)
    _assert_threshold_exercised(density, beta)


@pytest.mark.parametrize("side", [15, 16])
def test_spec_densenet121_agrees_at_its_smallest_inputs(side):
    """15 x 15 is the smallest input (17 -> 9 -> 5 -> 3, every pool a crop); 16 x 16 adds the
    box-prefiltered alias pool (18 -> 9)."""
    net, x, labels = _net_case("spec-densenet121", (3, side, side), 0.1)
    pools = [(layer.mode, layer.prefilter) for _, layer in net.named_layers() if isinstance(layer, SpectralDownsample)]
    assert (("alias", "box") in pools) == (side == 16)
    ours, theirs, density = _step_both(net, x, labels)
    _assert_agree(ours, theirs)
    _assert_threshold_exercised(density, 0.1, every_layer=False)   # a few small maps keep all


def test_spec_densenet121_rejects_a_smaller_input():
    with pytest.raises(ValueError, match="too small"):
        nets.build("spec-densenet121", input_shape=(3, 14, 14))


def test_a_converted_spec_lenet_trains_under_pytorch_like_specref():
    """torch.optim.SGD on the converted net takes the step specref's SGD takes from the same
    weights (momentum's first step included); further torch steps lower the loss on the batch."""
    net, x, labels = _net_case("spec-lenet", (1, 32, 32), 0.1)
    model = torch_bridge.to_torch(net)                      # a copy: specref's arrays stay as they are
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    xt, yt = torch.tensor(x), torch.from_numpy(labels)
    losses = []
    for step in range(4):
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(xt), yt)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        if step == 0:
            after_one = {name: p.detach().numpy().copy() for name, p in model.named_parameters()}
    loss_layer, sgd = SoftmaxCrossEntropy(), SGD(net.parameters(), lr=0.05, momentum=0.9)
    loss_layer.forward(net.forward(x), labels)
    net.backward(loss_layer.backward())
    sgd.step(net.gradients())
    stepped = dict(torch_bridge.to_torch(net).named_parameters())
    assert sorted(stepped) == sorted(after_one)
    for name, value in after_one.items():
        assert relative(stepped[name].detach().numpy(), value) <= TOLERANCE, name
    assert losses[-1] < losses[0]


# --- what cannot be converted, and what is not imported -------------------------------------------
def test_an_unconvertible_layer_is_named_with_its_index():
    net = nets.build("spec-lenet", input_shape=(1, 16, 16))
    net.layers[2] = ComplexActivation(np.arctan, lambda t: 1 / (1 + t * t), name="arctan")
    with pytest.raises(TypeError, match=r"layer 2 \(ComplexActivation\)"):
        torch_bridge.to_torch(net)


@pytest.mark.parametrize("activation", ["softsign", "modrelu", "spatial-tanh"])
def test_spec_activations_other_than_tanh_are_refused_by_index(activation):
    net = nets.build("spec-lenet", input_shape=(1, 16, 16), activation=activation)
    with pytest.raises(TypeError, match=r"cannot convert layer 2 \("):
        torch_bridge.to_torch(net)


def test_importing_specref_does_not_import_torch():
    code = ("import sys, specref, specref.cli, specref.golden_torch, specref.torch_bridge; "
            "sys.exit(1 if 'torch' in sys.modules else 0)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
