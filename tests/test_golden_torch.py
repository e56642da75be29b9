"""`specref validate torch` (specref.golden_torch): the PyTorch implementation recomputes a golden
file and passes the golden comparison; with a convention broken on purpose it fails, and the
comparison pins the error to the right layer (the first departing one in forward order)."""
import json
import sys

import numpy as np
import pytest

from specref import cli
from specref.golden import GoldenError, export, read, write
from specref.golden_compare import compare_files

HINT = "PyTorch is not installed: pip install -e '.[torch]'"


@pytest.fixture(scope="module")
def torch():
    """torch, on one thread (small ops; two threads on the shared 2-core machine ran 10x slower)."""
    torch = pytest.importorskip("torch", reason=HINT)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield torch
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def spec_lenet(tmp_path_factory):
    """Spec-LeNet, 2 x 1 x 16 x 16 Gaussian batch, float64, LSUV, beta 0.25: every Threshold keeps
    some entries and drops others (checked), so a wrong threshold gradient shows."""
    arrays, manifest = export("spec-lenet", beta=0.25, batch=2, dtype="float64", init="lsuv", input_shape=(1, 16, 16))
    for entry in manifest["layers"]:
        if entry["type"] == "Threshold":
            assert 0 < np.mean(arrays[f"output/{entry['name']}"] != 0) < 1
    path = tmp_path_factory.mktemp("golden") / "spec-lenet.npz"
    write(path, arrays, manifest)
    return str(path)


@pytest.fixture(scope="module")
def spec_vgg11(tmp_path_factory):
    """Spec-VGG-11 with crop pooling (34 -> 17 -> 9 -> 5 -> 3 -> 2: only 3 -> 2 folds a Nyquist bin)."""
    arrays, manifest = export("spec-vgg11", beta=0.1, batch=1, dtype="float64", init="lsuv")
    path = tmp_path_factory.mktemp("golden") / "spec-vgg11.npz"
    write(path, arrays, manifest)
    return str(path)


def _validate(path, tmp_path):
    """The PyTorch candidate written to a file, then compared by the golden comparison."""
    from specref.golden_torch import validate

    candidate = tmp_path / "candidate.npz"
    validate(path, out=candidate)
    return compare_files(path, candidate, rtol=1e-9, atol=1e-12)


def test_the_torch_candidate_of_spec_lenet_passes(torch, spec_lenet, tmp_path):
    report = _validate(spec_lenet, tmp_path)
    assert report["ok"], report["first_departure"]
    assert not report["problems"] and not report["manifest_differences"]
    assert max(row["relative_error"] for row in report["arrays"]) < 1e-12
    _, manifest = read(tmp_path / "candidate.npz", "candidate")
    assert "PyTorch" in manifest["implementation"]


def test_a_spatial_net_passes_too(torch, tmp_path):
    """The spatial conversion (torch.nn, flipped kernels and gradients) through the same command."""
    arrays, manifest = export("lenet", batch=2, dtype="float64", input_shape=(1, 32, 32))
    path = tmp_path / "lenet.npz"
    write(path, arrays, manifest)
    assert _validate(str(path), tmp_path)["ok"]


