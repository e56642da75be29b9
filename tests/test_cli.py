import json
import subprocess
import sys

import numpy as np
import pytest

import specref
from specref import cli
from specref.layers.base import Layer
from specref.layers.dense import Dense
from specref.layers.flatten import Flatten
from specref.layers.sequential import Sequential
from specref.layers.spatial_activation import Tanh

LIMITS = ["--limit-train", "200", "--limit-test", "100", "--batch-size", "32", "--no-progress"]


class BetaLayer(Layer):
    def __init__(self, beta):
        super().__init__()
        self.beta = beta

    def forward(self, x):
        return x

    def backward(self, dy):
        return dy


@pytest.fixture
def registry(monkeypatch):
    """Tiny nets behind ``specref.nets.build`` (the real registry's nets are too slow here)."""
    built = []

    def build(name, seed=0, input_shape=None, num_classes=None, beta=1.0, **kwargs):
        rng = np.random.default_rng(seed)
        extra = [BetaLayer(beta)] if name.startswith("spec-") else []
        net = Sequential([Flatten(), Dense(int(np.prod(input_shape)), 16, rng=rng), Tanh(), *extra,
                          Dense(16, num_classes, rng=rng)])
        net.name = name
        if kwargs.get("storage"):
            from specref.storage import set_storage

            set_storage(net, kwargs["storage"])
        built.append(name)
        return net

    import specref.nets as nets

    monkeypatch.setattr(nets, "build", build)
    return built


def read_metrics(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_train_then_resume(registry, tmp_path, capsys):
    run = tmp_path / "run"
    args = ["train", "--net", "spec-tiny", "--data", "digits", "--beta", "0.5", "--out", str(run), *LIMITS]
    assert cli.main([*args, "--epochs", "1"]) == 0
    out = capsys.readouterr().out
    assert "spec-tiny on digits: test accuracy" in out
    summary = json.loads((run / "summary.json").read_text())
    assert summary["beta"] == 0.5 and summary["num_train"] == 200 and summary["num_test"] == 100
    assert cli.main([*args, "--epochs", "2", "--resume"]) == 0
    assert [e["epoch"] for e in read_metrics(run)] == [1, 2]
    assert registry == ["spec-tiny", "spec-tiny"]


def test_train_errors_are_one_line(registry, tmp_path, capsys):
    code = cli.main(["train", "--net", "tiny", "--data", "digits", "--epochs", "1", "--out",
                     str(tmp_path), "--resume", *LIMITS])
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith("specref train: error:") and "checkpoint" in err and "Traceback" not in err
    assert cli.main(["train", "--net", "tiny", "--data", "digits", "--epochs", "0", *LIMITS]) == 1
    assert "epochs" in capsys.readouterr().err
    assert cli.main(["train", "--net", "tiny", "--data", "nosuchdata", "--epochs", "1"]) == 1
    assert "nosuchdata" in capsys.readouterr().err


def test_activation_reaches_the_spec_net_only(registry, monkeypatch, tmp_path, capsys):
    import specref.nets as nets

    fake, seen = nets.build, []

    def build(name, **kwargs):
        seen.append((name, kwargs.get("activation")))
        return fake(name, **kwargs)

    monkeypatch.setattr(nets, "build", build)
    assert cli.main(["compare", "--net", "lenet", "--epochs", "1", "--activation", "softsign",
                     "--out", str(tmp_path / "cmp"), *LIMITS]) == 0
    assert seen[:2] == [("lenet", None), ("spec-lenet", "softsign")]     # the spatial net keeps tanh
    assert cli.main(["train", "--net", "spec-lenet", "--data", "digits", "--epochs", "1",
                     "--activation", "scaled-tanh:4", *LIMITS]) == 0
    assert seen[-1] == ("spec-lenet", "scaled-tanh:4")
    assert cli.main(["train", "--net", "spec-lenet", "--data", "digits", "--epochs", "1", *LIMITS]) == 0
    assert seen[-1] == ("spec-lenet", None)                              # the registry's default


def test_bad_activation_is_a_one_line_error(capsys):
    assert cli.main(["train", "--net", "spec-lenet", "--data", "digits", "--epochs", "1",
                     "--activation", "relu", *LIMITS]) == 1
    err = capsys.readouterr().err
    assert "not odd" in err and "modrelu" in err and "Traceback" not in err


def test_usage_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["train", "--net", "lenet"])  # --data and --epochs are required
    assert info.value.code == 2
    with pytest.raises(SystemExit) as info:
        cli.main(["plot", "somewhere", "--bogus"])
    assert info.value.code == 2
    assert cli.main([]) == 2


