"""The memory ledger counts what the layers really hold, once, and agrees with the allocator."""
import gc
import json
import tracemalloc

import numpy as np
import pytest

from specref import checkpoint, cli, memory, nets
from specref.checkpoint import named_buffers
from specref.data import load
from specref.layers.activation import ComplexTanh
from specref.layers.base import Layer
from specref.layers.dense import Dense
from specref.layers.downsample import SpectralDownsample
from specref.layers.flatten import Flatten
from specref.layers.loss import SoftmaxCrossEntropy
from specref.layers.sequential import Sequential
from specref.layers.spectral_conv import SpectralConv2d
from specref.layers.threshold import Threshold
from specref.layers.to_spatial import ToSpatial
from specref.spectrum import Spectrum
from specref.storage import get_codec
from specref.training import train

MEASURE_KEYS = ("saved_bytes", "peak_bytes", "baseline_saved_bytes", "baseline_peak_bytes", "relative_saved",
                "relative_peak", "density", "storage", "beta", "fft_norm", "layers", "baseline_bn_saved_bytes",
                "baseline_bn_peak_bytes", "relative_saved_bn")


def gaussian_batch(batch, shape=(3, 32, 32), dtype=np.float32, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((batch, *shape)).astype(dtype), rng.integers(0, 10, batch)


def independent_walk(net):
    """Bytes held in the caches, found by walking every attribute, keyed by root buffer address."""
    params = {root_address(a) for _, layer in net.named_layers() for a in layer.params.values()}
    roots, seen = {}, set()

    def visit(obj):
        if id(obj) in seen:
            return
        seen.add(id(obj))
        if isinstance(obj, np.ndarray):
            root = obj
            while isinstance(root.base, np.ndarray):
                root = root.base
            if root_address(root) not in params:
                roots[root_address(root)] = root.nbytes
        elif isinstance(obj, (tuple, list)):
            for item in obj:
                visit(item)
        elif isinstance(obj, dict):
            for item in obj.values():
                visit(item)
        elif type(obj).__module__.startswith("specref"):
            for name in getattr(type(obj), "__slots__", ()):
                visit(getattr(obj, name, None))
            for item in getattr(obj, "__dict__", {}).values():
                visit(item)

    for _, layer in net.named_layers():
        visit(layer.cache)
    return sum(roots.values())


def root_address(array):
    while isinstance(array.base, np.ndarray):
        array = array.base
    return (array.__array_interface__["data"][0], array.nbytes)


@pytest.mark.parametrize("name, storage, kwargs", [
    ("spec-lenet", "dense", {}), ("spec-lenet", "csr", {}), ("spec-lenet", "bitmask-int8", {}),
    ("lenet", "dense", {}), ("lenet", "dense", {"batch_norm": True, "activation": "relu"}),
    ("spec-densenet121", "bitmask", {"input_shape": (3, 16, 16), "growth_rate": 4}),
])
def test_ledger_equals_an_independent_walk_of_the_caches(name, storage, kwargs):
    shape = kwargs.get("input_shape", (3, 32, 32))
    net = nets.build(name, beta=0.3, storage=storage, **kwargs)
    x, _ = gaussian_batch(4, shape)
    net.forward(x)
    book = memory.ledger(net)
    assert book["saved_bytes"] == independent_walk(net) > 0
    assert book["saved_bytes"] == sum(row["saved_bytes"] for row in book["layers"])
    assert memory.saved_bytes(net) == book["saved_bytes"]
    assert len(book["layers"]) == len(net.named_layers())


@pytest.mark.parametrize("name, storage", [("spec-lenet", "dense"), ("spec-lenet", "csr"),
                                           ("spec-lenet", "bitmask-fp16"), ("lenet", "dense")])
def test_ledger_agrees_with_tracemalloc_growth_across_forward(name, storage):
    net = nets.build(name, beta=0.3, storage=storage)
    x, _ = gaussian_batch(16)
    net.forward(x)                            # caches that outlive a step (DFT matrices, im2col workspace)
    net.clear_cache()
    gc.collect()
    tracemalloc.start()
    try:
        batch = x.copy()
        out = net.forward(batch)
        del batch
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - out.nbytes
    finally:
        tracemalloc.stop()
    assert memory.saved_bytes(net) == pytest.approx(grown, rel=0.10)


def spectral_pair(dtype=np.float32):
    """Two Spec blocks back to back: the second convolution reads the Z the first tanh kept."""
    layers = []
    for c_in, c_out in ((3, 4), (4, 5)):
        threshold, tanh = Threshold(0.2), ComplexTanh()
        threshold.share_mask_with(tanh)
        layers += [SpectralConv2d(c_in, c_out, 3, rng=c_out, dtype=dtype), threshold, tanh]
    return Sequential(layers)


@pytest.mark.parametrize("storage", ["dense", "csr", "bitmask"])
def test_a_spectrum_shared_by_two_layers_counts_once(storage):
    net = spectral_pair()
    memory.set_storage(net, storage)
    x, _ = gaussian_batch(3, (3, 10, 10))
    net.forward(x)
    rows = {row["name"]: row for row in memory.ledger(net)["layers"]}
    shared = net[2].cache["u"]
    assert net[3].cache["X"] is shared                       # one handle, two layers
    assert rows["2:ComplexTanh"]["saved_bytes"] == shared.nbytes
    assert rows["3:SpectralConv2d"]["saved_bytes"] == 0 and rows["3:SpectralConv2d"]["entries"] == 0
    naive = sum(v.nbytes for _, layer in net.named_layers() for v in layer.cache.values() if hasattr(v, "arrays"))
    assert memory.saved_bytes(net) == naive - shared.nbytes


class KeepsAView(Layer):
    def forward(self, x):
        big = np.ones((100, 100))
        self.cache = {"corner": big[:2, :2], "again": (big[5:9],)}
        return x


def test_a_view_counts_its_whole_base_once():
    net = Sequential([KeepsAView()])
    net.forward(np.zeros(3))
    book = memory.ledger(net)
    assert book["saved_bytes"] == 100 * 100 * 8
    assert book["layers"][0]["entries"] == 4                 # the first view's values, once


def test_sparse_storage_saves_on_a_thresholded_net():
    x, y = gaussian_batch(16)
    saved = {storage: memory.measure(nets.build("spec-lenet", beta=0.5), x, y, storage=storage,
                                     baseline=False)["saved_bytes"] for storage in ("dense", "csr", "bitmask")}
    assert saved["csr"] < saved["dense"] and saved["bitmask"] < saved["dense"]


@pytest.mark.parametrize("name", ["spec-lenet", "lenet"])
def test_measure_reports_every_key_and_peak_covers_saved(name):
    x, y = gaussian_batch(8)
    result = memory.measure(nets.build(name, beta=0.5), x, y, storage="bitmask")
    assert set(MEASURE_KEYS) <= set(result)
    assert result["storage"] == "bitmask" and result["batch"] == 8
    assert result["peak_bytes"] >= result["saved_bytes"] > 0
    assert result["baseline_peak_bytes"] >= result["baseline_saved_bytes"] > 0
    assert result["relative_saved"] == pytest.approx(result["saved_bytes"] / result["baseline_saved_bytes"])
    if name == "lenet":                                        # a spatial net is its own baseline
        assert result["relative_saved"] == 1.0 and result["baseline"].endswith("itself")
    else:
        assert result["fft_norm"] == "ortho" and result["beta"] == 0.5
    assert result["baseline_bn_saved_bytes"] > result["baseline_saved_bytes"]   # batch norm keeps x_hat too
    assert 0 < result["density"] <= 1
    assert sum(layer["saved_bytes"] for layer in result["layers"]) == result["saved_bytes"]


def spec_lenet_gradients(storage, beta=0.2):
    x, y = gaussian_batch(4, (3, 16, 16), np.float64, seed=1)
    net = nets.build("spec-lenet", beta=beta, dtype=np.float64, input_shape=(3, 16, 16), storage=storage)
    criterion = SoftmaxCrossEntropy()
    criterion.forward(net.forward(x), y)
    net.backward(criterion.backward())
    return {name: grad.copy() for name, grad in net.gradients().items()}


# Relative L2 error of every parameter's gradient against dense storage (float64, spec-lenet,
# 3 x 16 x 16, beta 0.2): measured 2e-4 (fp16) and 6e-3 (int8); the bounds leave 10x / 3x room.
CODEC_GRADIENT_ERROR = {"csr": 1e-12, "bitmask": 1e-12, "csr-fp16": 2e-3, "bitmask-fp16": 2e-3,
                        "csr-int8": 2e-2, "bitmask-int8": 2e-2}


@pytest.mark.parametrize("storage", list(CODEC_GRADIENT_ERROR))
def test_gradients_with_any_codec_match_dense(storage):
    reference, got = spec_lenet_gradients("dense"), spec_lenet_gradients(storage)
    for name, grad in reference.items():
        error = np.linalg.norm(got[name] - grad) / np.linalg.norm(grad)
        assert error <= CODEC_GRADIENT_ERROR[storage], name


def test_train_records_memory_along_the_run(tmp_path):
    digits = load("digits").subset(96, 32)
    history = train("spec-lenet", digits, epochs=2, batch_size=16, beta=0.2, storage="bitmask", memory_every=2,
                    max_steps=4, out=tmp_path, progress=False)
    epochs = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    summary = json.loads((tmp_path / "summary.json").read_text())
    for entry in epochs:
        assert entry["saved_bytes_peak"] >= entry["saved_bytes_mean"] > 0
        assert entry["peak_bytes"] > entry["saved_bytes_mean"] and entry["peak_steps"] == 2   # steps 2 and 4
        assert 0 < entry["density"] < 1
    assert summary["storage"] == "bitmask" and history.net.storage.name == "bitmask"
    assert summary["saved_bytes_peak"] == max(e["saved_bytes_peak"] for e in epochs)
    assert summary["peak_bytes"] == max(e["peak_bytes"] for e in epochs)
    assert summary["saved_bytes_mean"] == pytest.approx(np.mean([e["saved_bytes_mean"] for e in epochs]))
    assert memory.saved_bytes(history.net) == 0                # caches released after each step


def test_train_without_peak_tracing_still_records_saved_bytes():
    digits = load("digits").subset(64, 32)
    history = train("spec-lenet", digits, epochs=1, batch_size=16, memory_every=0, max_steps=2, progress=False)
    assert history[0]["peak_bytes"] is None and history[0]["saved_bytes_mean"] > 0
    assert history.summary["storage"] == "dense"


def test_cli_memory_prints_one_json_object(capsys):
    assert cli.main(["memory", "--net", "spec-lenet", "--beta", "0.5", "--batch", "4", "--storage", "csr",
                     "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert set(MEASURE_KEYS) <= set(result)
    assert result["input"] == "gaussian" and result["storage"] == "csr" and result["batch"] == 4


def test_cli_memory_loads_a_checkpoint(tmp_path, capsys):
    digits = load("digits").subset(64, 32)
    history = train("spec-lenet", digits, epochs=1, batch_size=16, beta=0.3, storage="bitmask", max_steps=2,
                    out=tmp_path, progress=False)
    restored = nets.build("spec-lenet", input_shape=(1, 32, 32))
    config = checkpoint.load_weights(restored, tmp_path / "checkpoint.npz")
    assert config["net"] == "spec-lenet"
    for name, value in history.net.parameters().items():
        np.testing.assert_array_equal(restored.parameters()[name], value)
    assert cli.main(["memory", "--checkpoint", str(tmp_path / "checkpoint.npz"), "--data", "digits",
                     "--batch", "8", "--json", "--no-baseline"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert (result["net"], result["beta"], result["storage"]) == ("spec-lenet", 0.3, "bitmask")
    assert result["input"] == "digits test[0:8]" and result["weights"] == "checkpoint"
    assert result["baseline_saved_bytes"] is None


def test_checkpoint_of_another_net_is_refused(tmp_path):
    digits = load("digits").subset(32, 16)
    train("spec-lenet", digits, epochs=1, batch_size=16, max_steps=1, out=tmp_path, progress=False)
    with pytest.raises(ValueError, match="does not fit"):
        checkpoint.load_weights(nets.build("lenet", input_shape=(1, 32, 32)), tmp_path / "checkpoint.npz")


def test_registry_storage_option():
    net = nets.build("spec-lenet", storage="csr-fp16")
    assert net.config["storage"] == "csr-fp16" and memory.storage_name(net) == "csr-fp16"
    with pytest.raises(ValueError, match="unknown storage"):
        nets.build("lenet", storage="zip")


def test_device_peak_comes_from_specref_gpu_track(monkeypatch):
    """On CuPy the peak is specref_gpu.memory.track()'s PoolPeak.peak_bytes (faked here: no GPU)."""
    import types

    import specref_gpu.memory as gpu_memory

    class FakePool:
        peak_bytes = 12345

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    device = types.SimpleNamespace(synchronize=lambda: None)
    fake_xp = types.SimpleNamespace(cuda=types.SimpleNamespace(Device=lambda: device))
    monkeypatch.setattr(gpu_memory, "track", lambda: FakePool())
    with memory.PeakMeter(fake_xp) as meter:
        pass
    assert meter.peak_bytes == 12345 and meter.note is None
    monkeypatch.delattr(gpu_memory, "track")
    with memory.PeakMeter(fake_xp) as meter:
        pass
    assert meter.peak_bytes is None and "track" in meter.note


def test_measure_leaves_the_net_as_it_was():
    net = nets.build("lenet", batch_norm=True, activation="relu")
    before = {q: layer.buffers[k].copy() for q, layer, k in named_buffers(net)}
    params = {k: v.copy() for k, v in net.parameters().items()}
    memory.measure(net, *gaussian_batch(4), baseline=False)
    for q, layer, k in named_buffers(net):
        np.testing.assert_array_equal(layer.buffers[k], before[q])
    for k, v in net.parameters().items():
        np.testing.assert_array_equal(v, params[k])
    assert memory.saved_bytes(net) == 0 and all(not layer.grads for _, layer in net.named_layers())


def test_measure_with_a_storage_restores_the_nets_codecs():
    net = nets.build("spec-lenet", storage="bitmask")
    net[0].storage = get_codec("csr")                  # one layer with its own codec
    codecs = [layer.storage.name for _, layer in net.named_layers()]
    result = memory.measure(net, *gaussian_batch(4), storage="csr-int8", baseline=False)
    assert result["storage"] == "csr-int8"
    assert [layer.storage.name for _, layer in net.named_layers()] == codecs
    bare = Sequential([SpectralConv2d(3, 2, 3), Threshold(0.1), ComplexTanh(), ToSpatial(), Flatten(),
                       Dense(2 * 34 * 34, 10)])
    memory.measure(bare, *gaussian_batch(2), storage="csr", baseline=False)
    assert all("storage" not in vars(layer) and layer.storage.name == "dense" for layer in bare)


def test_block_densities_follow_beta():
    x, _ = gaussian_batch(4)
    for beta, low, high in ((0.0, 0.99, 1.0), (0.1, 0.05, 0.99), (1e3, 0.0, 0.0)):
        net = nets.build("spec-lenet", beta=beta, storage="bitmask")
        net.forward(x)
        found = memory.block_densities(net)
        assert [(name, b) for name, b, _ in found] == [("1:Threshold", beta), ("5:Threshold", beta)]
        assert all(low <= density <= high for _, _, density in found), found


@pytest.mark.parametrize("storage", ["dense", "csr", "bitmask"])
@pytest.mark.parametrize("mode", ["crop", "alias"])
def test_a_downsampled_map_is_recomputed_not_kept_again(storage, mode):
    net = spectral_pair()
    net.layers.insert(3, SpectralDownsample(2, mode))
    memory.set_storage(net, storage)
    x, _ = gaussian_batch(3, (3, 10, 10))
    net.forward(x)
    kept_z, kept_pooled = net[2].cache["u"], net[4].cache["X"]
    rows = {row["name"]: row for row in memory.ledger(net)["layers"]}
    assert rows["4:SpectralConv2d"]["saved_bytes"] == 0 and rows["4:SpectralConv2d"]["entries"] == 0
    assert rows["2:ComplexTanh"]["saved_bytes"] == kept_z.nbytes > 0
    # what backward reads equals the downsampling of what the tanh kept, done afresh
    z = Spectrum(kept_z.decode(), (12, 12), "ortho")
    np.testing.assert_array_equal(kept_pooled.decode(), SpectralDownsample(2, mode).forward(z).values)


class DownsampleKeptTwice(SpectralDownsample):
    """The output without the link to its kept input: the next layer keeps a copy of its own."""

    def forward(self, x):
        y = super().forward(x)
        y.stored = None
        return y


@pytest.mark.parametrize("storage", ["dense", "bitmask"])
def test_gradients_with_a_recomputed_downsampled_map_match_keeping_it(storage):
    x, _ = gaussian_batch(2, (3, 10, 10), dtype=np.float64)
    grads, held = [], []
    for pool in (SpectralDownsample(2, "crop"), DownsampleKeptTwice(2, "crop")):
        net = spectral_pair(np.float64)
        net.layers.insert(3, pool)
        memory.set_storage(net, storage)
        y = net.forward(x)
        held.append(memory.saved_bytes(net))
        net.backward(y.like(np.ones_like(y.values)))
        grads.append(net.gradients())
    assert held[0] < held[1]
    for key in grads[0]:
        np.testing.assert_array_equal(grads[0][key], grads[1][key], err_msg=key)


def test_spec_densenet_keeps_each_map_once(monkeypatch):
    """Concatenations and poolings are rebuilt from the maps the tanhs kept: apart from the stem
    (which keeps the real input), no SpectralConv2d holds a byte, and gradients do not change."""
    x, y = gaussian_batch(2, (3, 16, 16), dtype=np.float64)
    results = []
    for shared in (True, False):
        if not shared:
            monkeypatch.setattr("specref.layers.dense_concat.stored_concatenation", lambda parts, axis: None)
        net = nets.build("spec-densenet121", beta=0.05, dtype=np.float64, input_shape=(3, 16, 16),
                         growth_rate=2, storage="bitmask")
        logits = net.forward(x)
        book = memory.ledger(net)
        criterion = SoftmaxCrossEntropy()
        criterion.forward(logits, y)
        net.backward(criterion.backward())
        results.append((book, net.gradients()))
    (shared_book, shared_grads), (copied_book, copied_grads) = results
    convs = [r for r in shared_book["layers"] if r["name"].endswith(":SpectralConv2d")]
    assert convs[0]["saved_bytes"] > 0 and all(r["saved_bytes"] == 0 for r in convs[1:])
    assert shared_book["saved_bytes"] < copied_book["saved_bytes"]
    for key in shared_grads:
        np.testing.assert_array_equal(shared_grads[key], copied_grads[key], err_msg=key)
