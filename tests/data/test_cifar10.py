"""CIFAR-10: the real binary subset in ../shared beside the repository (or $SPECREF_CIFAR10),
generated binary and python batches, and every bad-file case."""
import io
import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest

from specref.data import DataError, load
from specref.data.cifar10 import CLASS_NAMES

def _real_subset():
    candidates = [os.environ.get("SPECREF_CIFAR10"),
                  Path(__file__).resolve().parents[3] / "shared" / "data" / "cifar10",
                  "/work/shared/data/cifar10"]
    for candidate in candidates:
        if candidate and (Path(candidate) / "data_batch_1.bin").exists():
            return Path(candidate)
    return Path(candidates[1])


REAL = _real_subset()


class Py2Pickler(pickle._Pickler):
    """Writes bytes as Python 2 ``str`` opcodes, as the official python batches (cPickle) do."""

    dispatch = dict(pickle._Pickler.dispatch)

    def save_py2_str(self, obj):
        n = len(obj)
        self.write((pickle.SHORT_BINSTRING + bytes([n]) if n < 256 else pickle.BINSTRING + struct.pack("<i", n)) + obj)
        self.memoize(obj)

    dispatch[bytes] = save_py2_str


def py2_pickle(obj, numpy_core_spelling="numpy.core.multiarray"):
    buffer = io.BytesIO()
    Py2Pickler(buffer, protocol=2).dump(obj)
    return buffer.getvalue().replace(b"numpy._core.multiarray\n", numpy_core_spelling.encode() + b"\n")


def make_split(n, seed):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(n, 3072), dtype=np.uint8), rng.integers(0, 10, size=n).astype(np.uint8)


