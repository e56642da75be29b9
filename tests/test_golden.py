"""Golden files: export, read back, compare (specref.golden, specref.golden_compare, `specref validate`)."""
import json

import numpy as np
import pytest

from specref import cli, fft, nets
from specref.golden import GoldenError, conventions, export, read, record, write
from specref.golden_compare import compare, compare_files, hermitian_columns
from specref.layers.dense import Dense
from specref.layers.dense_concat import DenseConcat
from specref.layers.flatten import Flatten
from specref.layers.sequential import Sequential
from specref.layers.spatial_activation import Tanh

NET, SHAPE, BATCH, BETA = "spec-lenet", (1, 16, 16), 2, 0.1


@pytest.fixture(scope="module")
def golden(tmp_path_factory):
    """(path, arrays, manifest) of Spec-LeNet on a 2 x 1 x 16 x 16 Gaussian batch, float64."""
    arrays, manifest = export(NET, beta=BETA, batch=BATCH, dtype="float64", input_shape=SHAPE)
    path = tmp_path_factory.mktemp("golden") / "golden.npz"
    write(path, arrays, manifest)
    return str(path), arrays, manifest


def _candidate(tmp_path, golden, change=None, edit=None):
    """A copy of the golden file written after ``change(arrays)`` or ``edit(arrays, manifest)``
    (on copies)."""
    _, arrays, manifest = golden
    arrays = {key: value.copy() for key, value in arrays.items()}
    manifest = json.loads(json.dumps(manifest))
    if change:
        change(arrays)
    if edit:
        edit(arrays, manifest)
    path = tmp_path / "candidate.npz"
    write(path, arrays, manifest)
    return str(path)


def _cli(capsys, *args):
    status = cli.main(["validate", *map(str, args)])
    captured = capsys.readouterr()
    return status, captured.out + captured.err


def test_a_golden_file_compared_with_itself_passes(golden, capsys):
    path = golden[0]
    assert compare_files(path, path)["ok"]
    status, text = _cli(capsys, "compare", path, path)
    assert status == 0 and "PASSED: all 39 arrays match" in text


def test_the_manifest_lists_every_layer_with_its_configuration_and_the_conventions(golden):
    _, arrays, manifest = golden
    net = nets.build(NET, beta=BETA, dtype="float64", input_shape=SHAPE)
    layers = manifest["layers"]
    assert [(e["name"], e["type"]) for e in layers] == [(n, type(l).__name__) for n, l in net.named_layers()]
    by_name = {e["name"]: e for e in layers}
    assert by_name["0"]["config"] == {"in_channels": 1, "out_channels": 6, "kernel_size": 5, "stride": 1,
                                      "dtype": "float64", "fft_norm": "ortho", "bias": True}
    assert by_name["0"]["input"]["domain"] == "spatial"
    assert by_name["0"]["output"] == {"domain": "spectral", "shape": [2, 6, 20, 11], "size": [20, 20], "norm": "ortho"}
    assert by_name["1"]["config"] == {"beta": BETA}
    assert by_name["3"]["config"]["mode"] == "crop"
    assert by_name["4"]["input"]["domain"] == "spectral"           # the circular block
    assert by_name["14"]["params"] == {"weight": [10, 84], "bias": [10]}
    rules = manifest["conventions"]
    assert rules["fft_norm"] == "ortho" and rules["pooling"] == "crop"
    for key in ("half_spectrum", "convolution", "bias", "threshold", "activation", "pooling_rule",
                "complex_gradient", "loss"):
        assert len(rules[key]) > 20, key
    assert manifest["specref_version"] and manifest["net"]["name"] == NET and manifest["net"]["beta"] == BETA
    assert set(manifest["arrays"]) == set(arrays)
    assert manifest["arrays"]["output/5"]["spectral"] and manifest["arrays"]["output/5"]["size"] == [10, 10]
    expected = {"input", "labels", "loss", "grad_input"}
    for name, layer in net.named_layers():
        expected.add(f"output/{name}")
        expected |= {f"{kind}/{name}/{p}" for p in layer.params for kind in ("param", "grad")}
    assert set(arrays) == expected


