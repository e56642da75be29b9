import json
import os
import types

import numpy as np
import pytest

import specref
from specref.data import load
from specref.layers.base import Layer
from specref.layers.dense import Dense
from specref.layers.flatten import Flatten
from specref.layers.sequential import Sequential
from specref.layers.spatial_activation import Tanh
from specref.training import EPOCH_KEYS, SUMMARY_KEYS, TrainingDiverged, train

QUICK = dict(batch_size=32, progress=False)


@pytest.fixture(scope="module")
def digits():
    return load("digits").subset(200, 100)


def tiny_net(seed=0, hidden=16, extra=()):
    rng = np.random.default_rng(seed)
    return Sequential([Flatten(), Dense(32 * 32, hidden, rng=rng), Tanh(), *extra, Dense(hidden, 10, rng=rng)])


def params_of(net):
    return {name: np.array(value) for name, value in net.parameters().items()}


def assert_same_params(a, b):
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


class Bomb(Layer):
    """Identity with a parameter whose gradient turns infinite at backward call ``explode_at``."""

    def __init__(self, explode_at):
        super().__init__()
        self.params["scale"] = np.ones(1, dtype=np.float32)
        self.calls, self.explode_at = 0, explode_at

    def forward(self, x):
        return x

    def backward(self, dy):
        self.calls += 1
        value = np.inf if self.calls >= self.explode_at else 0.0
        self.grads["scale"] = np.full(1, value, dtype=np.float32)
        return dy


def test_trains_and_reports_every_epoch(digits):
    history = train(tiny_net(), digits, epochs=4, lr=0.05, **QUICK)
    assert len(history) == 4
    assert [e["epoch"] for e in history] == [1, 2, 3, 4]
    for entry in history:
        assert set(EPOCH_KEYS) <= set(entry)
        assert entry["examples_per_second"] > 0 and entry["seconds"] > 0
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert history[-1]["test_accuracy"] > 0.6
    assert history.column("epoch") == [1, 2, 3, 4]
    assert set(SUMMARY_KEYS) <= set(history.summary)
    assert history.summary["beta"] is None and history.summary["fft_norm"] == "ortho"


def test_deterministic_for_a_seed(digits):
    runs = []
    for _ in range(2):
        net = tiny_net(seed=3)
        history = train(net, digits, epochs=2, seed=7, **QUICK)
        runs.append((params_of(net), history.column("train_loss")))
    assert_same_params(runs[0][0], runs[1][0])
    assert runs[0][1] == runs[1][1]
    other = tiny_net(seed=3)
    train(other, digits, epochs=2, seed=8, **QUICK)  # only the shuffling differs
    assert not np.array_equal(params_of(other)["1.weight"], runs[0][0]["1.weight"])


def test_resume_matches_uninterrupted_run_bit_for_bit(digits, tmp_path):
    straight = tiny_net()
    full = train(straight, digits, epochs=2, **QUICK)

    train(tiny_net(), digits, epochs=1, out=tmp_path, **QUICK)
    resumed_net = tiny_net(seed=99)  # its own initial weights must be replaced by the checkpoint's
    resumed = train(resumed_net, digits, epochs=2, out=tmp_path, resume=True, **QUICK)

    assert_same_params(params_of(resumed_net), params_of(straight))
    assert [e["epoch"] for e in resumed] == [1, 2]
    assert resumed[1]["train_loss"] == full[1]["train_loss"]
    assert resumed.summary["resumed_from_epoch"] == 1
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2]


