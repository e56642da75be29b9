"""specref.kernels against their NumPy reference formulas, one test body for NumPy and CuPy.

Inputs are drawn on the host, laid out as SpectralConv2d lays spectra out (frequency-major:
(P, H, B, C) memory viewed as (B, C, P, H)), moved with ``xp.asarray`` and compared with the
formulas below, computed independently in NumPy. Threshold inputs are kept away from the kink
|Y| = beta, where backends may round |Y| differently.
"""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from specref import kernels
from specref.backend import to_numpy
from tests.conftest import CUPY_SKIP_REASON

# CUDA's tanh is within 2 ulps of NumPy's and may fuse multiply-adds; the backward's absolute
# error scales with |dZ| (its 1 - Z^2 cancels near saturation), hence atol times a scale.
TOLERANCE = {np.complex64: dict(rtol=2e-6, atol=1e-6), np.complex128: dict(rtol=1e-13, atol=1e-14)}

# The xp fixture only hands out a module, so sharing it across Hypothesis examples is safe.
stateless_fixture = settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
cases = st.fixed_dictionaries({
    "shape": st.tuples(st.integers(1, 3), st.integers(1, 4), st.integers(1, 6), st.integers(1, 5)),
    "seed": st.integers(0, 2**16), "beta": st.floats(0, 2.5),
    "dtype": st.sampled_from([np.complex64, np.complex128]),
    "layout": st.sampled_from(["c", "frequency-major", "strided"]),
})


@pytest.fixture(params=["numba", "numpy", "cupy"])
def xp(request, monkeypatch):
    """The array module each test body runs on; on the host both paths: numba (the default)
    and the plain-NumPy fallback (numba turned off)."""
    if request.param == "cupy":
        if CUPY_SKIP_REASON:
            pytest.skip(f"CuPy backend test skipped: {CUPY_SKIP_REASON}")
        import cupy

        return cupy
    if request.param == "numba":
        assert kernels._numba() is not None, "numba is a dependency of specref and must import (and SPECREF_NUMBA=0 must not be set)"
    else:
        monkeypatch.setattr(kernels, "_numba_kernels", False)
    return np


def reference_threshold(y, beta):
    mask = np.abs(y) > np.finfo(y.dtype).dtype.type(beta)
    return np.where(mask, y, 0), mask


def reference_split_tanh(y):
    return np.tanh(y.real) + 1j * np.tanh(y.imag)


def reference_backward(dz, z, mask_zeros):
    dy = dz.real * (1 - z.real ** 2) + 1j * dz.imag * (1 - z.imag ** 2)
    return dy * (z != 0) if mask_zeros else dy


def draw(xp, case, scale=1.5, salt=0):
    """(host array, the same on xp in the case's layout)."""
    rng = np.random.default_rng(case["seed"] + salt)
    b, c, p, h = case["shape"]
    memory = (rng.standard_normal((p, h, b, c)) + 1j * rng.standard_normal((p, h, b, c))) * scale
    memory = memory.astype(case["dtype"])
    if case.get("beta") is not None:
        memory = away_from_kink(memory, case["beta"])
    memory[rng.random(memory.shape) < 0.2] = 0          # exact zeros, as after a threshold
    layout = case["layout"]
    if layout == "c":
        host = np.ascontiguousarray(memory.transpose(2, 3, 0, 1))
        return host, xp.asarray(host)
    if layout == "frequency-major":
        return memory.transpose(2, 3, 0, 1), xp.asarray(memory).transpose(2, 3, 0, 1)
    wide = np.concatenate([memory, memory], axis=-1)     # every other channel: no contiguous order
    return wide[..., ::2].transpose(2, 3, 0, 1), xp.asarray(wide)[..., ::2].transpose(2, 3, 0, 1)


def away_from_kink(y, beta, gap=1e-3):
    magnitude = np.abs(y)
    near = np.abs(magnitude - beta) < gap * max(1.0, beta)
    y = y.copy()
    y[near] *= (beta + 2 * gap * max(1.0, beta)) / np.maximum(magnitude[near], 1e-30)
    return y


def assert_close(actual, expected, dtype, scale=1.0):
    tolerance = TOLERANCE[np.dtype(dtype).type]
    np.testing.assert_allclose(to_numpy(actual), expected, rtol=tolerance["rtol"],
                               atol=tolerance["atol"] * max(1.0, float(scale)))


