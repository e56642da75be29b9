"""specref.audit and `specref audit`: both readings against the beta = 0 gradient, the
finite-difference verdict (and that it catches a wrong backward), clear errors, JSON and plot."""
import json
import math

import numpy as np
import pytest

import specref
from specref import cli, nets
from specref.layers.spectral_conv import SpectralConv2d

SHAPE = (1, 12, 12)
CLASSES = 4


def small_net(dtype=np.float64, beta=0.1, storage="dense"):
    return nets.build("spec-lenet", dtype=dtype, seed=0, input_shape=SHAPE, num_classes=CLASSES, beta=beta,
                      storage=storage)


def batch(n=3, seed=1):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, *SHAPE)), rng.integers(0, CLASSES, n)


@pytest.mark.parametrize("reading", ["forward", "storage"])
def test_beta_zero_reproduces_the_reference_gradient(reading):
    x, y = batch()
    (row,) = specref.audit(small_net(), x, y, [0.0], threshold=reading)["betas"]
    assert row["loss_change"] == 0.0
    assert row["max_relative_error"] < 1e-12 and row["min_cosine"] > 1 - 1e-12
    assert row["min_sign_agreement"] == 1.0
    assert row["finite_difference"]["verdict"] == "pass"


@pytest.mark.parametrize("reading", ["forward", "storage"])
def test_a_larger_beta_moves_the_gradient_and_the_backward_still_checks(reading):
    x, y = batch()
    result = specref.audit(small_net(), x, y, [0.0, 0.25], threshold=reading)
    row = result["betas"][1]
    assert row["max_relative_error"] > 1e-2 and row["min_cosine"] < 0.999
    assert all(d < 1.0 for d in row["density"].values())
    assert row["finite_difference"]["verdict"] == "pass", row["finite_difference"]
    assert row["finite_difference"]["max_error"] < 1e-5
    assert (row["loss_change"] == 0.0) == (reading == "storage")


def test_a_wrong_weight_gradient_fails_the_check_and_is_named(monkeypatch):
    original = SpectralConv2d.backward

    def off_by_one_percent(self, dy, input_grad=True):
        dx = original(self, dy, input_grad=input_grad)
        self.grads["weight"] = self.grads["weight"] * 1.01
        return dx

    monkeypatch.setattr(SpectralConv2d, "backward", off_by_one_percent)
    x, y = batch()
    check = specref.audit(small_net(), x, y, [0.25])["betas"][0]["finite_difference"]
    assert check["verdict"] == "fail"
    assert set(check["failed"]) == {"0.weight", "4.weight"}     # the two SpectralConv2d layers
    assert check["params"]["0.bias"]["status"] == "pass"


def test_a_beta_on_the_kink_is_reported_too_close_not_failed():
    net = small_net()
    x, y = batch()
    magnitude = np.abs(net.layers[0].forward(x).values[0, 0, 3, 2])   # a |Y| the threshold sees
    net.clear_cache()
    check = specref.audit(net, x, y, [float(magnitude)])["betas"][0]["finite_difference"]
    assert check["verdict"] == "inconclusive"
    assert "0.weight" in check["too_close"] and not check["failed"]
    assert check["margins"]["1:Threshold"] == 0.0


def test_the_net_is_left_as_it_was():
    net = small_net(dtype=np.float32, beta=0.1, storage="csr")
    x, y = batch()
    before = {k: v.copy() for k, v in net.parameters().items()}
    net.forward(x.astype(np.float32))
    caches = [layer.cache for _, layer in net.named_layers()]
    specref.audit(net, x, y, [0.0, 0.5], threshold="storage")
    assert net.beta == 0.1 and net.storage.name == "csr"
    assert all(np.array_equal(before[k], v) and v.dtype == np.float32 for k, v in net.parameters().items())
    assert all(layer.cache is cache for (_, layer), cache in zip(net.named_layers(), caches))


@pytest.mark.parametrize("betas", [[-0.1], [math.nan], [], [0.1, math.inf], "high"])
def test_bad_betas_name_the_parameter(betas):
    x, y = batch()
    with pytest.raises(ValueError, match="betas"):
        specref.audit(small_net(), x, y, betas)


def test_bad_batches_and_readings_are_refused():
    x, y = batch()
    with pytest.raises(ValueError, match=r"x must have shape \(B, 1, 12, 12\).*got \(3, 1, 8, 8\)"):
        specref.audit(small_net(), x[..., :8, :8], y, [0.1])
    with pytest.raises(ValueError, match="y must be 3 integer labels"):
        specref.audit(small_net(), x, y[:2], [0.1])
    with pytest.raises(ValueError, match="threshold must be one of"):
        specref.audit(small_net(), x, y, [0.1], threshold="sideways")
    with pytest.raises(ValueError, match="no Threshold layer"):
        specref.audit(nets.build("lenet", dtype=np.float64, input_shape=(1, 28, 28), num_classes=CLASSES),
                      np.zeros((2, 1, 28, 28)), np.array([0, 1]), [0.1])


def test_result_is_strict_json():
    x, y = batch()
    result = specref.audit(small_net(), x, y, [0.0, 1.0], fd_directions=1)
    assert json.loads(json.dumps(result, allow_nan=False)) == result