def test_out_files(digits, tmp_path):
    net = tiny_net()
    train(net, digits, epochs=2, out=tmp_path, lr_halve_every=1, **QUICK)
    assert sorted(os.listdir(tmp_path)) == ["checkpoint.npz", "metrics.jsonl", "summary.json"]

    entries = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [e["epoch"] for e in entries] == [1, 2]
    assert all(set(EPOCH_KEYS) <= set(e) for e in entries)
    assert [e["lr"] for e in entries] == [0.02, 0.01]

    summary = json.loads((tmp_path / "summary.json").read_text())
    assert set(SUMMARY_KEYS) <= set(summary)
    assert summary["data"] == "digits" and summary["backend"] == "numpy" and summary["epochs"] == 2
    assert summary["test_accuracy"] == entries[-1]["test_accuracy"]
    assert summary["step_ms"] > 0

    with np.load(tmp_path / "checkpoint.npz", allow_pickle=False) as ckpt:
        assert int(json.loads(str(ckpt["epoch"]))) == 2
        for name, value in net.parameters().items():
            np.testing.assert_array_equal(ckpt[f"param/{name}"], value)
            assert f"optim/velocity/{name}" in ckpt.files
        rng = np.random.default_rng()
        rng.bit_generator.state = json.loads(str(ckpt["rng_state"]))
        config = json.loads(str(ckpt["config"]))
        assert config["data"] == "digits" and config["batch_size"] == 32 and config["net"] == "Sequential"
        assert json.loads(str(ckpt["optim"]))["momentum"] == 0.95


def test_resume_errors(digits, tmp_path):
    with pytest.raises(FileNotFoundError, match="checkpoint"):
        train(tiny_net(), digits, epochs=2, out=tmp_path, resume=True, **QUICK)
    with pytest.raises(ValueError, match="out"):
        train(tiny_net(), digits, epochs=2, resume=True, **QUICK)
    train(tiny_net(), digits, epochs=1, out=tmp_path, **QUICK)
    with pytest.raises(ValueError, match="num_train"):
        train(tiny_net(), digits.subset(100, 100), epochs=2, out=tmp_path, resume=True, **QUICK)
    renamed = tiny_net()
    renamed.name = "other-net"
    with pytest.raises(ValueError, match="net"):
        train(renamed, digits, epochs=2, out=tmp_path, resume=True, **QUICK)
    with pytest.raises(ValueError, match="shape"):
        train(tiny_net(hidden=8), digits, epochs=2, out=tmp_path, resume=True, **QUICK)


def test_resume_refuses_another_activation(digits, tmp_path):
    # softsign and tanh have the same parameters, so only the recorded activation tells them apart
    train("spec-lenet", digits, epochs=1, out=tmp_path, activation="softsign", max_steps=1, **QUICK)
    with pytest.raises(ValueError, match="activation='softsign'"):
        train("spec-lenet", digits, epochs=2, out=tmp_path, resume=True, max_steps=1, **QUICK)
    resumed = train("spec-lenet", digits, epochs=2, out=tmp_path, resume=True, activation="softsign",
                    max_steps=1, **QUICK)
    assert resumed.summary["activation"] == "softsign"


def test_gradient_divergence_names_layer_and_keeps_checkpoint(digits, tmp_path):
    steps_per_epoch = digits.num_batches("train", 32)
    bomb = Bomb(explode_at=steps_per_epoch + 3)  # step 3 of epoch 2
    net = tiny_net(extra=[bomb])
    bomb_name = next(name for name in net.parameters() if name.endswith("scale"))
    with pytest.raises(TrainingDiverged, match="epoch 2, step 3") as info:
        train(net, digits, epochs=3, out=tmp_path, **QUICK)
    assert isinstance(info.value, RuntimeError)
    assert (info.value.epoch, info.value.step, info.value.layer) == (2, 3, bomb_name)
    assert bomb_name in str(info.value)
    with np.load(tmp_path / "checkpoint.npz", allow_pickle=False) as ckpt:
        assert int(json.loads(str(ckpt["epoch"]))) == 1
        assert all(np.isfinite(ckpt[k]).all() for k in ckpt.files if k.startswith("param/"))
    assert len((tmp_path / "metrics.jsonl").read_text().splitlines()) == 1
    assert sorted(os.listdir(tmp_path)) == ["checkpoint.npz", "metrics.jsonl"]


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_infinite_weight_stops_at_the_loss(digits, tmp_path):
    net = tiny_net()
    last_weight = [name for name in net.parameters() if name.endswith("weight")][-1]
    net.parameters()[last_weight][0, 0] = np.inf
    with pytest.raises(TrainingDiverged, match="epoch 1, step 1: the loss") as info:
        train(net, digits, epochs=2, out=tmp_path, **QUICK)
    assert info.value.layer == "loss"
    assert not (tmp_path / "checkpoint.npz").exists()
    assert (tmp_path / "metrics.jsonl").read_text() == ""


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_huge_learning_rate_diverges(digits):
    # tanh bounds the hidden units and the loss is computed stably, so only a step large enough
    # to overflow float32 weights makes this net's loss infinite.
    with pytest.raises(TrainingDiverged, match="epoch 1"):
        train(tiny_net(), digits, epochs=3, lr=1e37, **QUICK)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(epochs=0), "epochs"),
        (dict(epochs=1.5), "epochs"),
        (dict(epochs=True), "epochs"),
        (dict(epochs=1, batch_size=0), "batch_size"),
        (dict(epochs=1, lr=0.0), "lr"),
        (dict(epochs=1, lr=-0.1), "lr"),
        (dict(epochs=1, momentum=1.0), "momentum"),
        (dict(epochs=1, weight_decay=-1.0), "weight_decay"),
        (dict(epochs=1, backend="torch"), "backend"),
        (dict(epochs=1, seed=-1), "seed"),
        (dict(epochs=1, max_steps=0), "max_steps"),
        (dict(epochs=1, beta=0.5), "beta"),  # the tiny net has no thresholded layer
    ],
)
def test_validates_arguments(digits, kwargs, name):
    with pytest.raises(ValueError, match=name):
        train(tiny_net(), digits, progress=False, **kwargs)


