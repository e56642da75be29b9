"""Training's guards: the first non-finite step is named; a Spec net that keeps almost nothing is
warned about once, on the command line and in metrics.jsonl, and a healthy one is not."""
import json
import subprocess
import sys
import warnings

import numpy as np
import pytest

from specref import nets
from specref.data import load
from specref.guards import FiniteGuard, SparsityWarning, TrainingDiverged
from specref.training import train

QUICK = dict(batch_size=16, max_steps=2, progress=False, memory_every=0)


@pytest.fixture(scope="module")
def digits():
    return load("digits").subset(64, 32)


def sparsity_messages(caught):
    return [str(w.message) for w in caught if issubclass(w.category, SparsityWarning)]


def test_a_net_that_keeps_almost_nothing_is_warned_once(digits, tmp_path):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = train("spec-lenet", digits, epochs=2, beta=1e3, out=tmp_path, **QUICK)
    messages = sparsity_messages(caught)
    assert any("block 1:Threshold kept 0.00%" in m and "beta=1000" in m for m in messages), messages
    assert any("block 5:Threshold" in m for m in messages)
    assert any("every gradient of layer 0:SpectralConv2d is exactly zero" in m for m in messages)
    epochs = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert epochs[0]["warnings"] == messages == history[0]["warnings"]
    assert epochs[1]["warnings"] == []           # the same findings again in epoch 2: not repeated


def test_a_healthy_net_is_not_warned(digits):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = train("spec-lenet", digits, epochs=1, **QUICK)
    assert history.summary["beta"] == nets.DEFAULT_BETA
    assert sparsity_messages(caught) == [] and history[0]["warnings"] == []


def test_the_warning_shows_on_the_command_line(tmp_path):
    done = subprocess.run([sys.executable, "-m", "specref", "train", "--net", "spec-lenet", "--data", "digits",
                           "--epochs", "1", "--beta", "1000", "--limit-train", "32", "--limit-test", "16",
                           "--batch-size", "16", "--max-steps", "1", "--memory-every", "0"],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "SparsityWarning" in done.stderr and "block 1:Threshold kept 0.00%" in done.stderr
    assert "epoch 1/1" not in done.stderr            # no progress bar: stderr is not a terminal


def test_deferred_guard_reports_the_first_bad_step():
    # The device path: flags stay unread until check(); run here on NumPy arrays.
    guard = FiniteGuard(["0.weight", "0.bias"], np, eager=False)
    good = {"0.weight": np.zeros(3), "0.bias": np.zeros(1)}
    guard.update(1, 1, np.float32(0.5), good)
    guard.check()
    guard.update(1, 2, np.float32(0.5), good)
    guard.update(1, 3, np.float32(0.5), {"0.weight": np.zeros(3), "0.bias": np.array([np.nan])})
    guard.update(1, 4, np.float32(np.inf), good)
    with pytest.raises(TrainingDiverged) as info:
        guard.check()
    assert (info.value.epoch, info.value.step, info.value.layer) == (1, 3, "0.bias")
