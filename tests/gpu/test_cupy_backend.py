"""The CuPy backend: whole layers and a whole net agree with NumPy, codecs round-trip on the
device, the memory hook counts, and the error where CuPy or a GPU is missing says what to do.

Each parity test runs a layer on NumPy, a copy of it (same parameters) on CuPy, and compares
outputs, input gradients and parameter gradients by max |a - b| / max |a| (float64: the two
backends differ only by rounding; float32: by the rounding of cuFFT and cuBLAS vs pocketfft and
OpenBLAS). The CuPy cases skip with the reason where no GPU is present.
"""
import copy

import numpy as np
import pytest

from specref import fft
from specref.backend import GPU_INSTALL_HINT, to_numpy
from specref.layers.activation import ComplexTanh
from specref.layers.conv2d import Conv2d
from specref.layers.dense import Dense
from specref.layers.downsample import SpectralDownsample
from specref.layers.loss import SoftmaxCrossEntropy
from specref.layers.sequential import Sequential
from specref.layers.spectral_conv import SpectralConv2d
from specref.layers.threshold import Threshold
from specref.layers.to_spatial import ToSpatial
from specref.spectrum import Spectrum
from specref.storage import codec_names, get_codec
from specref_gpu import unavailable_reason
from specref_gpu.memory import PoolPeak
from tests.conftest import CUPY_SKIP_REASON

TOLERANCE = {np.float32: 2e-5, np.float64: 1e-11}


@pytest.fixture
def cp():
    if CUPY_SKIP_REASON:
        pytest.skip(f"CuPy backend test skipped: {CUPY_SKIP_REASON}")
    import cupy

    return cupy


def relative_error(actual, expected):
    actual, expected = to_numpy(actual), to_numpy(expected)
    assert actual.shape == expected.shape and actual.dtype == expected.dtype
    return float(np.max(np.abs(actual - expected)) / max(np.max(np.abs(expected)), 1e-30))


def values(x):
    return x.values if isinstance(x, Spectrum) else x


def on_device(x, cp):
    if isinstance(x, Spectrum):
        return Spectrum(cp.asarray(x.values), x.size, x.norm)
    return cp.asarray(x)


def device_copy(layer, cp):
    twin = copy.deepcopy(layer)
    for _, leaf in (twin.named_layers() if isinstance(twin, Sequential) else [("", twin)]):
        for key, value in leaf.params.items():
            leaf.params[key] = cp.asarray(value)
    return twin


def spectrum(rng, shape, dtype, beta=None):
    """The spectrum of a random real map; with beta, kept away from |Y| = beta."""
    x = Spectrum.from_spatial(rng.standard_normal(shape).astype(dtype))
    if beta is None:
        return x
    v = x.values.copy()
    magnitude = np.abs(v)
    near = np.abs(magnitude - beta) < 1e-3
    v[near] *= (beta + 2e-3) / np.maximum(magnitude[near], 1e-30)
    return x.like(v)


def layer_cases(dtype, rng):
    """(name, layer, input) for each layer the CuPy backend must run exactly as NumPy does."""
    d = dict(dtype=dtype)
    shared = Threshold(0.6)
    tanh = ComplexTanh()
    shared.share_mask_with(tanh)
    return [
        ("SpectralConv2d/spatial", SpectralConv2d(3, 4, 3, rng=1, **d), rng.standard_normal((2, 3, 8, 7)).astype(dtype)),
        ("SpectralConv2d/spectrum", SpectralConv2d(4, 5, 3, rng=2, **d), spectrum(rng, (2, 4, 9, 8), dtype)),
        ("SpectralConv2d/stride2", SpectralConv2d(3, 2, 3, stride=2, rng=3, **d), rng.standard_normal((2, 3, 8, 8)).astype(dtype)),
        ("Threshold", Threshold(0.5), spectrum(rng, (2, 3, 8, 6), dtype, beta=0.5)),
        ("ComplexTanh", ComplexTanh(), spectrum(rng, (2, 3, 7, 6), dtype)),
        ("Threshold+ComplexTanh/shared-mask", Sequential([shared, tanh]), spectrum(rng, (2, 3, 8, 8), dtype, beta=0.6)),
        ("SpectralDownsample/alias", SpectralDownsample(2, "alias"), spectrum(rng, (2, 3, 8, 8), dtype)),
        ("SpectralDownsample/crop", SpectralDownsample(2, "crop"), spectrum(rng, (2, 3, 9, 8), dtype)),
        ("SpectralDownsample/alias-odd", SpectralDownsample(3, "alias"), spectrum(rng, (2, 2, 8, 7), dtype)),
        ("ToSpatial", ToSpatial(), spectrum(rng, (2, 3, 6, 7), dtype)),
        ("Conv2d/same", Conv2d(3, 4, 3, padding="same", rng=4, **d), rng.standard_normal((2, 3, 8, 8)).astype(dtype)),
        ("Conv2d/valid", Conv2d(2, 3, 2, padding="valid", rng=5, **d), rng.standard_normal((2, 2, 7, 6)).astype(dtype)),
        ("Dense", Dense(12, 5, rng=6, **d), rng.standard_normal((4, 12)).astype(dtype)),
    ]


