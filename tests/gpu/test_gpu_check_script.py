"""validation/gpu_check.py runs end to end: on NumPy with --allow-cpu --cpu (every stage's code
path, on LeNet at batch 2 so that it is quick), and, where no GPU is present, it exits cleanly
with every stage skipped and the reason (what to install) in the JSON. In process: a broken
spectral layer on the "device" side fails the parity stage; one failing measurement keeps its
siblings and the JSON; the test stage's plugin times out a test and stops at its budget."""
import json
import os
import subprocess
import sys

import pytest

from tests.conftest import CUPY_SKIP_REASON

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, "validation", "gpu_check.py")

pytestmark = pytest.mark.skipif(os.environ.get("SPECREF_IN_GPU_CHECK") == "1",
                                reason="running inside validation/gpu_check.py itself")


def run_check(out, *options):
    # Run as the GPU machine runs it: from the repository root (the script finds specref there).
    done = subprocess.run([sys.executable, SCRIPT, "--out", str(out), *options], cwd=ROOT,
                          capture_output=True, text=True, timeout=240)
    with open(os.path.join(out, "gpu_check.json"), encoding="utf-8") as f:
        return done, json.load(f)


def test_allow_cpu_runs_every_stage_on_numpy(tmp_path):
    done, report = run_check(tmp_path, "--allow-cpu", "--cpu", "--net", "lenet", "--batch", "2",
                             "--warmup", "1", "--repeats", "2", "--storages", "dense", "csr",
                             "--tests", "tests/gpu/test_kernels.py::test_real_or_integer_input_is_refused")
    assert done.returncode == 0, done.stdout + done.stderr
    stages = report["stages"]
    assert {name: s["status"] for name, s in stages.items()} == dict.fromkeys(
        ["tests", "parity", "timing", "memory"], "ok"), json.dumps(stages, indent=1)[:4000]
    assert report["machine"]["mode"] == "numpy" and "specref_numba_kernels" in report["machine"]
    run = stages["tests"]["runs"]["selected"]
    assert run["counts"].get("passed", 0) >= 1 and "--test-timeout=30" in run["command"]
    assert "-x" not in run["command"].split()
    parity = stages["parity"]
    assert parity["decided_on"] == "float64" and parity["init"] == "lsuv" and parity["problems"] == []
    for dtype in ("float32", "float64"):
        assert parity[dtype]["worst"]["relative_error"] == 0.0
        assert parity[dtype]["mask_flips"]["differing"] == 0
        # LSUV at beta 0.5: every block keeps entries, and drops some (the mask is exercised)
        densities = [pair[0] for pair in parity[dtype]["kept_density"].values()]
        assert len(densities) == 2 and all(0.2 < d < 0.95 for d in densities), densities
        assert parity[dtype]["zero_gradients"] == []
    assert stages["timing"]["median_ms"]["specref-spec-lenet"] > 0
    memory = stages["memory"]
    assert memory["spec_peak"]["dense"]["peak_bytes"] > 0 and memory["spec_peak"]["csr"]["peak_bytes"] > 0
    assert memory["spec_saved"]["dense"]["baseline_saved_bytes"] > 0
    assert memory["spec_saved"]["csr"]["baseline_saved_bytes"] is None   # baselines measured once
    try:
        import torch  # noqa: F401
    except ImportError:
        assert "pytorch" not in stages["memory"]
    else:
        assert set(stages["timing"]["median_ms"]) == {"specref-spec-lenet", "pytorch-lenet-tanh",
                                                      "pytorch-lenet-bn-relu"}
        assert stages["memory"]["pytorch"]["pytorch-lenet-tanh"]["saved_activation_bytes"] > 0
    out = done.stdout.strip().splitlines()
    assert [line.split()[0] for line in out[-4:]] == ["tests", "parity", "timing", "memory"]
    running = [line.split()[2] for line in out if line.startswith("[gpu_check] stage ") and ": running" in line]
    assert running == ["tests:", "parity:", "timing:", "memory:"]       # progress, stage by stage