def test_each_output_is_its_own_layers_map(golden):
    """Copied when made: the threshold, tanh and loss recomputed from the recorded maps agree."""
    _, arrays, _ = golden
    y = arrays["output/4"]
    assert np.array_equal(arrays["output/5"], y * (np.abs(y) > BETA))
    z = arrays["output/5"]
    np.testing.assert_allclose(arrays["output/6"], np.tanh(z.real) + 1j * np.tanh(z.imag), rtol=1e-14)
    logits, labels = arrays["output/14"], arrays["labels"]
    shifted = logits - logits.max(axis=1, keepdims=True)
    loss = np.mean(np.log(np.exp(shifted).sum(axis=1)) - shifted[np.arange(len(labels)), labels])
    assert arrays["loss"] == pytest.approx(loss, rel=1e-12)
    assert arrays["grad_input"].shape == arrays["input"].shape and np.any(arrays["grad_input"])


def test_a_perturbed_array_fails_and_the_report_names_the_first_departing_layer(golden, tmp_path, capsys):
    def change(arrays):
        arrays["output/12"][0, 0] += 1e-3
        arrays["output/5"][1, 2, 3, 4] += 1e-3

    path = _candidate(tmp_path, golden, change)
    report = compare_files(golden[0], path)
    assert not report["ok"] and report["failed"] == 2
    assert report["first_departure"]["layer"] == "5" and report["first_departure"]["type"] == "Threshold"
    assert report["first_departure"]["arrays"] == ["output/5"]
    status, text = _cli(capsys, "compare", golden[0], path)
    assert status == 1
    assert "first departure in computation order: layer 5 (Threshold, forward pass), output/5" in text
    assert "output/12" in text and "DEPARTS" in text
    status, text = _cli(capsys, "compare", golden[0], path, "--json")
    report = json.loads(text)
    assert status == 1 and report["ok"] is False and report["first_departure"]["layer"] == "5"


def test_a_change_within_the_tolerance_passes(golden, tmp_path):
    def change(arrays):
        arrays["grad/0/weight"] *= 1 + 1e-9

    assert compare_files(golden[0], _candidate(tmp_path, golden, change), rtol=1e-6)["ok"]
    assert not compare_files(golden[0], _candidate(tmp_path, golden, change), rtol=1e-12, atol=0)["ok"]


@pytest.mark.parametrize("part, departs", [("anti-hermitian", False), ("hermitian", True)])
def test_only_the_hermitian_part_of_self_conjugate_bins_is_compared(golden, tmp_path, part, departs):
    """output/0 is 20 x 20 (Q even): DC column 0 and Nyquist column 10 are self-conjugate."""
    sign = -1 if part == "anti-hermitian" else 1

    def change(arrays):
        y = arrays["output/0"]
        y[0, 1, 0, 0] += 0.5j if part == "anti-hermitian" else 0.5      # DC bin: its own conjugate
        for column in (0, 10):                                         # the pair (3, c), (-3, c)
            y[1, 2, 3, column] += 0.25 + 0.5j
            y[1, 2, 20 - 3, column] += sign * (0.25 - 0.5j)

    report = compare_files(golden[0], _candidate(tmp_path, golden, change))
    row = next(r for r in report["arrays"] if r["key"] == "output/0")
    assert row["spectral"] and row["passed"] is (not departs) and report["ok"] is (not departs)