def test_cli_prints_json_and_writes_the_plot(tmp_path, capsys):
    png = tmp_path / "audit.png"
    assert cli.main(["audit", "--net", "spec-lenet", "--data", "digits", "--batch", "3", "--betas", "0,0.5",
                     "--threshold", "storage", "--fd-directions", "1", "--json", "--plot", str(png)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert [row["beta"] for row in result["betas"]] == [0.0, 0.5] and result["threshold"] == "storage"
    assert result["input"] == "digits test[0:3]"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_table(capsys):
    assert cli.main(["audit", "--net", "spec-lenet", "--data", "digits", "--batch", "3", "--betas", "0,0.5",
                     "--fd-directions", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "max rel err" in lines[1] and lines[2].split()[0] == "0" and lines[3].split()[0] == "0.5"
    assert "pass" in lines[2] and lines[-1].startswith("kept density per block")


@pytest.mark.parametrize("argv, message", [
    (["--betas", "0,-1"], "betas must be finite numbers >= 0, got -1.0"),
    (["--betas", "0,x"], "--betas must be comma-separated numbers"),
    (["--betas", ","], "at least one beta"),
    (["--batch", "0"], "--batch must be an integer >= 1, got 0"),
])
def test_cli_errors_are_one_line(argv, message, capsys):
    assert cli.main(["audit", "--net", "spec-lenet", "--data", "digits", *argv]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("specref audit: error:") and message in err


@pytest.mark.parametrize("with_config", [True, False])
def test_cli_refuses_a_checkpoint_of_another_net(with_config, tmp_path, capsys):
    other = nets.build("lenet", input_shape=(1, 32, 32), num_classes=10)
    path = tmp_path / "checkpoint.npz"
    config = {"config": np.array(json.dumps({"net": "lenet"}))} if with_config else {}
    np.savez(path, **config, **{f"param/{k}": v for k, v in other.parameters().items()})
    assert cli.main(["audit", "--net", "spec-lenet", "--data", "digits", "--checkpoint", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "spec-lenet" in err
    assert ("written for net 'lenet'" if with_config else "does not fit network") in err


def test_validation_script_is_a_wrapper_over_the_library(capsys):
    import importlib.util
    import pathlib

    path = pathlib.Path(__file__).resolve().parents[1] / "validation" / "gradient_audit.py"
    spec = importlib.util.spec_from_file_location("gradient_audit", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    assert script.main(["--batch", "3", "--betas", "0", "0.5", "--fd-directions", "0"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[2].split()[:2] == ["0", "|"] and "not run" in lines[3]


def test_training_records_the_audit_every_n_epochs_and_changes_nothing_else(tmp_path):
    from specref.data import load

    digits = load("digits").subset(64, 16)
    options = dict(epochs=2, batch_size=16, max_steps=2, beta=0.25, progress=False, memory_every=0)
    plain = specref.train("spec-lenet", digits, **options)
    audited = specref.train("spec-lenet", digits, audit_every=2, out=tmp_path, **options)
    assert "audit" not in plain[0] and "audit" not in plain[1] and "audit" not in audited[0]
    with open(tmp_path / "metrics.jsonl", encoding="utf-8") as f:
        logged = [json.loads(line) for line in f]
    assert [row["beta"] for row in logged[1]["audit"]] == [0.0, 0.25] and "audit" not in logged[0]
    at_zero, at_beta = logged[1]["audit"]
    assert at_zero["max_relative_error"] < 1e-12 and at_beta["max_relative_error"] > 0
    assert at_beta["finite_difference"] == "pass" and 0 < at_beta["density"] < 1
    for name, value in plain.net.parameters().items():       # the audit leaves training as it was
        np.testing.assert_array_equal(value, audited.net.parameters()[name], err_msg=name)


def test_training_audit_every_is_checked(tmp_path):
    from specref.data import load

    digits = load("digits").subset(32, 8)
    with pytest.raises(ValueError, match="audit_every must be an integer >= 0, got -1"):
        specref.train("spec-lenet", digits, epochs=1, audit_every=-1, progress=False)
    with pytest.raises(ValueError, match="audit_every=1 needs a net with a Threshold layer"):
        specref.train("lenet", digits, epochs=1, audit_every=1, progress=False)


def test_cli_train_audit_every(tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main(["train", "--net", "spec-lenet", "--data", "digits", "--epochs", "1", "--batch-size", "16",
                     "--max-steps", "1", "--limit-train", "32", "--limit-test", "8", "--memory-every", "0",
                     "--audit-every", "1", "--out", str(out)]) == 0
    with open(out / "metrics.jsonl", encoding="utf-8") as f:
        (entry,) = [json.loads(line) for line in f]
    assert [row["beta"] for row in entry["audit"]] == [0.0, nets.DEFAULT_BETA]


def test_a_gradient_that_vanished_counts_as_cosine_zero():
    x, y = batch()
    (row,) = specref.audit(small_net(), x, y, [100.0], threshold="storage", fd_directions=0)["betas"]
    assert row["params"]["0.weight"] == {"relative_error": 1.0, "cosine": 0.0, "sign_agreement": 0.0}
    assert row["min_cosine"] == 0.0 and row["max_relative_error"] == 1.0 and "finite_difference" not in row
