"""validation/gpu_check.py runs end to end: on NumPy with --allow-cpu --cpu (every stage's code
path, on LeNet at batch 2 so that it is quick), and, where no GPU is present, it exits cleanly
with every stage skipped and the reason (what to install) in the JSON."""
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
                             "--warmup", "1", "--repeats", "2", "--storages", "dense",
                             "--tests", "tests/gpu/test_kernels.py::test_real_or_integer_input_is_refused")
    assert done.returncode == 0, done.stdout + done.stderr
    stages = report["stages"]
    assert {name: s["status"] for name, s in stages.items()} == dict.fromkeys(
        ["tests", "parity", "timing", "memory"], "ok"), json.dumps(stages, indent=1)[:4000]
    assert report["machine"]["mode"] == "numpy"
    assert stages["tests"]["counts"].get("passed", 0) >= 1
    for dtype in ("float32", "float64"):
        assert stages["parity"][dtype]["worst"]["relative_error"] == 0.0
        assert stages["parity"][dtype]["mask_flips"]["differing"] == 0
    assert stages["timing"]["median_ms"]["specref-spec-lenet"] > 0
    assert stages["memory"]["spec_peak"]["dense"]["peak_bytes"] > 0
    try:
        import torch  # noqa: F401
    except ImportError:
        assert "pytorch" not in stages["memory"]
    else:
        assert set(stages["timing"]["median_ms"]) == {"specref-spec-lenet", "pytorch-lenet-tanh",
                                                      "pytorch-lenet-bn-relu"}
        assert stages["memory"]["pytorch"]["pytorch-lenet-tanh"]["saved_activation_bytes"] > 0
    table = done.stdout.strip().splitlines()[-4:]
    assert [line.split()[0] for line in table] == ["tests", "parity", "timing", "memory"]


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
