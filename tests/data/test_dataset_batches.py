"""Dataset.batches: deterministic for a Generator state, one pass over every example, augmentation
on training batches only; Dataset.subset."""
import numpy as np
import pytest

from specref.data import Dataset

N_TRAIN, N_TEST, SIZE = 23, 9, 6


def make_dataset(augment=True, flip=True, crop_padding=2):
    """Images with distinct, asymmetric content; label of image i is i % 3."""
    rng = np.random.default_rng(0)
    train_x = rng.standard_normal((N_TRAIN, 2, SIZE, SIZE)).astype(np.float32)
    test_x = rng.standard_normal((N_TEST, 2, SIZE, SIZE)).astype(np.float32)
    return Dataset("toy", train_x, np.arange(N_TRAIN) % 3, test_x, np.arange(N_TEST) % 3,
                   ["a", "b", "c"], mean=[0.5, 0.25], std=[0.25, 0.5],
                   augment=augment, crop_padding=crop_padding, flip=flip)


def source_index(ds, split, image):
    """The index of the stored image equal to ``image`` (un-augmented batches only)."""
    x = ds.train_x if split == "train" else ds.test_x
    matches = [i for i in range(len(x)) if np.array_equal(x[i], image)]
    assert len(matches) == 1
    return matches[0]


def crops_and_flips(ds, source):
    """Every image augmentation may produce from ``source``."""
    p, pad_value = ds.crop_padding, -ds.mean / ds.std
    padded = np.stack([np.pad(plane, p, constant_values=v) for plane, v in zip(source, pad_value)])
    for dy in range(2 * p + 1):
        for dx in range(2 * p + 1):
            window = padded[:, dy:dy + SIZE, dx:dx + SIZE].astype(np.float32)
            yield window
            if ds.flip:
                yield window[..., ::-1]


def collect(iterator):
    xs, ys = zip(*iterator)
    return np.concatenate(xs), np.concatenate(ys)


def test_same_generator_seed_gives_the_same_batches():
    ds = make_dataset()
    first = collect(ds.batches("train", 5, rng=np.random.default_rng(42)))
    second = collect(ds.batches("train", 5, rng=np.random.default_rng(42)))
    other = collect(ds.batches("train", 5, rng=np.random.default_rng(43)))
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])
    assert not np.array_equal(first[0], other[0])


def test_resuming_from_a_saved_generator_state_repeats_the_epoch():
    ds = make_dataset()
    rng = np.random.default_rng(5)
    collect(ds.batches("train", 4, rng=rng))
    state = rng.bit_generator.state
    after = collect(ds.batches("train", 4, rng=rng))
    resumed = np.random.default_rng(0)
    resumed.bit_generator.state = state
    again = collect(ds.batches("train", 4, rng=resumed))
    np.testing.assert_array_equal(after[0], again[0])


@pytest.mark.parametrize("batch_size", [1, 4, 5, 23, 100])
def test_each_epoch_covers_every_example_once_in_the_drawn_order(batch_size):
    ds = make_dataset(augment=False)
    batches = list(ds.batches("train", batch_size, rng=np.random.default_rng(9)))
    sizes = [len(x) for x, _ in batches]
    assert len(batches) == ds.num_batches("train", batch_size) == -(-N_TRAIN // batch_size)
    assert all(s == batch_size for s in sizes[:-1]) and sum(sizes) == N_TRAIN
    order = [source_index(ds, "train", image) for x, _ in batches for image in x]
    np.testing.assert_array_equal(order, np.random.default_rng(9).permutation(N_TRAIN))
    np.testing.assert_array_equal(np.concatenate([y for _, y in batches]), ds.train_y[order])


def test_test_split_is_in_order_and_never_augmented():
    ds = make_dataset(augment=True)
    x, y = collect(ds.batches("test", 4, rng=np.random.default_rng(0)))
    np.testing.assert_array_equal(x, ds.test_x)
    np.testing.assert_array_equal(y, ds.test_y)
    with pytest.raises(ValueError, match="never augmented"):
        ds.batches("test", 4, augment=True)


def test_augmentation_changes_train_batches_by_true_crops_and_flips():
    ds = make_dataset(augment=True)
    x, _ = collect(ds.batches("train", 8, rng=np.random.default_rng(1), shuffle=False))
    assert not np.array_equal(x, ds.train_x)
    flipped = 0
    for image, source in zip(x, ds.train_x):
        candidates = list(crops_and_flips(ds, source))
        assert any(np.array_equal(image, c) for c in candidates)
        flipped += not any(np.array_equal(image, c) for c in candidates[::2])
    assert 0 < flipped < N_TRAIN


def test_augment_off_and_no_flip_options_are_respected():
    plain = make_dataset(augment=False)
    x, _ = collect(plain.batches("train", 8, rng=np.random.default_rng(1), shuffle=False))
    np.testing.assert_array_equal(x, plain.train_x)
    crop_only = make_dataset(augment=True, flip=False)
    x, _ = collect(crop_only.batches("train", 8, rng=np.random.default_rng(1), shuffle=False))
    for image, source in zip(x, crop_only.train_x):
        assert any(np.array_equal(image, c) for c in crops_and_flips(crop_only, source))


def test_subset_keeps_the_first_examples_and_the_full_stats():
    ds = make_dataset()
    small = ds.subset(5, 3)
    assert (small.num_train, small.num_test) == (5, 3)
    np.testing.assert_array_equal(small.train_x, ds.train_x[:5])
    np.testing.assert_array_equal(small.test_y, ds.test_y[:3])
    np.testing.assert_array_equal(small.mean, ds.mean)
    assert small.classes == ds.classes and small.augment == ds.augment
    assert ds.subset().num_train == N_TRAIN
    with pytest.raises(ValueError, match="n_train"):
        ds.subset(N_TRAIN + 1, 1)


def test_properties():
    ds = make_dataset()
    assert ds.input_shape == (2, SIZE, SIZE)
    assert (ds.num_classes, ds.num_train, ds.num_test) == (3, N_TRAIN, N_TEST)
    assert ds.train_y.dtype == np.int64


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(split="val", batch_size=2), ValueError, "split"),
    (dict(split="train", batch_size=0), ValueError, "batch_size"),
    (dict(split="train", batch_size=2, rng=np.random.RandomState(0)), TypeError, "Generator"),
])
def test_bad_batch_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        make_dataset().batches(**kwargs)


def test_labels_out_of_range_are_refused():
    x = np.zeros((2, 1, 2, 2), np.float32)
    with pytest.raises(ValueError, match="train_y"):
        Dataset("bad", x, [0, 3], x, [0, 1], ["a", "b"], [0.0], [1.0])