def test_epochs_below_checkpoint_is_refused(digits, tmp_path):
    train(tiny_net(), digits, epochs=2, out=tmp_path, **QUICK)
    with pytest.raises(ValueError, match="epochs"):
        train(tiny_net(), digits, epochs=1, out=tmp_path, resume=True, **QUICK)


def test_progress_output(digits, capfd):
    train(tiny_net(), digits, epochs=1, batch_size=32, progress=False)
    captured = capfd.readouterr()
    assert captured.out == "" and captured.err == ""
    train(tiny_net(), digits, epochs=1, batch_size=32, progress=True)
    captured = capfd.readouterr()
    assert "epoch 1/1" in captured.err and "loss" in captured.err


def test_max_steps_caps_each_epoch(digits):
    history = train(tiny_net(), digits, epochs=2, max_steps=2, **QUICK)
    assert history.column("steps") == [2, 2]


class BetaLayer(Layer):
    def __init__(self):
        super().__init__()
        self.beta = 1.0

    def forward(self, x):
        return x

    def backward(self, dy):
        return dy


def test_beta_is_set_and_recorded(digits):
    holder = BetaLayer()
    history = train(tiny_net(extra=[holder]), digits, epochs=1, beta=0.25, max_steps=1, **QUICK)
    assert holder.beta == 0.25
    assert history.summary["beta"] == 0.25


@pytest.fixture
def fake_registry(monkeypatch):
    """A ``specref.nets.build`` that returns tiny nets and records its calls."""
    calls = []

    def build(name, seed=0, input_shape=None, num_classes=None, **kwargs):
        calls.append(dict(name=name, seed=seed, input_shape=input_shape, num_classes=num_classes, **kwargs))
        holders = [BetaLayer()] if name.startswith("spec-") else []
        for holder in holders:
            holder.beta = kwargs.get("beta", 1.0)
        net = tiny_net(seed=seed, extra=holders)
        net.name = name
        return net

    import specref.nets as nets

    monkeypatch.setattr(nets, "build", build)
    return calls


def test_net_and_data_by_name(fake_registry):
    history = train("spec-tiny", "digits", epochs=1, beta=0.5, seed=4, max_steps=1, **QUICK)
    assert fake_registry == [dict(name="spec-tiny", seed=4, input_shape=(1, 32, 32), num_classes=10, beta=0.5)]
    assert history.summary["net"] == "spec-tiny" and history.summary["beta"] == 0.5
    assert history.net.name == "spec-tiny"


def test_package_train_is_the_function(digits):
    import specref.training  # importing the module must not shadow specref.train

    assert callable(specref.train) and not isinstance(specref.train, types.ModuleType)
    history = specref.train(tiny_net(), digits, epochs=1, max_steps=1, progress=False)
    assert len(history) == 1


def test_empty_training_split_is_refused(digits):
    with pytest.raises(ValueError, match="no training examples"):
        train(tiny_net(), digits.subset(0, 10), epochs=1, progress=False)