def write_binary(folder, splits, meta="\n".join(CLASS_NAMES) + "\n\n"):
    """splits: {file name: (pixels (N, 3072), labels (N,))}."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, (pixels, labels) in splits.items():
        np.concatenate([labels[:, None], pixels], axis=1).tofile(folder / name)
    if meta is not None:
        (folder / "batches.meta.txt").write_text(meta)
    return folder


def write_python(folder, splits, spelling="numpy.core.multiarray"):
    folder.mkdir(parents=True, exist_ok=True)
    for name, (pixels, labels) in splits.items():
        batch = {b"batch_label": b"generated", b"labels": [int(v) for v in labels], b"data": pixels,
                 b"filenames": [b"x.png"] * len(labels)}
        (folder / name).write_bytes(py2_pickle(batch, spelling))
    (folder / "batches.meta").write_bytes(py2_pickle({b"label_names": [n.encode() for n in CLASS_NAMES],
                                                     b"num_vis": 3072}))
    return folder


@pytest.fixture(scope="module")
def generated():
    return {"data_batch_1": make_split(7, 1), "data_batch_3": make_split(5, 3), "test_batch": make_split(4, 9)}


def raw_pixels(ds, split):
    x = ds.train_x if split == "train" else ds.test_x
    return np.asarray(x, np.float64) * ds.std[None, :, None, None] + ds.mean[None, :, None, None]


def check_matches(ds, generated):
    train_pixels = np.concatenate([generated["data_batch_1"][0], generated["data_batch_3"][0]])
    train_labels = np.concatenate([generated["data_batch_1"][1], generated["data_batch_3"][1]])
    assert (ds.num_train, ds.num_test) == (12, 4) and ds.classes == CLASS_NAMES
    np.testing.assert_array_equal(ds.train_y, train_labels)
    np.testing.assert_array_equal(ds.test_y, generated["test_batch"][1])
    np.testing.assert_allclose(raw_pixels(ds, "train") * 255, train_pixels.reshape(-1, 3, 32, 32), atol=1e-3)
    np.testing.assert_allclose(raw_pixels(ds, "test") * 255, generated["test_batch"][0].reshape(-1, 3, 32, 32),
                               atol=1e-3)


@pytest.mark.skipif(not REAL.is_dir(), reason=f"real CIFAR-10 subset not present at {REAL}")
def test_real_subset_matches_a_raw_numpy_read():
    ds = load("cifar10", REAL)
    assert (ds.num_train, ds.num_test) == (10_000, 2_000)
    assert ds.train_x.shape == (10_000, 3, 32, 32) and ds.train_x.dtype == np.float32
    assert ds.classes == CLASS_NAMES and ds.augment is True and ds.flip is True
    raw = np.fromfile(REAL / "data_batch_1.bin", dtype=np.uint8).reshape(-1, 3073)
    assert ds.train_y[0] == raw[0, 0]
    np.testing.assert_array_equal(ds.train_y, raw[:, 0])
    np.testing.assert_array_equal(np.bincount(ds.train_y), [1000] * 10)
    np.testing.assert_array_equal(np.bincount(ds.test_y), [200] * 10)
    np.testing.assert_allclose(raw_pixels(ds, "train")[:50] * 255, raw[:50, 1:].reshape(-1, 3, 32, 32), atol=1e-3)
    np.testing.assert_allclose(ds.train_x.mean(axis=(0, 2, 3)), 0, atol=1e-4)
    np.testing.assert_allclose(ds.train_x.std(axis=(0, 2, 3)), 1, atol=1e-4)
    assert 0.3 < ds.mean.min() and ds.mean.max() < 0.6  # natural-image colour statistics


def test_generated_binary_batches(tmp_path, generated):
    folder = write_binary(tmp_path, {f"{k}.bin": v for k, v in generated.items()})
    check_matches(load("cifar10", folder), generated)


@pytest.mark.parametrize("spelling", ["numpy.core.multiarray", "numpy._core.multiarray"])
def test_generated_python_batches(tmp_path, generated, spelling):
    check_matches(load("cifar10", write_python(tmp_path, generated, spelling)), generated)


def test_official_archive_folder_inside_root_and_default_class_names(tmp_path, generated):
    write_binary(tmp_path / "cifar-10-batches-bin", {f"{k}.bin": v for k, v in generated.items()}, meta=None)
    ds = load("cifar10", tmp_path)
    assert ds.classes == CLASS_NAMES and ds.num_train == 12


def test_augmentation_is_on_for_train_and_off_for_test(tmp_path, generated):
    ds = load("cifar10", write_binary(tmp_path, {f"{k}.bin": v for k, v in generated.items()}))
    train, _ = next(ds.batches("train", 12, rng=np.random.default_rng(0), shuffle=False))
    test, _ = next(ds.batches("test", 4, rng=np.random.default_rng(0)))
    assert not np.array_equal(train, ds.train_x)
    np.testing.assert_array_equal(test, ds.test_x)
    assert not load("cifar10", tmp_path, augment=False).augment


def good_binary(tmp_path, generated):
    return write_binary(tmp_path, {f"{k}.bin": v for k, v in generated.items()})


@pytest.mark.parametrize("size, match", [(3073 * 2 + 100, "truncated record.*not a multiple of the 3,073"),
                                         (0, "empty file")])
def test_truncated_binary_batch(tmp_path, generated, size, match):
    folder = good_binary(tmp_path, generated)
    path = folder / "data_batch_3.bin"
    path.write_bytes(path.read_bytes()[:size])
    with pytest.raises(DataError, match=match) as info:
        load("cifar10", folder)
    assert "data_batch_3.bin" in str(info.value)


def test_binary_label_out_of_range(tmp_path, generated):
    pixels, labels = generated["test_batch"]
    labels = labels.copy()
    labels[2] = 10
    folder = good_binary(tmp_path, generated)
    write_binary(folder, {"test_batch.bin": (pixels, labels)})
    with pytest.raises(DataError, match=r"test_batch.bin: label out of range: record 2 has label 10"):
        load("cifar10", folder)


def test_missing_test_batch_and_missing_train_batches(tmp_path, generated):
    folder = good_binary(tmp_path, generated)
    (folder / "test_batch.bin").unlink()
    with pytest.raises(DataError, match="test_batch.bin: missing"):
        load("cifar10", folder)
    with pytest.raises(DataError, match="no CIFAR-10 training batch"):
        load("cifar10", write_binary(tmp_path / "only_test", {"test_batch.bin": generated["test_batch"]}))


def test_meta_with_wrong_number_of_names(tmp_path, generated):
    folder = good_binary(tmp_path, generated)
    (folder / "batches.meta.txt").write_text("cat\ndog\n")
    with pytest.raises(DataError, match="batches.meta.txt: expected 10 class names, found 2"):
        load("cifar10", folder)


def rewrite_python_batch(folder, name, batch):
    (folder / name).write_bytes(py2_pickle(batch))


@pytest.mark.parametrize("batch, match", [
    ({b"labels": [0] * 4}, r"missing key b'data'"),
    ({b"data": np.zeros((4, 3072), np.uint8)}, r"missing key b'labels'"),
    ({b"data": np.zeros((4, 1024), np.uint8), b"labels": [0] * 4}, r"wrong shape.*\(4, 1024\)"),
    ({b"data": np.zeros((4, 3072), np.float32), b"labels": [0] * 4}, r"wrong shape.*float32"),
    ({b"data": np.zeros((4, 3072), np.uint8), b"labels": [0] * 3}, r"wrong shapes: 4 images but 3 labels"),
    ({b"data": np.zeros((4, 3072), np.uint8), b"labels": [0, 1, 12, 2]}, r"label out of range: record 2 has label 12"),
    ([1, 2, 3], r"expected a pickled dict, got list"),
])
def test_bad_python_batches(tmp_path, generated, batch, match):
    folder = write_python(tmp_path, generated)
    rewrite_python_batch(folder, "test_batch", batch)
    with pytest.raises(DataError, match=match) as info:
        load("cifar10", folder)
    assert "test_batch" in str(info.value)


class RunsShell:
    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


def test_malicious_python_batch_is_refused_and_not_run(tmp_path, generated):
    folder = write_python(tmp_path, generated)
    marker = tmp_path / "pwned"
    (folder / "data_batch_1").write_bytes(py2_pickle({b"data": RunsShell(f"touch {marker}")}))
    with pytest.raises(DataError, match=r"data_batch_1: refused to load global .*system"):
        load("cifar10", folder)
    assert not marker.exists()


def test_truncated_python_batch(tmp_path, generated):
    folder = write_python(tmp_path, generated)
    path = folder / "data_batch_3"
    path.write_bytes(path.read_bytes()[:500])
    with pytest.raises(DataError, match="data_batch_3: not a readable pickle"):
        load("cifar10", folder)
