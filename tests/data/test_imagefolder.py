"""ImageNet-style folders of PNG files written here; lazy decoding and the bad-folder cases."""
import numpy as np
import pytest
from PIL import Image

from specref.data import DataError, LazyImages, load
from specref.data import lazy_images

CLASSES = ["ant", "bee", "cat"]  # written in another order below; must come back sorted
PER_CLASS = {"train": 4, "val": 2}


def write_folder(root, size=(12, 10)):
    rng = np.random.default_rng(0)
    for split, count in PER_CLASS.items():
        for name in reversed(CLASSES):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(count):
                pixels = rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
                image = Image.fromarray(pixels)
                if name == "bee" and i == 0:
                    image = image.convert("L")  # must come back as RGB
                image.save(folder / f"{i:03d}.png")
            (folder / "notes.txt").write_text("not an image")
    return root


def reference_decode(path, size, mean, std):
    """Independent of lazy_images: Pillow decode, RGB, bilinear resize, /255, normalize."""
    rgb = Image.open(path).convert("RGB").resize((size, size), Image.Resampling.BILINEAR)
    pixels = np.asarray(rgb, dtype=np.float64).transpose(2, 0, 1) / 255
    return (pixels - np.reshape(mean, (3, 1, 1))) / np.reshape(std, (3, 1, 1))


@pytest.fixture
def folder(tmp_path):
    return write_folder(tmp_path)


def test_classes_labels_shapes_and_lazy_arrays(folder):
    ds = load("imagefolder", folder)
    assert ds.classes == CLASSES and ds.num_classes == 3
    assert isinstance(ds.train_x, LazyImages) and isinstance(ds.test_x, LazyImages)
    assert ds.train_x.shape == (12, 3, 32, 32) and len(ds.test_x) == 6 and ds.input_shape == (3, 32, 32)
    np.testing.assert_array_equal(ds.train_y, np.repeat([0, 1, 2], 4))
    np.testing.assert_array_equal(ds.test_y, np.repeat([0, 1, 2], 2))
    assert ds.train_y.dtype == np.int64
    assert [p.name for p in ds.train_x.paths[:4]] == ["000.png", "001.png", "002.png", "003.png"]


def test_indexing_decodes_like_pillow_and_normalizes(folder):
    ds = load("imagefolder", folder, size=16)
    index = np.array([5, 0, 11])
    batch = ds.train_x[index]
    assert batch.shape == (3, 3, 16, 16) and batch.dtype == np.float32
    for row, i in zip(batch, index):
        np.testing.assert_allclose(row, reference_decode(ds.train_x.paths[i], 16, ds.mean, ds.std), atol=1e-4)
    np.testing.assert_array_equal(ds.train_x[2:4], ds.train_x[np.array([2, 3])])
    np.testing.assert_array_equal(ds.train_x[-1], ds.train_x[np.array([11])][0])
    grey = ds.train_x[4]  # bee/000.png was saved as greyscale: three equal channels after RGB conversion
    raw = grey * ds.std.reshape(3, 1, 1).astype(np.float32) + ds.mean.reshape(3, 1, 1).astype(np.float32)
    np.testing.assert_allclose(raw[0], raw[1], atol=1e-5)


def test_stats_come_from_the_training_images(folder):
    ds = load("imagefolder", folder, stats_sample=1000)
    everything = np.asarray(ds.train_x, dtype=np.float64)
    np.testing.assert_allclose(everything.mean(axis=(0, 2, 3)), 0, atol=1e-4)
    np.testing.assert_allclose(everything.std(axis=(0, 2, 3)), 1, atol=1e-4)


def test_stats_sample_is_deterministic_and_the_documented_one(folder):
    first = load("imagefolder", folder, stats_sample=3)
    again = load("imagefolder", folder, stats_sample=3)
    np.testing.assert_array_equal(first.mean, again.mean)
    chosen = np.sort(np.random.default_rng(0).choice(12, size=3, replace=False))
    sample = np.stack([reference_decode(first.train_x.paths[i], 32, np.zeros(3), np.ones(3)) for i in chosen])
    np.testing.assert_allclose(first.mean, sample.mean(axis=(0, 2, 3)), atol=1e-5)
    np.testing.assert_allclose(first.std, sample.std(axis=(0, 2, 3)), atol=1e-5)


def test_loading_decodes_only_the_stats_sample_and_batches_only_the_batch(folder, monkeypatch):
    decoded = []
    real_decode = lazy_images.decode_image
    monkeypatch.setattr(lazy_images, "decode_image", lambda path, size: decoded.append(path) or real_decode(path, size))
    ds = load("imagefolder", folder, stats_sample=2)
    assert len(decoded) == 2
    decoded.clear()
    batches = ds.batches("train", 5, rng=np.random.default_rng(0))
    x, y = next(batches)
    assert len(decoded) == 5 and x.shape == (5, 3, 32, 32)
    rest = list(batches)
    assert len(decoded) == 12 and [len(b) for b, _ in rest] == [5, 2]
    assert sorted(map(str, decoded)) == sorted(map(str, ds.train_x.paths))


def test_augmentation_on_train_off_on_test_and_subset_stays_lazy(folder):
    ds = load("imagefolder", folder)
    assert ds.augment and ds.flip and ds.crop_padding == 4
    train, _ = next(ds.batches("train", 12, rng=np.random.default_rng(1), shuffle=False))
    assert not np.array_equal(train, ds.train_x[:])
    test, _ = next(ds.batches("test", 6))
    np.testing.assert_array_equal(test, ds.test_x[:])
    small = ds.subset(5, 2)
    assert isinstance(small.train_x, LazyImages) and small.train_x.shape == (5, 3, 32, 32)
    np.testing.assert_array_equal(small.train_x[:], ds.train_x[:5])


def test_undecodable_image_names_the_file(folder):
    (folder / "train" / "cat" / "000.png").write_bytes(b"\x89PNG\r\n\x1a\n but then nothing")
    ds = load("imagefolder", folder, stats_sample=1)  # the sample misses the bad file
    with pytest.raises(DataError, match=r"cat/000.png: undecodable image"):
        ds.train_x[np.array([8])]
    with pytest.raises(DataError, match=r"cat/000.png: undecodable image"):
        load("imagefolder", folder)  # the full sample decodes it


@pytest.mark.parametrize("missing", ["train", "val"])
def test_missing_split_folder(folder, missing):
    import shutil
    shutil.rmtree(folder / missing)
    with pytest.raises(DataError, match=rf"{missing}: missing split folder"):
        load("imagefolder", folder)


def test_val_class_unknown_to_train(folder):
    (folder / "val" / "dog").mkdir()
    with pytest.raises(DataError, match=r"val: class folders \['dog'\] are not in train/"):
        load("imagefolder", folder)


def test_split_without_images(folder):
    for name in CLASSES:
        for path in (folder / "val" / name).glob("*.png"):
            path.unlink()
    with pytest.raises(DataError, match="val: no image files"):
        load("imagefolder", folder)


@pytest.mark.parametrize("option", [dict(size=0), dict(stats_sample=0)])
def test_bad_options(folder, option):
    with pytest.raises(ValueError, match=next(iter(option))):
        load("imagefolder", folder, **option)