@pytest.mark.skipif(CUPY_SKIP_REASON is None, reason="a GPU is present: the check would run for real")
def test_without_a_gpu_every_stage_is_skipped_with_the_reason(tmp_path):
    from specref_gpu import unavailable_reason

    done, report = run_check(tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    reason = unavailable_reason()
    assert report["machine"]["unavailable_reason"] == reason
    for stage in report["stages"].values():
        assert stage["status"] == "skipped" and reason in stage["reason"]
    assert reason in done.stdout and "Traceback" not in done.stderr


def _break_last_spectral_conv(monkeypatch, scale):
    """The device side's last SpectralConv2d returns its output times ``scale``."""
    from specref.layers.spectral_conv import SpectralConv2d
    from validation import gpu_parity

    copy_to_device = gpu_parity.device_copy

    def broken_copy(dev, template):
        net = copy_to_device(dev, template)
        layer = [layer for _, layer in net.named_layers() if isinstance(layer, SpectralConv2d)][-1]
        forward = layer.forward
        layer.forward = lambda x: (lambda y: y.like(y.values * scale))(forward(x))
        return net
    monkeypatch.setattr(gpu_parity, "device_copy", broken_copy)


@pytest.mark.parametrize("scale", [1 + 1e-6, 1.0])
def test_a_broken_spectral_layer_on_the_device_fails_parity(tmp_path, monkeypatch, capsys, scale):
    from validation import gpu_check

    _break_last_spectral_conv(monkeypatch, scale)
    status = gpu_check.main(["--out", str(tmp_path), "--cpu", "--net", "vgg11", "--stages", "parity"])
    with open(tmp_path / "gpu_check.json", encoding="utf-8") as f:
        parity = json.load(f)["stages"]["parity"]
    if scale == 1.0:        # the control: the same wrapper, no error
        assert status == 0 and parity["status"] == "ok", parity
        return
    assert status == 1 and parity["status"] == "failed"
    # the last block of Spec-VGG-11 is seen: every gradient before it and the logits differ
    assert parity["float64"]["worst"]["relative_error"] > 1e-8
    assert parity["float64"]["errors"]["logits"] > 1e-8 and parity["float64"]["errors"]["grad/0.weight"] > 1e-8
    assert "float64" in parity["problems"][0] and "failed" in capsys.readouterr().out


def test_one_failing_measurement_keeps_its_siblings(tmp_path, monkeypatch):
    from validation import gpu_check

    def fails_on_csr(dev, args, x, y, storage):
        if storage == "csr":
            raise RuntimeError("simulated device error")
        return {"peak_bytes": 1}
    monkeypatch.setattr(gpu_check, "spec_peak", fails_on_csr)
    monkeypatch.setattr(gpu_check.Device, "describe", lambda self: 1 / 0)   # the machine report fails too
    status = gpu_check.main(["--out", str(tmp_path), "--cpu", "--net", "lenet", "--stages", "memory",
                             "--storages", "dense", "csr"])
    with open(tmp_path / "gpu_check.json", encoding="utf-8") as f:
        report = json.load(f)
    memory = report["stages"]["memory"]
    assert status == 1 and memory["status"] == "failed"
    assert memory["spec_peak"]["dense"] == {"peak_bytes": 1}
    assert "simulated device error" in memory["spec_peak"]["csr"]["error"]
    assert memory["spec_saved"]["csr"]["saved_bytes"] > 0
    assert "ZeroDivisionError" in report["machine"]["error"]
    assert report["stages"]["parity"]["status"] == "skipped"


def test_gpu_relevant_tests_are_every_module_with_cupy_cases():
    from validation.gpu_tests import gpu_test_paths

    paths = gpu_test_paths()
    assert paths[0] == "tests/gpu"
    assert {"tests/test_storage.py", "tests/layers/test_conv2d.py", "tests/test_backend.py"} <= set(paths)
    assert "tests/test_train.py" not in paths and "tests/test_host_sync.py" not in paths


def test_budget_plugin_times_out_a_test_and_stops_at_the_budget(tmp_path):
    (tmp_path / "test_sample.py").write_text(
        "import time\ndef test_hangs():\n    time.sleep(30)\ndef test_a():\n    pass\n"
        "def test_b():\n    pass\n")
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p",
                           "validation.pytest_budget", "--test-timeout=1", "--session-budget=0.5",
                           "--rootdir", str(tmp_path), str(tmp_path / "test_sample.py")],
                          cwd=ROOT, capture_output=True, text=True, timeout=60,
                          env=dict(os.environ, PYTHONPATH=ROOT))
    assert "TestTimeout" in done.stdout and "1 failed" in done.stdout, done.stdout
    assert "budget: stopped after test_sample.py::test_hangs" in done.stdout
    assert "passed" not in done.stdout          # the budget was spent: test_a and test_b never started