def test_hermitian_columns_keep_what_irfft2_reads():
    rng = np.random.default_rng(0)
    for size in ((6, 8), (5, 7)):
        shape = (2, size[0], size[1] // 2 + 1)
        x = rng.standard_normal(shape) + 1j * rng.standard_normal(shape)
        symmetric = hermitian_columns(x, size)
        np.testing.assert_allclose(fft.irfft2(symmetric, size), fft.irfft2(x, size), atol=1e-12)
        assert not np.allclose(symmetric, x)                           # it did change the columns
        np.testing.assert_allclose(hermitian_columns(symmetric, size), symmetric)


@pytest.mark.parametrize("edit, expected", [
    (lambda a, m: a.pop("grad/4/bias"), "missing array 'grad/4/bias' (expected shape [16]"),
    (lambda a, m: a.update({"output/99": np.zeros(3)}), "extra array 'output/99'"),
    (lambda a, m: a.update({"param/10/weight": a["param/10/weight"][:, :-1]}),
     "array 'param/10/weight': shape [120, 399], expected [120, 400]"),
    (lambda a, m: a.update({"output/1": a["output/1"].real.copy()}),
     "array 'output/1': dtype float64 (real floating), expected complex"),
    (lambda a, m: m["net"].update(name="spec-vgg11"), "manifest net.name: candidate 'spec-vgg11', golden 'spec-lenet'"),
    (lambda a, m: m["layers"][5]["config"].update(beta=0.5),
     "manifest layers[5].config.beta: candidate 0.5, golden 0.1"),
    (lambda a, m: m["conventions"].update(fft_norm="backward"), "manifest conventions.fft_norm: candidate 'backward'"),
    (lambda a, m: m.pop("conventions"), "manifest field 'conventions' is missing from the candidate"),
])
def test_bad_candidates_are_reported_by_name_with_exit_status_1(golden, tmp_path, capsys, edit, expected):
    path = _candidate(tmp_path, golden, edit=edit)
    status, text = _cli(capsys, "compare", golden[0], path)
    assert status == 1 and expected in text and "Traceback" not in text
    assert "FAILED" in text


def test_unreadable_files_give_one_line_errors(golden, tmp_path, capsys):
    text_file = tmp_path / "notes.npz"
    text_file.write_text("not a zip")
    bare = tmp_path / "bare.npz"
    np.savez(bare, input=np.zeros(3))
    for candidate, expected in ((text_file, "candidate file"), (tmp_path / "absent.npz", "does not exist"),
                                (bare, "has no 'manifest' entry")):
        status, text = _cli(capsys, "compare", golden[0], candidate)
        assert status == 1 and expected in text and str(candidate) in text and "Traceback" not in text
    with pytest.raises(GoldenError, match="not a readable .npz"):
        read(text_file)


def test_nested_branches_are_recorded_under_their_qualified_names():
    rng = np.random.default_rng(0)
    branch = DenseConcat([Dense(4, 3, dtype=np.float64, rng=rng), Tanh()])
    net = Sequential([Flatten(), branch, Dense(7, 5, dtype=np.float64, rng=rng)])
    x, labels = rng.standard_normal((3, 1, 2, 2)), np.array([0, 4, 2])
    arrays, manifest = record(net, x, labels)
    assert [e["name"] for e in manifest["layers"]] == ["0", "1.0", "1.1", "2"]
    assert manifest["layers"][1]["inside"] == {"name": "1", "type": "DenseConcat"}
    assert {"param/1.0/weight", "grad/1.0/weight", "output/1.1"} <= set(arrays)
    np.testing.assert_array_equal(arrays["output/1.1"], np.tanh(arrays["output/1.0"]))
    assert compare(arrays, manifest, arrays, manifest)["ok"]
    assert manifest["net"] == {"name": None, "type": "Sequential"} and conventions(net)["fft_norm"] is None


def test_export_from_the_command_line(tmp_path, capsys):
    out = tmp_path / "digits-golden"                       # no suffix: written as given
    status, text = _cli(capsys, "export", "--net", "spec-lenet", "--data", "digits", "--batch", "2",
                        "--init", "lsuv", "--beta", "0.25", "--out", out)
    assert status == 0 and f"wrote {out}" in text
    arrays, manifest = read(out)
    assert manifest["batch"]["source"] == "digits test[0:2]" and manifest["net"]["beta"] == 0.25
    assert manifest["net"]["init"].startswith("lsuv") and arrays["input"].dtype == np.float64
    assert _cli(capsys, "compare", out, out)[0] == 0
    status, text = _cli(capsys, "export", "--net", "spec-lenet", "--data", "digits", "--input-shape", "1,8,8",
                        "--out", tmp_path / "x.npz")
    assert status == 1 and "--input-shape (1, 8, 8) cannot be used with --data digits" in text


def test_a_candidate_with_its_manifest_as_utf8_bytes_and_fortran_order_arrays_passes(golden, tmp_path):
    """The two forms validation/README.md allows besides NumPy's defaults (a C++ writer's)."""
    _, arrays, manifest = golden
    path = tmp_path / "cpp.npz"
    np.savez(path, manifest=np.frombuffer(json.dumps(manifest).encode("utf-8"), dtype=np.uint8),
             **{key: np.asfortranarray(value) if value.ndim else value for key, value in arrays.items()})
    assert compare_files(golden[0], path)["ok"]
