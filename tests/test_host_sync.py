"""No training step reads a value back from the device: host syncs happen only at logging points.

A "device" is simulated on NumPy: :class:`DeviceArray` stands for a device array (a reduction
returns a 0-d DeviceArray, as CuPy's do, never a host scalar) and counts every way a value
reaches the host (``float``, ``int``, ``bool``, ``item``, ``tolist``, and :func:`to_numpy`
wherever specref imported it); :class:`DeviceBackend` moves host arrays in as DeviceArrays and
counts the moves. The training loop runs as it runs on CuPy (deferred finiteness flags), and every
``_Loop.step`` must read nothing back and move exactly its two arrays (x, y).

What the simulation sees: the arrays the loop, the loss, the guard and the optimizer hold on the
device (inputs, labels, parameters, momentum buffers, the running totals and flags). Buffers a
layer allocates itself come back as plain NumPy here (layers look their module up with
``array_module``), so a read of those inside a layer would go unseen: the CuPy run covers them.
"""
import sys

import numpy as np
import pytest

import specref
from specref import backend as backend_module
from specref import training
from specref.data import load
from specref.layers.dense import Dense
from specref.layers.flatten import Flatten
from specref.layers.loss import SoftmaxCrossEntropy
from specref.layers.sequential import Sequential
from specref.layers.spatial_activation import Tanh


class Transfers:
    """Every host<->device transfer seen: ``reads`` (device -> host) and ``moves`` (host -> device)."""

    def __init__(self):
        self.reads, self.moves = [], []


COUNTER = Transfers()


def _read(kind):
    COUNTER.reads.append(kind)


class DeviceArray(np.ndarray):
    def __array_wrap__(self, array, context=None, return_scalar=False):
        return array.view(DeviceArray)          # a device reduction stays on the device

    def __getitem__(self, key):
        item = super().__getitem__(key)
        return item if isinstance(item, np.ndarray) else np.asarray(item).view(DeviceArray)

    def __float__(self):
        _read("float")
        return float(np.asarray(self))

    def __int__(self):
        _read("int")
        return int(np.asarray(self))

    def __index__(self):
        _read("index")
        return np.asarray(self).__index__()

    def __bool__(self):
        _read("bool")
        return bool(np.asarray(self))

    def item(self, *args):
        _read("item")
        return np.asarray(self).item(*args)

    def tolist(self):
        _read("tolist")
        return np.asarray(self).tolist()


class DeviceModule:
    """numpy as the backend's ``xp``, whose functions make DeviceArrays (as cupy.zeros does)."""

    def __getattr__(self, name):
        value = getattr(np, name)
        if not callable(value) or isinstance(value, type):
            return value

        def on_device(*args, **kwargs):
            result = value(*args, **kwargs)
            return result.view(DeviceArray) if isinstance(result, np.ndarray) else result
        return on_device


class DeviceBackend(specref.Backend):
    """NumPy arithmetic, a device's rules: values come back only through counted reads."""

    def __init__(self):
        super().__init__("numpy")
        self.on_host, self.xp = False, DeviceModule()

    def asarray(self, x, dtype=None):
        if isinstance(x, DeviceArray):
            return x if dtype is None else x.astype(dtype)
        COUNTER.moves.append(getattr(x, "shape", ()))
        return np.array(x, dtype=dtype).view(DeviceArray)


@pytest.fixture
def device(monkeypatch):
    """A fresh counter, and every ``to_numpy`` specref imported wrapped to count."""
    COUNTER.reads.clear(), COUNTER.moves.clear()
    original = backend_module.to_numpy

    def counting_to_numpy(x):
        if isinstance(x, DeviceArray):
            _read("to_numpy")
            return np.asarray(x)
        return original(x)

    for name, module in list(sys.modules.items()):
        if name.startswith("specref") and getattr(module, "to_numpy", None) is original:
            monkeypatch.setattr(module, "to_numpy", counting_to_numpy)
    return DeviceBackend()


@pytest.fixture(scope="module")
def digits():
    return load("digits").subset(96, 32)


def transfers_per_step(monkeypatch, run):
    """[(reads, moves)] of every ``_Loop.step`` while ``run()`` trains."""
    per_step, step = [], training._Loop.step

    def counted_step(self, *args):
        reads, moves = len(COUNTER.reads), len(COUNTER.moves)
        step(self, *args)
        per_step.append((COUNTER.reads[reads:], len(COUNTER.moves) - moves))
    monkeypatch.setattr(training._Loop, "step", counted_step)
    monkeypatch.setattr(training, "DEVICE_LOG_EVERY", 1000)     # no logging point inside the epoch
    monkeypatch.setattr(training, "DEVICE_TIME_EVERY", 1000)
    run()
    return per_step


def small_net(seed=0):
    rng = np.random.default_rng(seed)
    return Sequential([Flatten(), Dense(32 * 32, 16, rng=rng), Tanh(), Dense(16, 10, rng=rng)])


@pytest.mark.parametrize("net", ["spec-lenet", "spatial"])
def test_a_training_step_reads_nothing_back_from_the_device(device, monkeypatch, digits, net):
    model = nets_build(net)
    per_step = transfers_per_step(monkeypatch, lambda: training.train(
        model, digits, backend=device, epochs=1, batch_size=16, max_steps=4, memory_every=0, progress=False,
        momentum=0.9, weight_decay=1e-4))
    assert len(per_step) == 4
    assert per_step == [([], 2)] * 4          # x and y moved in, nothing read back
    # The logging point at the end of the epoch does read back (the counter sees real syncs).
    assert "to_numpy" in COUNTER.reads and "float" in COUNTER.reads


def _old_label_check(monkeypatch):
    """The loss as it was: the labels' range read back on the device, two syncs a step."""
    forward = SoftmaxCrossEntropy.forward

    def checking_forward(self, logits, labels):
        low, high = int(labels.min()), int(labels.max())
        assert 0 <= low and high < logits.shape[1]
        return forward(self, logits, labels)
    monkeypatch.setattr(SoftmaxCrossEntropy, "forward", checking_forward)
    return ["int", "int"]


def _float_of_a_parameter(monkeypatch):
    optimizer_step = specref.optim.SGD.step

    def step_with_a_sync(self, grads):
        optimizer_step(self, grads)
        float(next(iter(self.params.values())).sum())
    monkeypatch.setattr(specref.optim.SGD, "step", step_with_a_sync)
    return ["float"]


@pytest.mark.parametrize("inject", [_old_label_check, _float_of_a_parameter])
def test_a_value_read_back_inside_a_step_is_caught(device, monkeypatch, digits, inject):
    expected = inject(monkeypatch)
    per_step = transfers_per_step(monkeypatch, lambda: training.train(
        small_net(), digits, backend=device, epochs=1, batch_size=16, max_steps=2, memory_every=0,
        progress=False))
    assert per_step == [(expected, 2)] * 2


def test_a_device_reduction_is_not_a_host_scalar(device):
    x = device.asarray(np.arange(4.0))
    total = x.sum()
    assert isinstance(total, DeviceArray) and COUNTER.reads == []
    assert float(total) == 6.0 and bool(x[1]) and COUNTER.reads == ["float", "bool"]


def nets_build(name):
    if name == "spatial":
        return small_net()
    return specref.nets.build(name, seed=0, input_shape=(1, 32, 32), num_classes=10)