CASE_NAMES = [name for name, _, _ in layer_cases(np.float64, np.random.default_rng(0))]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", CASE_NAMES)
def test_layer_forward_and_backward_match_numpy(cp, case, dtype):
    rng = np.random.default_rng(0)
    name, layer, x = next(c for c in layer_cases(dtype, rng) if c[0] == case)
    twin = device_copy(layer, cp)
    y, y_device = layer.forward(x), twin.forward(on_device(x, cp))
    assert type(y_device) is type(y)
    dy_host = rng.standard_normal(values(y).shape) * (1 + 1j if np.iscomplexobj(values(y)) else 1)
    dy_host = dy_host.astype(values(y).dtype)
    dy = y.like(dy_host) if isinstance(y, Spectrum) else dy_host
    dx, dx_device = layer.backward(dy), twin.backward(on_device(dy, cp))
    errors = {"output": relative_error(values(y_device), values(y)),
              "dx": relative_error(values(dx_device), values(dx))}
    leaves = lambda net: [leaf for _, leaf in net.named_layers()] if isinstance(net, Sequential) else [net]  # noqa: E731
    for host_leaf, device_leaf in zip(leaves(layer), leaves(twin)):
        for key in host_leaf.params:
            errors[key] = relative_error(device_leaf.grads[key], host_leaf.grads[key])
    worst = max(errors.values())
    assert worst <= TOLERANCE[dtype], f"{name} ({np.dtype(dtype)}): {errors}"


def training_step(net, x, y):
    loss = SoftmaxCrossEntropy()
    logits = net.forward(x)
    value = loss.forward(logits, y)
    net.backward(loss.backward())
    return logits, float(value), net.gradients()


def test_spec_net_training_step_matches_numpy(cp):
    from specref import nets

    host = nets.build("spec-lenet", beta=0.5, dtype=np.float64, seed=3)
    device = device_copy(host, cp)
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((4, 3, 32, 32)), rng.integers(0, 10, 4)
    logits, loss, grads = training_step(host, x, y)
    logits_d, loss_d, grads_d = training_step(device, cp.asarray(x), cp.asarray(y))
    errors = {"logits": relative_error(logits_d, logits), "loss": abs(loss_d - loss) / abs(loss)}
    errors.update({k: relative_error(grads_d[k], grads[k]) for k in grads})
    assert max(errors.values()) <= 1e-9, errors


@pytest.mark.parametrize("name", codec_names())
def test_storage_codecs_round_trip_on_the_device(cp, name):
    rng = np.random.default_rng(5)
    host = (rng.standard_normal((2, 3, 6, 4)) + 1j * rng.standard_normal((2, 3, 6, 4))).astype(np.complex64)
    host[rng.random(host.shape) < 0.6] = 0
    codec = get_codec(name)
    stored_host, stored = codec.encode(host), codec.encode(cp.asarray(host))
    decoded = stored.decode()
    assert isinstance(decoded, cp.ndarray) and decoded.dtype == host.dtype
    np.testing.assert_array_equal(to_numpy(stored.pattern()), host != 0)
    np.testing.assert_allclose(to_numpy(decoded), stored_host.decode(), rtol=1e-6, atol=1e-7)
    if not codec.lossy:
        np.testing.assert_array_equal(to_numpy(decoded), host)
    assert stored.nbytes == stored_host.nbytes and stored.nonzeros == np.count_nonzero(host)


def test_cuda_fft_matches_scipy(cp):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 3, 9, 10))
    for norm in fft.NORMS:
        X = fft.rfft2(cp.asarray(x), (11, 12), norm)
        assert relative_error(X, fft.rfft2(x, (11, 12), norm)) < 1e-12
        assert relative_error(fft.irfft2(X, (11, 12), norm), fft.irfft2(to_numpy(X), (11, 12), norm)) < 1e-12


def test_training_runs_on_the_device(cp, tmp_path):
    import specref

    history = specref.train("spec-lenet", "digits", backend="cupy", epochs=1, max_steps=2,
                            batch_size=16, progress=False, out=tmp_path)
    assert np.isfinite(history[-1]["train_loss"])
    assert all(isinstance(p, cp.ndarray) for p in history.net.parameters().values())


def test_pool_peak_counts_device_allocations(cp):
    with PoolPeak() as usage:
        a = cp.empty(1 << 20, dtype=cp.uint8)
        b = cp.empty(1 << 21, dtype=cp.uint8)
        del a, b
    assert usage.peak_bytes >= 3 << 20
    assert usage.current_bytes == 0 and usage.mallocs == usage.frees == 2


def test_pool_peak_arithmetic():
    """The counting itself, as the hook drives it: by pointer, peak of the running sum."""
    usage = PoolPeak()
    usage.allocated(0x10, 512)
    usage.allocated(0x20, 2048)
    usage.freed(0x10, 512)
    usage.allocated(0x30, 1024)
    usage.freed(0x99, 4096)             # an array made before the block
    assert (usage.peak_bytes, usage.current_bytes) == (3072, -1024)
    assert usage.as_dict()["high_water_bytes"] == usage.start_bytes + 3072


def test_pool_hook_calls_reach_the_counter():
    try:
        import cupy  # noqa: F401
    except ImportError:
        pytest.skip("CuPy is not installed (pip install -e '.[gpu]')")
    from specref_gpu.memory import make_hook

    usage = PoolPeak()
    hook = make_hook(usage)
    with hook:
        hook.malloc_postprocess(device_id=0, size=100, mem_size=512, mem_ptr=7, pmem_id=1)
        hook.free_postprocess(device_id=0, mem_size=512, mem_ptr=7, pmem_id=1)
    assert (usage.peak_bytes, usage.current_bytes, usage.mallocs, usage.frees) == (512, 0, 1, 1)
    assert make_hook(usage).name != hook.name


@pytest.mark.skipif(CUPY_SKIP_REASON is None, reason="a GPU is present: the error path cannot run")
def test_unavailable_reason_says_what_to_install_or_fix():
    reason = unavailable_reason()
    assert reason is not None
    assert GPU_INSTALL_HINT in reason or "driver" in reason or "GPU" in reason
    with pytest.raises((ImportError, RuntimeError)):
        PoolPeak().__enter__()


def test_unavailable_reason_is_none_with_a_gpu(cp):
    assert unavailable_reason() is None
