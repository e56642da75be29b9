"""Spectral activations of the Spec blocks: values against NumPy formulas, finite-difference
gradients (float64), conjugate symmetry, f(0) = 0 and sparsity, the Threshold's shared mask, the
builder's refusals, one Spec-LeNet step per activation, checkpoints, golden files and the audit."""
import json

import numpy as np
import pytest

import specref
from specref import nets
from specref.audit import gradient_check
from specref.checkpoint import load_weights
from specref.data import load
from specref.golden import record
from specref.layers import spectral_activation as sa
from specref.layers.activation import SpectralActivation
from specref.layers.polar_activation import Cardioid, ModReLU
from specref.layers.spatial_pointwise import SpatialPointwise
from specref.layers.threshold import Threshold
from specref.memory import block_densities
from specref.spectrum import Spectrum
from specref.testing import layer_gradient_errors

NAMES = ["tanh", "scaled-tanh:4", "scaled-tanh:0.5", "softsign", "shrink", "shrink:0.3", "identity", "modrelu",
         "cardioid", "spatial-tanh", "spatial-relu"]


def spectrum(rng, shape=(2, 3, 6, 7), scale=1.5):
    """The half spectrum of a real map (P = 6 has a Nyquist row, Q = 7 none; see the (6, 8) cases)."""
    return Spectrum.from_spatial(scale * rng.standard_normal(shape))


def thresholded(x, beta):
    return x.like(x.values * (np.abs(x.values) > beta))


def is_real_spectrum(z, size):
    return np.allclose(z, np.fft.rfft2(np.fft.irfft2(z, s=size)), atol=1e-12)


def reference(name, v, size):
    """Each activation written again with NumPy, elementwise or through numpy.fft ("ortho")."""
    base, value, _ = sa.parse(name)
    split = {"tanh": np.tanh, "scaled-tanh": lambda t: value * np.tanh(t / value),
             "softsign": lambda t: t / (1 + np.abs(t)), "identity": lambda t: t,
             "shrink": lambda t: np.sign(t) * np.maximum(np.abs(t) - (value if value is not None else 0.1), 0)}
    if base in split:
        return split[base](v.real) + 1j * split[base](v.imag)
    r = np.abs(v)
    if base == "modrelu":
        return np.where(r > 0, np.maximum(r - 0.01, 0) * v / np.where(r > 0, r, 1), 0)
    if base == "cardioid":
        return np.where(r > 0, 0.5 * (1 + np.cos(np.angle(v))) * v, 0)
    g = np.tanh if base == "spatial-tanh" else (lambda s: np.maximum(s, 0))
    return np.fft.rfft2(g(np.fft.irfft2(v, s=size, norm="ortho")), norm="ortho")