def test_the_command_exits_0_on_a_match_and_prints_json(torch, spec_lenet, capsys):
    assert cli.main(["validate", "torch", spec_lenet, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] and report["compared"] == 39


def _transform(torch, inverse, weighted):
    """irfft2 (``inverse``) or rfft2 as an autograd Function with a hand-written adjoint: with
    ``weighted`` the right one (adjoint of irfft2: w * rfft2(grad); of rfft2: irfft2(grad / w),
    cropped to the input; dual norms), without it w = 1 on every column of the half spectrum
    (w = 2 on the columns that stand for two conjugate columns, 1 on DC and Nyquist)."""
    dual = {"backward": "forward", "ortho": "ortho", "forward": "backward"}

    class Transform(torch.autograd.Function):
        @staticmethod
        def forward(ctx, tensor, size, norm):
            ctx.shape, ctx.size, ctx.norm = tensor.shape[-2:], tuple(size), norm
            return (torch.fft.irfft2 if inverse else torch.fft.rfft2)(tensor, s=ctx.size, norm=norm)

        @staticmethod
        def backward(ctx, grad):
            w = torch.full((ctx.size[1] // 2 + 1,), 2.0 if weighted else 1.0, dtype=torch.float64)
            w[0] = w[-1 if ctx.size[1] % 2 == 0 else 0] = 1.0
            if inverse:
                return torch.fft.rfft2(grad, norm=dual[ctx.norm]) * w, None, None
            m, n = ctx.shape
            return torch.fft.irfft2(grad / w, s=ctx.size, norm=dual[ctx.norm])[..., :m, :n], None, None

    return Transform.apply


def _no_nyquist_fold(torch, full, axis, n_out):
    n = full.shape[axis]
    low, high = (n_out + 1) // 2, n_out // 2
    return torch.cat([full.narrow(axis, 0, low), full.narrow(axis, n - high, high)], axis)


# name: (golden fixture, the broken convention, the first departing output in forward order (the
# broken layer; None for a backward-only error), the departing arrays of a backward-only error)
INJECTIONS = {
    "kernel not flipped": ("spec_lenet", lambda torch: ("kernel_spectrum", lambda w, size: torch.fft.rfft2(
        w.flip(-2, -1), s=tuple(size))), "0", None),
    "bias not scaled": ("spec_lenet", lambda torch: ("dc_scale", lambda size, norm: 1.0), "0", None),
    "crop without the Nyquist fold": ("spec_vgg11", lambda torch: (
        "crop_axis", lambda full, axis, n_out: _no_nyquist_fold(torch, full, axis, n_out)), "28", None),
    "straight-through threshold": ("spec_lenet", lambda torch: ("threshold", lambda v, beta: v + (
        torch.where(v.abs() > beta, v, torch.zeros_like(v)) - v).detach()), None,
        {"grad/0/weight", "grad/0/bias", "grad/4/weight", "grad/4/bias", "grad_input"}),
    # the biases read only the DC bins, where w = 1
    "irfft2 adjoint weights 1": ("spec_lenet", lambda torch: ("to_spatial", _transform(torch, True, weighted=False)),
                                 None, {"grad/0/weight", "grad/4/weight", "grad_input"}),
    "rfft2 adjoint weights 1": ("spec_lenet", lambda torch: ("to_spectrum", _transform(torch, False, weighted=False)),
                                None, {"grad_input"}),
}


@pytest.mark.parametrize("injection", list(INJECTIONS))
def test_a_broken_convention_is_caught_at_its_layer(torch, injection, request, tmp_path, monkeypatch):
    """Caught (the file fails) and pinned: a forward error's first departing output is the broken
    layer; a backward-only error leaves every output, the loss and the dense head's gradients
    matching, and departs exactly in the gradients upstream of the broken layer. The comparison's
    ``first_departure`` (computation order: forward, then backward from the last layer) names the
    broken layer for a forward error, and for a backward error the last parameterised layer whose
    gradient departs (or none when only grad_input does)."""
    from specref import torch_spectral

    fixture, breaking, broken_layer, backward_departures = INJECTIONS[injection]
    path = request.getfixturevalue(fixture)
    name, broken = breaking(torch)
    monkeypatch.setattr(torch_spectral, name, broken)
    report = _validate(path, tmp_path)
    assert not report["ok"] and report["first_departure"] is not None
    departing = [row for row in report["arrays"] if not row["passed"]]
    outputs = [row["layer"] for row in departing if row["key"].startswith("output/")]
    _, manifest = read(path)
    if broken_layer is not None:
        assert outputs and outputs[0] == broken_layer, outputs
        assert report["first_departure"]["layer"] == broken_layer
        assert report["first_departure"]["phase"] == "forward"
        if broken_layer == "28":     # the one crop with an even output: 3 -> 2
            entry = manifest["layers"][28]
            assert entry["type"] == "SpectralDownsample" and entry["output"]["size"] == [2, 2]
    else:
        assert {row["key"] for row in departing} == backward_departures
        order = [entry["name"] for entry in manifest["layers"]]
        grad_layers = [key.split("/")[1] for key in backward_departures if key.startswith("grad/")]
        expected = max(grad_layers, key=order.index) if grad_layers else None
        assert report["first_departure"]["layer"] == expected
        assert report["first_departure"]["phase"] == "backward"


@pytest.mark.parametrize("inverse", [True, False], ids=["irfft2", "rfft2"])
def test_the_adjoint_injection_is_faithful_when_weighted(torch, spec_lenet, tmp_path, monkeypatch, inverse):
    """Control for the two injections above: the same hand-written transform with the weights w
    passes, so what they catch is the weights, not the mechanism."""
    from specref import torch_spectral

    monkeypatch.setattr(torch_spectral, "to_spatial" if inverse else "to_spectrum",
                        _transform(torch, inverse, weighted=True))
    assert _validate(spec_lenet, tmp_path)["ok"]


def test_the_command_exits_1_when_the_candidate_departs(torch, spec_lenet, capsys, monkeypatch):
    from specref import torch_spectral

    monkeypatch.setattr(torch_spectral, "dc_scale", lambda size, norm: 1.0)
    assert cli.main(["validate", "torch", spec_lenet]) == 1
    assert "first departure in computation order: layer 0 (SpectralConv2d, forward pass)" in capsys.readouterr().out


def test_a_file_without_a_registry_net_is_refused(torch, spec_lenet, tmp_path, capsys):
    arrays, manifest = read(spec_lenet)
    manifest["net"] = {"name": None, "type": "Sequential"}
    path = tmp_path / "anonymous.npz"
    write(path, arrays, manifest)
    from specref.golden_torch import validate

    with pytest.raises(GoldenError, match="registry name"):
        validate(str(path))
    assert cli.main(["validate", "torch", str(path)]) == 1
    assert capsys.readouterr().err.count("\n") == 1


def test_without_torch_the_command_says_what_to_install(spec_lenet, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "torch", None)          # `import torch` now fails
    assert cli.main(["validate", "torch", spec_lenet]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "PyTorch is not installed" in err and "pip install -e '.[torch]'" in err
