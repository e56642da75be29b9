"""validation/sweep_markdown.py: README's sweep table from a table written by specref.sweep_table."""
import importlib.util
import os

from specref import sweep_table

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _script():
    spec = importlib.util.spec_from_file_location("sweep_markdown", os.path.join(ROOT, "validation", "sweep_markdown.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _row(net, seed, accuracy, saved, beta=None):
    baseline = not net.startswith("spec-")
    return {"name": f"{net}-{beta}-{seed}", "net": net, "base": "lenet", "baseline": baseline, "beta": beta,
            "activation": None if baseline else "tanh", "storage": "dense" if baseline else "bitmask",
            "seed": seed, "status": "ok", "test_accuracy": accuracy, "saved_bytes_mean": saved,
            "saved_bytes_peak": saved, "peak_bytes": None}


def test_cells_are_seed_means_with_their_range_and_the_memory_ratio(tmp_path):
    rows = [_row("lenet", 0, 0.5, 100.0), _row("lenet", 1, 0.4, 200.0),
            _row("spec-lenet", 0, 0.4, 50.0, beta=0.5), _row("spec-lenet", 1, 0.4, 50.0, beta=0.5),
            _row("spec-lenet", 0, 0.25, 40.0, beta=1.0)]
    sweep_table.write(str(tmp_path), {}, rows)
    lines = _script().markdown(str(tmp_path)).splitlines()
    assert lines[0] == "| net | activation | beta 0.5 | beta 1 |"
    # beta 0.5: relative accuracy 0.4/0.5 = 0.8 and 0.4/0.4 = 1.0 (mean 0.9); memory 0.5 and 0.25
    # (mean 0.375, printed 0.38: half to even); beta 1: one seed, 0.25/0.5 and 40/100
    assert lines[2] == "| spec-lenet | tanh | 0.900 [0.800, 1.000] / 0.38 | 0.500 / 0.40 |"
