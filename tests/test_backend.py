"""Backend lookup: one module per call, explicit moves, a clear error where CuPy is missing."""
import sys
import types

import numpy as np
import pytest

from specref import backend
from specref.backend import Backend, array_module
from tests.conftest import CUPY_SKIP_REASON


@pytest.fixture
def fake_cupy(monkeypatch):
    """A stand-in 'cupy' whose ndarray is a NumPy subclass: enough to test the type checks."""
    module = types.ModuleType("cupy")

    class ndarray(np.ndarray):
        pass

    module.ndarray = ndarray
    monkeypatch.setitem(sys.modules, "cupy", module)
    return module


def test_numpy_arrays_give_numpy():
    assert array_module(np.ones(2), np.zeros(3), None, 1.5) is np


def test_mixed_numpy_and_cupy_is_a_type_error(fake_cupy):
    device = np.ones(3).view(fake_cupy.ndarray)
    assert array_module(device) is fake_cupy
    with pytest.raises(TypeError, match="mixed NumPy and CuPy arrays"):
        array_module(np.ones(3), device)


def test_mixed_arrays_are_refused_by_a_layer(fake_cupy):
    from specref import SpectralConv2d

    conv = SpectralConv2d(1, 1, 3)
    conv.params["weight"] = conv.params["weight"].view(fake_cupy.ndarray)
    with pytest.raises(TypeError, match="mixed NumPy and CuPy"):
        conv.forward(np.ones((1, 1, 4, 4), np.float32))


def test_lists_are_refused():
    with pytest.raises(TypeError, match="numpy.ndarray or cupy.ndarray"):
        array_module([1.0, 2.0])


def test_unknown_backend_name():
    with pytest.raises(ValueError, match="backend must be one of"):
        Backend("torch")


@pytest.mark.skipif(CUPY_SKIP_REASON is None, reason="a GPU is present: the error path cannot run")
def test_cupy_backend_without_gpu_says_what_to_do():
    with pytest.raises((ImportError, RuntimeError), match="CuPy|CUDA|GPU"):
        Backend("cupy")


def test_missing_cupy_names_the_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)      # makes `import cupy` raise ImportError
    with pytest.raises(ImportError, match=r'pip install -e "\.\[gpu\]"'):
        Backend("cupy")


def test_numpy_backend_moves_explicitly():
    b = Backend("numpy")
    out = b.asarray([1, 2], dtype=np.float32)
    assert isinstance(out, np.ndarray) and out.dtype == np.float32
    assert backend.to_numpy(out) is out


def test_move_puts_every_parameter_and_buffer_on_the_backend(xp):
    from specref import nets
    from specref.layers.dense import Dense

    net = nets.build("lenet", batch_norm=True, activation="relu", input_shape=(1, 16, 16))
    host = {name: value.copy() for name, value in net.parameters().items()}
    assert Backend(xp.__name__).move(net) is net
    for _, layer in net.named_layers():
        for store in (layer.params, getattr(layer, "buffers", {})):
            assert all(array_module(value) is xp for value in store.values())
    for name, value in net.parameters().items():
        np.testing.assert_array_equal(backend.to_numpy(value), host[name])
    layer = Dense(3, 2)                                   # a single layer is its own only leaf
    Backend(xp.__name__).move(layer)
    assert array_module(layer.params["weight"]) is xp


def test_moving_to_numpy_keeps_the_arrays_themselves():
    from specref.layers.dense import Dense

    layer = Dense(3, 2)
    weight = layer.params["weight"]
    Backend("numpy").move(layer)
    assert layer.params["weight"] is weight               # no copy: optimizers keep their references
