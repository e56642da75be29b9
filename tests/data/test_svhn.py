"""SVHN from .mat files written here with scipy.io.savemat."""
import numpy as np
import pytest
from scipy.io import savemat

from specref.data import DataError, load


def make_split(n, seed):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(32, 32, 3, n), dtype=np.uint8)
    labels = rng.integers(1, 11, size=(n, 1)).astype(np.uint8)
    labels[0, 0] = 10  # the digit 0
    return images, labels


def write(folder, train=None, test=None):
    train = make_split(9, 1) if train is None else train
    test = make_split(4, 2) if test is None else test
    for name, split in (("train", train), ("test", test)):
        if isinstance(split, dict):
            savemat(folder / f"{name}_32x32.mat", split)
        else:
            savemat(folder / f"{name}_32x32.mat", {"X": split[0], "y": split[1]})
    return folder


def test_loads_images_labels_and_pixel_layout(tmp_path):
    train, test = make_split(9, 1), make_split(4, 2)
    ds = load("svhn", write(tmp_path, train, test))
    assert ds.train_x.shape == (9, 3, 32, 32) and ds.test_x.shape == (4, 3, 32, 32)
    assert ds.train_x.dtype == np.float32 and ds.train_y.dtype == np.int64
    assert ds.classes == [str(d) for d in range(10)]
    np.testing.assert_array_equal(ds.train_y, np.where(train[1][:, 0] == 10, 0, train[1][:, 0]))
    assert ds.train_y[0] == 0
    restored = ds.test_x * ds.std[None, :, None, None] + ds.mean[None, :, None, None]
    # X[h, w, c, n] is pixel (h, w) of channel c of image n
    np.testing.assert_allclose(restored[2, 1, 5, 7] * 255, test[0][5, 7, 1, 2], atol=1e-3)
    np.testing.assert_allclose(restored * 255, test[0].transpose(3, 2, 0, 1), atol=1e-3)
    np.testing.assert_allclose(ds.train_x.mean(axis=(0, 2, 3)), 0, atol=1e-4)
    np.testing.assert_allclose(ds.train_x.std(axis=(0, 2, 3)), 1, atol=1e-4)


def test_no_augmentation_by_default_and_never_a_flip(tmp_path):
    ds = load("svhn", write(tmp_path))
    assert ds.augment is False and ds.flip is False
    x, _ = next(ds.batches("train", 9, rng=np.random.default_rng(0), shuffle=False))
    np.testing.assert_array_equal(x, ds.train_x)
    assert load("svhn", tmp_path, augment=True).augment is True


@pytest.mark.parametrize("bad_test, match", [
    ({"X": make_split(4, 2)[0]}, r"missing key 'y'"),
    ({"y": make_split(4, 2)[1]}, r"missing key 'X'"),
    ({"X": np.zeros((32, 32, 4), np.uint8), "y": np.ones((4, 1))}, r"wrong shape: 'X'"),
    ({"X": np.zeros((28, 28, 3, 4), np.uint8), "y": np.ones((4, 1))}, r"wrong shape: 'X'.*\(28, 28, 3, 4\)"),
    ({"X": np.zeros((32, 32, 3, 4), np.float64), "y": np.ones((4, 1))}, r"wrong shape: 'X'.*float64"),
    ({"X": make_split(4, 2)[0], "y": np.ones((3, 1))}, r"wrong shape: 'y' must be \(4, 1\)"),
    ({"X": make_split(4, 2)[0], "y": np.array([[1], [0], [3], [4]])}, r"label out of range: entry 1 of 'y' is 0"),
    ({"X": make_split(4, 2)[0], "y": np.array([[1], [2], [11], [4]])}, r"label out of range: entry 2 of 'y' is 11"),
    ({"X": make_split(4, 2)[0], "y": np.array([[1.5], [2], [3], [4]])}, r"integer labels"),
])
def test_bad_files(tmp_path, bad_test, match):
    with pytest.raises(DataError, match=match) as info:
        load("svhn", write(tmp_path, test=bad_test))
    assert "test_32x32.mat" in str(info.value)


def test_undecodable_and_missing_files(tmp_path):
    write(tmp_path)
    (tmp_path / "train_32x32.mat").write_bytes(b"MATLAB? no, just some bytes" * 10)
    with pytest.raises(DataError, match="train_32x32.mat: not a readable .mat file"):
        load("svhn", tmp_path)
    (tmp_path / "train_32x32.mat").unlink()
    with pytest.raises(DataError, match="train_32x32.mat: missing SVHN training file"):
        load("svhn", tmp_path)