@stateless_fixture
@given(case=cases)
def test_threshold_matches_its_formula(xp, case):
    host, y = draw(xp, case)
    out, mask = kernels.threshold(y, case["beta"])
    ref_out, ref_mask = reference_threshold(host, case["beta"])
    assert out.dtype == host.dtype and mask.dtype == np.bool_
    np.testing.assert_array_equal(to_numpy(mask), ref_mask)
    np.testing.assert_array_equal(to_numpy(out), ref_out)
    unmasked, no_mask = kernels.threshold(y, case["beta"], with_mask=False)
    assert no_mask is None
    np.testing.assert_array_equal(to_numpy(unmasked), ref_out)


@stateless_fixture
@given(case=cases, same_layout=st.booleans())
def test_where_nonzero_matches_its_formula(xp, case, same_layout):
    host_g, g = draw(xp, case)
    host_z, z = draw(xp, case, salt=1)                 # about 20% exact zeros
    if not same_layout:
        z = xp.ascontiguousarray(z)
    dx = kernels.where_nonzero(g, z)
    assert dx.dtype == host_g.dtype
    if case["layout"] != "strided":                     # laid out like grad where grad has an order
        assert [s for s, n in zip(dx.strides, dx.shape) if n > 1] == \
            [s for s, n in zip(g.strides, g.shape) if n > 1]
    np.testing.assert_array_equal(to_numpy(dx), host_g * (host_z != 0))


@stateless_fixture
@given(case=cases)
def test_split_tanh_matches_its_formula(xp, case):
    host, y = draw(xp, case, scale=3.0)
    out = kernels.split_tanh(y)
    assert out.dtype == host.dtype
    assert_close(out, reference_split_tanh(host), case["dtype"])


@stateless_fixture
@given(case=cases, mask_zeros=st.booleans(), same_layout=st.booleans())
def test_split_tanh_backward_matches_its_formula(xp, case, mask_zeros, same_layout):
    host_y, y = draw(xp, case, scale=3.0)
    host_dz, dz = draw(xp, case, salt=1)
    z = kernels.split_tanh(y)
    if not same_layout:                                   # as when Z comes back from a codec
        z = xp.ascontiguousarray(z)
    dy = kernels.split_tanh_backward(dz, z, mask_zeros=mask_zeros)
    assert dy.dtype == host_dz.dtype
    expected = reference_backward(host_dz, reference_split_tanh(host_y), mask_zeros)
    assert_close(dy, expected, case["dtype"], scale=np.abs(host_dz).max(initial=0))


@stateless_fixture
@given(case=cases)
def test_threshold_tanh_count_matches_its_formula(xp, case):
    host, y = draw(xp, case)
    z, count = kernels.threshold_tanh_count(y, case["beta"])
    expected = reference_split_tanh(reference_threshold(host, case["beta"])[0])
    assert_close(z, expected, case["dtype"])
    assert count.shape == () and int(count) == np.count_nonzero(expected)


@pytest.mark.parametrize("size", [1, 31, 33, 4097, 300_001])
def test_count_is_exact_across_warps_blocks_and_tails(xp, size):
    rng = np.random.default_rng(size)
    host = (rng.standard_normal(size) + 1j * rng.standard_normal(size)).astype(np.complex64)
    host = away_from_kink(host, 1.0).reshape(1, 1, 1, size)
    z, count = kernels.threshold_tanh_count(xp.asarray(host), 1.0)
    assert int(count) == np.count_nonzero(np.abs(host) > 1.0)


@pytest.mark.parametrize("name", ["threshold", "split_tanh", "threshold_tanh_count"])
def test_outputs_keep_the_frequency_major_layout(xp, name):
    memory = xp.asarray((np.arange(5 * 4 * 2 * 3) * (1 + 0.5j)).astype(np.complex64).reshape(5, 4, 2, 3))
    y = memory.transpose(2, 3, 0, 1)
    out = getattr(kernels, name)(y, 1.0) if name != "split_tanh" else kernels.split_tanh(y)
    out = out[0] if isinstance(out, tuple) else out
    assert out.strides == y.strides
    dy = kernels.split_tanh_backward(y, out)
    assert dy.strides == y.strides


def test_real_or_integer_input_is_refused(xp):
    with pytest.raises(TypeError, match="values must be complex64 or complex128, got dtype float32"):
        kernels.threshold(xp.ones((1, 1, 2, 2), xp.float32), 0.5)
    with pytest.raises(TypeError, match="grad must be complex"):
        kernels.split_tanh_backward(xp.ones(3), xp.ones(3, xp.complex64))


