"""specref bench: the step benchmark's worker processes, its record, and the kernels comparison."""
import argparse
import json

from specref import bench


def bench_args(**overrides):
    values = dict(net="spec-lenet", batch=2, backend="numpy", beta=None, repeats=2, warmup=0, seed=0,
                  out=None, per_round=1, torch=False, json=True)
    values.update(overrides)
    return argparse.Namespace(**values)


def test_step_times_each_candidate_in_its_own_worker(tmp_path, capsys):
    out = tmp_path / "bench.jsonl"
    assert bench.step(bench_args(out=str(out))) == 0
    record = json.loads(out.read_text().splitlines()[-1])
    assert set(record["candidates"]) == {"spec-lenet", "lenet"}
    for stats in record["candidates"].values():
        assert stats["steps"] == 2 and 0 < stats["min_ms"] <= stats["median_ms"] <= stats["max_ms"]
        assert stats["threads"]["pool"] >= 1
    ratio = record["candidates"]["spec-lenet"]["median_ms"] / record["candidates"]["lenet"]["median_ms"]
    assert abs(record["ratios"]["spec_over_spatial"] - ratio) < 1e-3
    assert record["beta"] == 0.1 and len(record["load_before"]) == 3
    assert json.loads(capsys.readouterr().out.splitlines()[-1]) == record


def test_a_busy_machine_marks_the_ratios_unreliable():
    times = {"spec-lenet": [2.0, 3.0], "lenet": [1.0, 1.5]}
    info = {"spec-lenet": {}, "lenet": {}}
    quiet = bench._step_record("spec-lenet", "lenet", 2, 0.1, times, info, (0.2, 0, 0), (0.4, 0, 0), "numpy")
    assert quiet["reliable"] and quiet["note"] is None
    busy = bench._step_record("spec-lenet", "lenet", 2, 0.1, times, info, (0.2, 0, 0), (64.0, 0, 0), "numpy")
    assert not busy["reliable"] and "unreliable" in busy["note"]
    assert "UNRELIABLE" in bench._step_table(busy)


def test_kernels_compares_numba_with_numpy(capsys):
    assert bench.kernels(bench_args(batch=1, repeats=1, warmup=0, beta=0.5)) == 0
    printed = capsys.readouterr().out
    assert "threshold/numba" in printed and "threshold/numpy" in printed and "where_nonzero/numba" in printed
