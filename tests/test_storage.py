"""Storage codecs round-trip on Hypothesis-drawn maps; nbytes is every byte they hold.

Maps: complex64, complex128 or float32, 1 to 4 axes, a drawn share of non-zeros (all-zero and
all-non-zero maps drawn on purpose). Lossless codecs decode exactly; fp16 within 2^-11 per
component (2^-10 per complex value, relative) plus the float16 subnormal floor; int8 within half
its per-(b, c) scale per component. ``pattern()`` is exact under every codec.
"""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from specref.backend import to_numpy
from specref.storage import codec_names, get_codec

LOSSLESS = ("dense", "csr", "bitmask")
FP16 = ("csr-fp16", "bitmask-fp16")
INT8 = ("csr-int8", "bitmask-int8")
# The xp fixture is a module, the same for every drawn example.
xp_settings = settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@st.composite
def maps(draw):
    dtype = np.dtype(draw(st.sampled_from(["complex64", "complex128", "float32"])))
    real = np.dtype(np.float32) if dtype != np.complex128 else np.dtype(np.float64)
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=4, min_side=1, max_side=6))
    # |values| in [2^-20, 1e4]: inside float16's range (65504), from normal to subnormal fp16.
    magnitude = st.floats(2.0 ** -20, 1e4, width=32)
    element = st.builds(lambda m, negative: -m if negative else m, magnitude, st.booleans())
    parts = [draw(hnp.arrays(real, shape, elements=element)) for _ in range(2 if dtype.kind == "c" else 1)]
    values = (parts[0] + 1j * parts[1]).astype(dtype) if dtype.kind == "c" else parts[0]
    density = draw(st.sampled_from([0.0, 1.0]) | st.floats(0, 1))
    keep = draw(hnp.arrays(np.float64, shape, elements=st.floats(0, 1))) < density
    if dtype.kind == "c" and draw(st.booleans()):   # values with a zero real or imaginary part
        values = np.where(draw(hnp.arrays(bool, shape)), values.real.astype(dtype), values)
    return np.where(keep | (density == 1.0), values, 0).astype(dtype)


def _held_arrays(obj, seen=None):
    """Every ndarray reachable from obj's attributes (an independent look at what a codec holds)."""
    seen = set() if seen is None else seen
    if id(obj) in seen:
        return []
    seen.add(id(obj))
    if isinstance(obj, np.ndarray) or type(obj).__module__.startswith("cupy"):
        return [obj]
    if isinstance(obj, (tuple, list)):
        return [a for item in obj for a in _held_arrays(item, seen)]
    if isinstance(obj, dict):
        return [a for item in obj.values() for a in _held_arrays(item, seen)]
    if hasattr(obj, "__dict__") and type(obj).__module__.startswith("specref"):
        return [a for item in vars(obj).values() for a in _held_arrays(item, seen)]
    return []


@pytest.mark.parametrize("name", LOSSLESS)
@given(array=maps())
@xp_settings
def test_lossless_codecs_round_trip_exactly(xp, name, array):
    stored = get_codec(name).encode(xp.asarray(array))
    decoded = to_numpy(stored.decode())
    assert decoded.dtype == array.dtype and decoded.shape == array.shape
    np.testing.assert_array_equal(decoded, array)
    np.testing.assert_array_equal(to_numpy(stored.pattern()), array != 0)
    assert stored.entries == array.size and stored.nonzeros == np.count_nonzero(array)


@pytest.mark.parametrize("name", FP16)
@given(array=maps())
@xp_settings
def test_fp16_within_2_to_the_minus_10_per_value(xp, name, array):
    stored = get_codec(name).encode(xp.asarray(array))
    decoded = to_numpy(stored.decode())
    assert decoded.dtype == array.dtype
    for part in (np.real, np.imag):
        error = np.abs(part(decoded).astype(np.float64) - part(array))
        assert np.all(error <= 2.0 ** -11 * np.abs(part(array)) + 2.0 ** -25)
    assert np.all(np.abs(decoded - array) <= 2.0 ** -10 * np.abs(array) + 2.0 ** -24)
    np.testing.assert_array_equal(to_numpy(stored.pattern()), array != 0)


@pytest.mark.parametrize("name", INT8)
@given(array=maps())
@xp_settings
def test_int8_within_half_a_scale_per_component(xp, name, array):
    stored = get_codec(name).encode(xp.asarray(array))
    decoded = to_numpy(stored.decode())
    rows = int(np.prod(array.shape[:2])) if array.ndim >= 2 else 1
    flat, got = array.reshape(rows, -1), decoded.reshape(rows, -1)
    parts = (np.real, np.imag) if array.dtype.kind == "c" else (np.real,)
    peak = np.max([np.abs(p(flat)).max(axis=1) for p in parts], axis=0).astype(np.float64)
    scale = (peak / 127)[:, None]
    for part in parts:
        error = np.abs(part(got).astype(np.float64) - part(flat))
        assert np.all(error <= scale / 2 * (1 + 2.0 ** -16) + 2.0 ** -23 * np.abs(part(flat)))
    np.testing.assert_array_equal(to_numpy(stored.pattern()), array != 0)