def test_compare_trains_both_forms_and_prints_a_table(registry, tmp_path, capsys):
    out = tmp_path / "cmp"
    assert cli.main(["compare", "--net", "spec-lenet", "--epochs", "2", "--out", str(out), *LIMITS]) == 0
    assert registry == ["lenet", "spec-lenet"]
    for name in ("lenet", "spec-lenet"):
        assert len(read_metrics(out / name)) == 2
        assert (out / name / "summary.json").exists() and (out / name / "checkpoint.npz").exists()
    table = capsys.readouterr().out.splitlines()
    header = next(line for line in table if line.startswith("net"))
    assert "test accuracy" in header and "step ms" in header and "saved MiB" in header
    rows = {line.split()[0]: line.split() for line in table if line.split() and line.split()[0] in registry}
    assert set(rows) == {"lenet", "spec-lenet"}
    for name, row in rows.items():
        summary = json.loads((out / name / "summary.json").read_text())
        assert float(row[2]) == pytest.approx(summary["test_accuracy"], abs=1e-4)
        assert float(row[4]) > 0 and float(row[-1]) > 0          # saved and peak MiB
    saved = json.loads((out / "compare.json").read_text())
    assert [r["net"] for r in saved["rows"]] == ["lenet", "spec-lenet"]


def test_compare_defaults():
    args = cli._parser().parse_args(["compare"])
    assert (args.net, args.data, args.out) == ("lenet", "digits", "runs/compare")
    assert args.epochs == cli.COMPARE_EPOCHS and args.batch_size == cli.COMPARE_BATCH_SIZE
    assert args.beta is None and args.progress is None    # the registry's beta; bars only on a terminal


def test_beta_defaults_are_the_registrys(capsys):
    assert specref.nets.DEFAULT_BETA == 0.1
    for command in (["train", "--net", "x", "--data", "digits", "--epochs", "1"], ["compare"], ["memory"]):
        assert cli._parser().parse_args(command).beta is None
    with pytest.raises(SystemExit):
        cli.main(["train", "--help"])
    assert "default 0.1" in " ".join(capsys.readouterr().out.split())


def test_compare_memory_column_uses_specref_memory(registry, monkeypatch, tmp_path, capsys):
    fake = lambda net, x, y, **kw: {"saved_bytes": 3 * 2**20 if hasattr(net[3], "beta") else 2**20}  # noqa: E731
    monkeypatch.setattr(cli.memory, "measure", fake)
    assert cli.main(["compare", "--epochs", "1", "--out", str(tmp_path), *LIMITS]) == 0
    rows = {line.split()[0]: line.split() for line in capsys.readouterr().out.splitlines() if line.strip()}
    # columns: net, storage, test accuracy, step ms, saved MiB, relative, peak MiB
    assert rows["lenet"][4] == "1.00" and rows["spec-lenet"][4] == "3.00"
    assert rows["spec-lenet"][1] == "bitmask" and rows["spec-lenet"][5] == "3.000"


def test_plot_writes_png(registry, tmp_path, capsys):
    runs = []
    for name in ("tiny", "spec-tiny"):
        runs.append(tmp_path / name)
        assert cli.main(["train", "--net", name, "--data", "digits", "--epochs", "2",
                         "--out", str(runs[-1]), *LIMITS]) == 0
    assert cli.main(["plot", *map(str, runs)]) == 0
    png = (runs[0] / "curves.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 5000
    target = tmp_path / "figs" / "both.png"
    assert cli.main(["plot", *map(str, runs), "--output", str(target)]) == 0
    assert target.read_bytes().startswith(b"\x89PNG")
    assert f"wrote {target}" in capsys.readouterr().out


def test_plot_without_metrics_errors(tmp_path, capsys):
    assert cli.main(["plot", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "metrics.jsonl" in err and str(tmp_path) in err
    assert not (tmp_path / "curves.png").exists()


def test_bench_dispatches_to_specref_bench(monkeypatch):
    seen = {}
    monkeypatch.setattr(cli.bench, "step", lambda args: seen.setdefault("step", args) and 0)
    monkeypatch.setattr(cli.bench, "layers", lambda args: seen.setdefault("layers", args) and 0)
    assert cli.main(["bench", "step", "--net", "spec-vgg16", "--batch", "32", "--no-torch"]) == 0
    assert seen["step"].net == "spec-vgg16" and seen["step"].batch == 32
    assert seen["step"].torch is False
    assert cli.main(["bench", "layers"]) == 0
    assert seen["layers"].bench_command == "layers"


def test_python_dash_m_entry_point():
    result = subprocess.run([sys.executable, "-m", "specref", "--help"], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0
    for command in ("train", "compare", "plot", "bench"):
        assert command in result.stdout