@pytest.mark.parametrize("name", NAMES)
def test_values_match_the_formula(name, rng):
    x = thresholded(spectrum(rng), 0.3)
    z = sa.make(name, channels=3, dtype=np.float64).forward(x).values
    np.testing.assert_allclose(z, reference(name, x.values, x.size), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("shape", [(2, 3, 6, 7), (1, 3, 5, 8)])
def test_gradient_matches_finite_differences(name, shape, rng):
    layer = sa.make(name, channels=3, dtype=np.float64)
    if isinstance(layer, ModReLU):      # both signs of b; |z| + b stays away from 0 for these draws
        layer.params["b"][:] = [-0.4, 0.2, -0.05]
    errors = layer_gradient_errors(layer, spectrum(rng, shape), rng)
    assert max(errors.values()) < 1e-6, errors


@pytest.mark.parametrize("name", NAMES)
def test_gradient_of_a_thresholded_block_with_the_shared_mask(name, rng):
    """Threshold -> activation as the builder pairs them: the mask is read from the kept map."""
    layer = sa.make(name, channels=3, dtype=np.float64)
    if isinstance(layer, ModReLU):
        layer.params["b"][:] = [-0.3, 0.25, 0.0]
    threshold = Threshold(0.4).share_mask_with(layer)
    x = spectrum(rng)
    assert threshold.mask_source is layer
    # away from the kink |Y| = beta, so a step of 1e-6 never flips the mask
    x = x.like(np.where(np.abs(np.abs(x.values) - 0.4) < 1e-3, 2.0, x.values))
    forward = lambda s: layer.forward(threshold.forward(s))                    # noqa: E731
    backward = lambda g: threshold.backward(layer.backward(g))                 # noqa: E731
    numeric, analytic = specref.testing.check_vjp(forward, backward, x, rng)
    assert abs(numeric - analytic) < 1e-6 * max(1.0, abs(numeric))
    assert threshold.cache == {}                                               # it kept no mask of its own


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("size", [(6, 7), (6, 8), (5, 5)])
def test_keeps_conjugate_symmetry_zero_and_sparsity(name, size, rng):
    x = thresholded(spectrum(rng, (2, 3, *size)), 0.8)
    layer = sa.make(name, channels=3, dtype=np.float64)
    z = layer.forward(x).values
    assert is_real_spectrum(z, size)
    assert not np.any(layer.forward(x.like(np.zeros_like(x.values))).values)    # f(0) = 0
    if not name.startswith("spatial-"):            # elementwise: the threshold's zeros stay zeros
        assert not np.any(z[x.values == 0])
    layer.forward(x)
    np.testing.assert_array_equal(layer.kept_pattern(), x.values != 0)        # what the Threshold reads


def test_scaled_tanh_and_shrink_names_parse():
    assert sa.parse("scaled-tanh:4") == ("scaled-tanh", 4.0, "scaled-tanh:4")
    assert sa.parse(" Scaled-Tanh:4.0 ") == ("scaled-tanh", 4.0, "scaled-tanh:4")
    assert sa.parse("shrink") == ("shrink", None, "shrink")
    assert sa.parse("shrink:0") == ("shrink", 0.0, "shrink:0")
    assert sa.make("scaled-tanh:2.5", 1).name == "scaled-tanh:2.5"
    assert sa.make("shrink", 1).name == f"shrink:{sa.SHRINK_DEFAULT:g}"
    for bad in ("scaled-tanh:0", "scaled-tanh:-2", "scaled-tanh:nan", "scaled-tanh:inf", "scaled-tanh:four",
                "scaled-tanh:"):
        with pytest.raises(ValueError, match=r"S in 'scaled-tanh:S' must be a finite number > 0"):
            sa.parse(bad)
    with pytest.raises(ValueError, match="needs its parameter S"):
        sa.parse("scaled-tanh")
    with pytest.raises(ValueError, match=r"L in 'shrink:L' must be a finite number >= 0"):
        sa.parse("shrink:-0.1")
    with pytest.raises(ValueError, match="takes no parameter"):
        sa.parse("modrelu:2")
    with pytest.raises(TypeError, match="must be a name"):
        sa.parse(3)
    assert set(sa.usage()) >= {"tanh", "scaled-tanh:S", "shrink[:L]", "modrelu", "spatial-relu"}
    assert nets.SPEC_ACTIVATIONS is sa.SPEC_ACTIVATIONS


def test_layer_arguments_are_checked():
    with pytest.raises(ValueError, match="channels"):
        ModReLU(0)
    with pytest.raises(ValueError, match="bias_init"):
        ModReLU(2, bias_init=float("nan"))
    with pytest.raises(ValueError, match="ModReLU has a bias b for 2 channels"):
        ModReLU(2).forward(Spectrum(np.ones((1, 3, 4, 3), complex), (4, 4)))
    with pytest.raises(ValueError, match="function must be one of"):
        SpatialPointwise("sigmoid")
    with pytest.raises(TypeError, match="Spectrum"):
        Cardioid().forward(np.ones((1, 1, 4, 4)))
    with pytest.raises(RuntimeError, match="before forward"):
        Cardioid().backward(Spectrum(np.ones((1, 1, 4, 3), complex), (4, 4)))


def test_modrelu_bias_starts_documented_and_follows_dtype():
    layer = ModReLU(4, dtype=np.float64)
    np.testing.assert_array_equal(layer.params["b"], np.full(4, -0.01))
    assert layer.params["b"].dtype == np.float64 and layer.params["b"].shape == (4,)
    net = nets.build("spec-lenet", activation="modrelu", input_shape=(1, 16, 16))
    bs = {name: p for name, p in net.parameters().items() if name.endswith(".b")}
    assert [p.shape for p in bs.values()] == [(6,), (16,)] and all(p.dtype == np.float32 for p in bs.values())


# --- the builder -------------------------------------------------------------------------------

def test_default_and_spatial_builds_are_unchanged():
    tanh = nets.build("spec-lenet", input_shape=(1, 16, 16))
    same = nets.build("spec-lenet", activation="tanh", input_shape=(1, 16, 16))
    assert [type(layer).__name__ for layer in tanh.layers] == [type(layer).__name__ for layer in same.layers]
    assert type(tanh.layers[2]).__name__ == "ComplexTanh" and tanh.config["activation"] == "tanh"
    relu = nets.build("lenet", activation="relu", input_shape=(1, 16, 16))
    assert "ReLU" in [type(layer).__name__ for layer in relu.layers]
    # the weights a seed draws do not depend on the activation (modrelu's b is a constant)
    other = nets.build("spec-lenet", activation="modrelu", input_shape=(1, 16, 16))
    for name, value in tanh.parameters().items():
        np.testing.assert_array_equal(value, other.parameters()[name])


@pytest.mark.parametrize("activation, message", [
    ("relu", "not odd"), ("sigmoid", "unknown spectral activation"), ("scaled-tanh", "needs its parameter"),
    ("scaled-tanh:-1", "must be a finite number > 0"), (42, "must be a name"),
])
def test_builder_refuses_bad_spec_activations(activation, message):
    with pytest.raises((ValueError, TypeError), match=message) as info:
        nets.build("spec-lenet", activation=activation)
    if isinstance(activation, str) and activation != "relu" and "unknown" in message:
        assert "modrelu" in str(info.value) and "spatial-tanh" in str(info.value)    # lists the valid names


def test_spatial_net_refuses_a_spectral_activation():
    with pytest.raises(ValueError, match=r"spatial net 'lenet' must be one of \('tanh', 'relu'\)"):
        nets.build("lenet", activation="modrelu")


def test_user_activations_are_checked_and_rebuilt_from_the_config(rng):
    with pytest.raises(ValueError, match="not odd"):
        nets.build("spec-lenet", activation=(lambda t: np.maximum(t, 0), lambda t: (t > 0) * 1.0))

    class Rotate(SpectralActivation):       # f(z) = i z: f(conj z) != conj f(z)
        def forward(self, x):
            return x.like(1j * x.values)

    with pytest.raises(ValueError, match="breaks conjugate symmetry"):
        nets.build("spec-lenet", activation=Rotate())

    class Shift(SpectralActivation):        # symmetric, but f(0) = 1
        def forward(self, x):
            return x.like(x.values + 1)

    with pytest.raises(ValueError, match=r"f\(0\) != 0"):
        nets.build("spec-lenet", activation=Shift())

    pair = (sa._softsign, sa._softsign_derivative_from_output, "output")
    net = nets.build("spec-lenet", activation=pair, input_shape=(1, 16, 16), dtype=np.float64)
    assert str(net.config["activation"]).startswith("custom:") and json.dumps(net.config["activation"])
    assert net.layers[1].mask_source is net.layers[2] and net.layers[2] is not net.layers[6]
    again = nets.build(**{**{k: v for k, v in net.config.items() if k not in ("beta", "storage")}})
    x = rng.standard_normal((2, 1, 16, 16))
    np.testing.assert_allclose(again.forward(x), net.forward(x))


@pytest.mark.parametrize("name", NAMES)
def test_spec_lenet_step_passes_finite_differences(name, rng):
    """Build + forward + backward of Spec-LeNet in float64, every gradient checked by central
    differences (specref.audit's check, which steps around threshold kinks)."""
    net = nets.build("spec-lenet", activation=name, beta=0.05, dtype=np.float64, input_shape=(1, 12, 12),
                     num_classes=3)
    assert net.config["activation"] == sa.parse(name)[2]
    for i, layer in enumerate(net.layers):
        if isinstance(layer, Threshold):
            assert layer.mask_source is net.layers[i + 1]       # every block shares its mask
    x, y = rng.standard_normal((2, 1, 12, 12)), np.array([0, 2])
    result = gradient_check(net, x, y, np.random.default_rng(0), directions=1)
    assert result["verdict"] == "pass", result
    assert set(result["params"]) == set(net.parameters())


def test_kept_maps_are_counted_and_sparse(rng):
    """Kept through Layer.keep: the ledger's block density is the threshold's kept density."""
    net = nets.build("spec-lenet", activation="modrelu", beta=0.5, dtype=np.float64, input_shape=(1, 12, 12),
                     storage="csr")
    net.forward(rng.standard_normal((2, 1, 12, 12)))
    densities = [d for _, _, d in block_densities(net)]
    assert all(0 < d < 1 for d in densities), densities
    assert net.layers[2].cache["u"].nbytes > 0 and "mask" not in net.layers[1].cache


# --- training, checkpoints, golden files, the audit -----------------------------------------------

@pytest.fixture(scope="module")
def digits():
    return load("digits").subset(64, 32)


def test_train_records_the_activation_and_checkpoint_keeps_modrelu_b(digits, tmp_path):
    history = specref.train("spec-lenet", digits, activation="modrelu", epochs=1, batch_size=32, max_steps=2,
                            lr=0.5, progress=False, out=str(tmp_path), memory_every=0)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["activation"] == "modrelu" and history.summary["activation"] == "modrelu"
    trained = {k: np.array(v) for k, v in history.net.parameters().items() if k.endswith(".b")}
    assert trained and any(np.any(b != np.float32(-0.01)) for b in trained.values())   # b learned
    fresh = nets.build("spec-lenet", activation="modrelu", input_shape=digits.input_shape)
    config = load_weights(fresh, str(tmp_path / "checkpoint.npz"))
    assert config["activation"] == "modrelu"
    for name, b in trained.items():
        np.testing.assert_array_equal(fresh.parameters()[name], b)
    with pytest.raises(ValueError, match=r"\.b'? is in only one"):
        load_weights(nets.build("spec-lenet", input_shape=digits.input_shape), str(tmp_path / "checkpoint.npz"))


def test_train_refuses_activation_for_a_given_network(digits):
    net = nets.build("spec-lenet", input_shape=digits.input_shape)
    with pytest.raises(ValueError, match="applies to a registry name only"):
        specref.train(net, digits, activation="modrelu", epochs=1, max_steps=1, progress=False)


def test_golden_file_describes_the_new_layers(rng):
    net = nets.build("spec-lenet", activation="modrelu", dtype=np.float64, input_shape=(1, 12, 12))
    arrays, manifest = record(net, rng.standard_normal((2, 1, 12, 12)), np.array([1, 3]))
    json.dumps(manifest)
    entry = next(e for e in manifest["layers"] if e["type"] == "ModReLU")
    assert entry["config"]["formula"] == ModReLU.formula and entry["params"] == {"b": [6]}
    assert f"param/{entry['name']}/b" in arrays and f"grad/{entry['name']}/b" in arrays
    assert manifest["net"]["activation"] == "modrelu"


@pytest.mark.parametrize("name", ["modrelu", "spatial-tanh", "shrink"])
def test_audit_runs_on_the_new_activations(name, rng):
    net = nets.build("spec-lenet", activation=name, input_shape=(1, 12, 12))
    result = specref.audit(net, rng.standard_normal((2, 1, 12, 12)), np.array([0, 1]), [0.0, 0.1],
                           fd_directions=1)
    assert [row["finite_difference"]["verdict"] for row in result["betas"]] == ["pass", "pass"]


# --- CuPy -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", NAMES)
def test_same_values_and_gradients_on_every_backend(name, xp, rng):
    x = thresholded(spectrum(rng), 0.3)
    dz = spectrum(rng).values
    results = []
    for module in (np, xp):
        layer = sa.make(name, channels=3, dtype=np.float64)
        layer.params = {k: module.asarray(v) for k, v in layer.params.items()}
        z = layer.forward(x.like(module.asarray(x.values)))
        dx = layer.backward(z.like(module.asarray(dz)))
        grads = {k: specref.backend.to_numpy(v) for k, v in layer.grads.items()}
        results.append((specref.backend.to_numpy(z.values), specref.backend.to_numpy(dx.values), grads))
    (z0, dx0, g0), (z1, dx1, g1) = results
    np.testing.assert_allclose(z1, z0, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dx1, dx0, rtol=1e-10, atol=1e-12)
    for key in g0:
        np.testing.assert_allclose(g1[key], g0[key], rtol=1e-10, atol=1e-12)