@pytest.mark.parametrize("name", codec_names())
@given(array=maps())
@xp_settings
def test_nbytes_is_every_array_held(xp, name, array):
    stored = get_codec(name).encode(xp.asarray(array))
    assert stored.nbytes == sum(int(a.nbytes) for a in stored.arrays)
    assert {id(a) for a in _held_arrays(stored)} == {id(a) for a in stored.arrays}


@pytest.mark.parametrize("density", [0.0, 1.0])
@pytest.mark.parametrize("name", codec_names())
def test_all_zero_and_all_nonzero_maps(name, density):
    rng = np.random.default_rng(3)
    array = (rng.standard_normal((2, 3, 5, 3)) + 1j * rng.standard_normal((2, 3, 5, 3))).astype(np.complex64)
    array = array * (density == 1.0)
    stored = get_codec(name).encode(array)
    np.testing.assert_array_equal(stored.pattern(), array != 0)
    if name in LOSSLESS:
        np.testing.assert_array_equal(stored.decode(), array)
    else:   # |values| < 4 here: int8's half scale is below 4 / 254
        np.testing.assert_allclose(stored.decode(), array, rtol=1e-3, atol=2e-2 if name in INT8 else 1e-7)
    assert stored.nonzeros == int(density * array.size)


def test_bytes_per_entry_match_the_design_notes():
    """CSR of complex64: 12 B per non-zero + 4 B row pointers; bit mask: 1 bit/entry + 8 B/non-zero."""
    rng = np.random.default_rng(0)
    array = rng.standard_normal((4, 8, 10, 6)).astype(np.complex64) * (rng.random((4, 8, 10, 6)) < 0.3)
    nnz, entries = np.count_nonzero(array), array.size
    assert get_codec("dense").encode(array).nbytes == 8 * entries
    assert get_codec("csr").encode(array).nbytes == 12 * nnz + 4 * (4 * 8 + 1)
    assert get_codec("bitmask").encode(array).nbytes == 8 * nnz + -(-entries // 8)
    assert get_codec("bitmask-fp16").encode(array).nbytes == 4 * nnz + -(-entries // 8)
    assert get_codec("bitmask-int8").encode(array).nbytes == 2 * nnz + -(-entries // 8) + 4 * 4 * 8


@pytest.mark.parametrize("bad", ["zip", "dense-fp16", "csr-int4", ""])
def test_unknown_codec_names_are_refused(bad):
    with pytest.raises(ValueError, match="unknown storage"):
        get_codec(bad)


@pytest.mark.parametrize("kind", ["imaginary", "real", "mixed"])
@pytest.mark.parametrize("name", ["csr", "csr-fp16", "csr-int8"])
def test_csr_keeps_purely_imaginary_and_purely_real_entries(xp, name, kind):
    """The CSR arrays come from the mask, not a dense-to-sparse conversion (cuSPARSE's drops
    purely imaginary values): the count, the pattern, the decoded map and the wrapped
    csr_matrix all keep every such entry, and row pointers and indices are int32."""
    rng = np.random.default_rng(7)
    real, imag = rng.standard_normal((2, 3, 4, 5)), rng.standard_normal((2, 3, 4, 5))
    parts = {"imaginary": 1j * imag, "real": real + 0j, "mixed": np.where(real > 0, real + 0j, 1j * imag)}
    array = np.where(rng.random((2, 3, 4, 5)) < 0.4, parts[kind], 0).astype(np.complex64)
    array[1, 2] = 0                       # an empty row
    stored = get_codec(name).encode(xp.asarray(array))
    assert stored.nonzeros == np.count_nonzero(array)
    np.testing.assert_array_equal(to_numpy(stored.pattern()), array != 0)
    atol = 0 if name == "csr" else 2e-2
    np.testing.assert_allclose(to_numpy(stored.decode()), array, rtol=1e-3 if atol else 0, atol=atol)
    matrix = stored.matrix()
    assert matrix.nnz == np.count_nonzero(array)
    np.testing.assert_allclose(to_numpy(matrix.toarray()), array.reshape(6, 20), rtol=1e-3 if atol else 0,
                               atol=atol)
    assert stored.indptr.dtype == np.int32 and stored.indices.dtype == np.int32
    np.testing.assert_array_equal(to_numpy(stored.indptr), np.r_[0, np.cumsum((array != 0).reshape(6, -1).sum(1))])