def test_mixed_host_and_device_arrays_are_refused(xp):
    if xp is np:
        pytest.skip("needs a device array to mix with a host one")
    with pytest.raises(TypeError, match="mixed NumPy and CuPy"):
        kernels.split_tanh_backward(xp.ones(3, xp.complex64), np.ones(3, np.complex64))


def test_without_numba_the_numpy_path_runs_and_says_so(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "numba", None)          # `import numba` raises ImportError
    monkeypatch.delitem(sys.modules, "specref.numba_kernels", raising=False)   # imported afresh
    monkeypatch.setattr(kernels, "_numba_kernels", None)
    with pytest.warns(RuntimeWarning, match="numba is unavailable"):
        assert kernels._numba() is None
    host, _ = draw(np, {"shape": (2, 2, 5, 3), "seed": 1, "beta": 0.7, "dtype": np.complex64,
                        "layout": "frequency-major"})
    out, mask = kernels.threshold(host, 0.7)
    np.testing.assert_array_equal(out, reference_threshold(host, 0.7)[0])
    z = kernels.split_tanh(out)
    assert_close(kernels.split_tanh_backward(host, z, True), reference_backward(host, z, True), np.complex64,
                 scale=np.abs(host).max())


# --- the CUDA sources compile (checked on machines with CuPy and NVRTC but no GPU) ------------
def _nvrtc_or_skip():
    if CUPY_SKIP_REASON is None:
        pytest.skip("a GPU is present: the kernels are compiled and run by the tests above")
    try:
        from cupy_backends.cuda.libs import nvrtc
        nvrtc.getVersion()
    except Exception as exc:  # CuPy or libnvrtc missing
        pytest.skip(f"NVRTC is not available to compile the kernel sources: {exc}")
    return nvrtc


def elementwise_source(name, dtype):
    """The CUDA source CuPy generates for ElementwiseKernel ``name`` on 1-D contiguous arrays."""
    from cupy._core._scalar import get_typename

    from specref_gpu.kernels import SOURCES

    in_params, out_params, operation, _ = SOURCES[name]
    params, binds = [], []
    specs = [(p, True) for p in in_params.split(",")] + [(p, False) for p in out_params.split(",")]
    for text, is_input in specs:
        words = text.split()
        kind, var = words[-2:]
        ctype = get_typename(np.dtype(dtype)) if kind == "T" else get_typename(np.dtype(kind))
        const = "const " if is_input else ""
        if "raw" in words:
            params.append(f"{const}CArray<{ctype}, 1, true, true> {var}")
        elif is_input and kind != "T":                      # a scalar argument
            params.append(f"const {ctype} {var}")
        else:
            params.append(f"{const}CArray<{ctype}, 1, true, true> _raw_{var}")
            binds.append(f"{const}{'T' if kind == 'T' else ctype} &{var} = _raw_{var}[_ind.get()];")
    params.append("CIndexer<1, true> _ind")
    return ("#include <cupy/complex.cuh>\n#include <cupy/carray.cuh>\n#include <cupy/atomics.cuh>\n"
            f"typedef {get_typename(np.dtype(dtype))} T;\n"
            f"extern \"C\" __global__ void specref_{name}({', '.join(params)}) {{\n"
            "  #pragma unroll 1\n  CUPY_FOR(i, _ind.size()) {\n    _ind.set(i);\n    "
            + "\n    ".join(binds) + f"\n    {operation};\n  }}\n}}\n")


@pytest.mark.parametrize("dtype", [np.complex64, np.complex128])
@pytest.mark.parametrize("name", ["threshold", "split_tanh", "split_tanh_backward", "threshold_tanh_count"])
def test_kernel_sources_compile_with_nvrtc(name, dtype):
    nvrtc = _nvrtc_or_skip()
    import os

    import cupy

    include = os.path.join(os.path.dirname(cupy.__file__), "_core", "include")
    options = [f"-I{include}", "--std=c++17", "--gpu-architecture=compute_90"] + [
        f"-I{os.path.join(include, 'cupy', '_cccl', part)}" for part in ("libcudacxx", "thrust", "cub")]
    program = nvrtc.createProgram(elementwise_source(name, dtype), f"{name}.cu", [], [])
    try:
        nvrtc.compileProgram(program, options)
    except Exception:
        pytest.fail(f"{name} ({np.dtype(dtype)}) does not compile:\n{nvrtc.getProgramLog(program)}")
