"""specref sweep: the table math on synthetic rows, the configuration rules, and tiny sweeps on a
two-worker loopback LocalCluster shared by the module (end to end with table and plot, a failing
cell, a rerun that trains nothing, a resumed cell, a dying worker retried once)."""
import csv
import json
import math
import os

import pytest

from specref import cli, sweep, sweep_table

DIGITS = ["--data", "digits", "--limit-train", "48", "--limit-test", "32", "--epochs", "1", "--batch-size", "16"]


def _row(net, seed, accuracy, saved, beta=None, status="ok"):
    baseline = not net.startswith("spec-")
    return {"name": f"{net}-{beta}-{seed}", "net": net, "base": net if baseline else net[len("spec-"):],
            "baseline": baseline, "beta": beta, "activation": None if baseline else "tanh",
            "storage": "dense" if baseline else "bitmask", "seed": seed, "status": status,
            "test_accuracy": accuracy, "saved_bytes_mean": saved, "saved_bytes_peak": saved * 2 if saved else None,
            "peak_bytes": None}


# --- the table on synthetic rows -------------------------------------------------------------
def test_relative_figures_and_seed_spread():
    rows = [_row("lenet", 0, 0.9, 1000), _row("lenet", 1, 0.8, 1000),
            _row("spec-lenet", 0, 0.85, 250, beta=0.5), _row("spec-lenet", 1, 0.7, 300, beta=0.5)]
    cells = {(r["net"], r["seed"]): r for r in sweep_table.cell_table(rows)}
    spec0, spec1 = cells["spec-lenet", 0], cells["spec-lenet", 1]
    assert spec0["relative_accuracy"] == pytest.approx(0.85 / 0.9)
    assert spec0["relative_error"] == pytest.approx(0.15 / 0.1)      # (1 - acc) / (1 - acc_base), same seed
    assert spec1["relative_error"] == pytest.approx(0.3 / 0.2)
    assert spec1["relative_saved_mean"] == pytest.approx(0.3) and spec1["relative_saved_peak"] == pytest.approx(0.3)
    assert spec0["relative_peak_bytes"] is None                      # not measured: no ratio
    assert cells["lenet", 1]["relative_error"] == pytest.approx(1.0)
    group = next(g for g in sweep_table.groups(sweep_table.cell_table(rows)) if g["beta"] == 0.5)
    assert group["seeds"] == 2 and group["failed"] == 0
    assert group["relative_saved_mean_mean"] == pytest.approx(0.275)
    assert group["relative_saved_mean_std"] == pytest.approx(math.sqrt(2 * 0.025 ** 2))   # sample std
    assert group["test_accuracy_min"] == 0.7 and group["test_accuracy_max"] == 0.85
    assert group["relative_error_std"] == pytest.approx(0.0, abs=1e-12)


def test_failed_or_perfect_baselines_give_no_ratio():
    rows = [_row("lenet", 0, None, None, status="error"), _row("spec-lenet", 0, 0.5, 100, beta=0.1),
            _row("lenet", 1, 1.0, 100), _row("spec-lenet", 1, 0.9, 50, beta=0.1),
            _row("spec-lenet", 2, None, None, beta=0.1, status="error")]
    cells = sweep_table.cell_table(rows)
    assert cells[1]["relative_accuracy"] is None and cells[1]["relative_saved_mean"] is None
    assert cells[3]["relative_error"] is None                        # 0.1 / 0: undefined
    assert cells[3]["relative_accuracy"] == pytest.approx(0.9)
    group = next(g for g in sweep_table.groups(cells) if g["beta"] == 0.1)
    assert (group["seeds"], group["failed"]) == (2, 1)
    assert group["relative_accuracy_std"] is None                    # one value only
    assert sweep_table.spread([None]) == dict.fromkeys(sweep_table.STATISTICS)


# --- configuration ----------------------------------------------------------------------------
def _config(**changes):
    options = {"nets": ["spec-lenet"], "betas": [0.1, 0.5], "data": "digits", "epochs": 1, **changes}
    return sweep.make_config(**options)


def test_cells_of_a_grid_and_their_names():
    cells = sweep.cells(_config(seeds=[0, 1], activations=["tanh", "scaled-tanh:4"])["grid"])
    names = [c.name for c in cells]
    assert names[:2] == ["lenet_seed0", "lenet_seed1"]                # the baselines, one per seed
    assert len(cells) == 2 + 2 * 2 * 2 and len(set(names)) == len(names)
    assert "spec-lenet_beta0.5_scaled-tanh-4_bitmask_seed1" in names
    assert all(c.storage == "dense" and c.beta is None for c in cells if c.baseline)


@pytest.mark.parametrize("changes, message", [
    ({"nets": ["lenet"]}, "not a Spec net"), ({"betas": [-0.1]}, "betas must be"),
    ({"storages": ["nosuch"]}, "nosuch"), ({"seeds": [1.5]}, "seeds must be an integer"),
    ({"epochs": 0}, "epochs must be"), ({"betas": []}, "at least one"), ({"data": None}, "data must be")])
def test_bad_configurations_are_refused(changes, message):
    with pytest.raises(ValueError, match=message):
        _config(**changes)


def test_an_out_refuses_another_sweep_unless_extended():
    saved = _config()
    assert sweep.reconcile(None, saved) == saved and sweep.reconcile(saved, _config()) == saved
    with pytest.raises(sweep.SweepConfigError, match=r"betas \[0.1, 0.5\] here, \[0.1, 0.25\] asked.*--extend"):
        sweep.reconcile(saved, _config(betas=[0.1, 0.25]))
    with pytest.raises(sweep.SweepConfigError, match="lr=0.02, not 0.1"):
        sweep.reconcile(saved, _config(lr=0.1), extend=True)              # a recipe change is never allowed
    with pytest.raises(sweep.SweepConfigError, match="would train less"):
        sweep.reconcile(_config(epochs=3), saved, extend=True)
    merged = sweep.reconcile(saved, _config(betas=[0.25], seeds=[1], epochs=2, data_dir="/elsewhere"), extend=True)
    assert merged["grid"]["betas"] == [0.1, 0.5, 0.25] and merged["grid"]["seeds"] == [0, 1]
    assert merged["recipe"]["epochs"] == 2 and merged["recipe"]["data_dir"] == "/elsewhere"


def test_command_line_values_are_checked_before_anything_runs(tmp_path, capsys):
    out = tmp_path / "never"
    assert cli.main(["sweep", "--nets", "spec-lenet", "--betas", "0.1,x", *DIGITS, "--out", str(out)]) == 1
    assert "--betas takes comma-separated float values, got '0.1,x'" in capsys.readouterr().err
    assert cli.main(["sweep", "--nets", "spec-lenet", "--betas", "0.1", "--beta", "0.2", *DIGITS,
                     "--out", str(out)]) == 1
    assert "give --betas or --beta, not both" in capsys.readouterr().err
    assert not out.exists()


# --- sweeps on a cluster ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def scheduler():
    with sweep.local_cluster(2) as cluster:
        yield cluster.scheduler_address


def _sweep(out, scheduler, *options):
    return cli.main(["sweep", "--nets", "spec-lenet", *DIGITS, "--out", str(out), "--scheduler", scheduler,
                     *options])


def _read_csv(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_workers_run_single_threaded(scheduler):
    from distributed import Client

    with Client(scheduler) as client:
        environs = client.run(lambda: {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "NUMBA_NUM_THREADS")})
    assert len(environs) == 2
    assert all(env == {"OMP_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1"} for env in environs.values())


def test_sweep_end_to_end_then_a_rerun_trains_nothing(scheduler, tmp_path, capsys):
    out = tmp_path / "sweep"
    assert _sweep(out, scheduler, "--betas", "0.1,0.5") == 0
    assert "trained 3 (0 failed)" in capsys.readouterr().out
    rows = {r["name"]: r for r in _read_csv(out / "table.csv")}
    assert set(rows) == {"lenet_seed0", "spec-lenet_beta0.1_tanh_bitmask_seed0",
                         "spec-lenet_beta0.5_tanh_bitmask_seed0"}
    assert all(r["status"] == "ok" for r in rows.values())
    summaries = {name: json.loads((out / name / "summary.json").read_text()) for name in rows}
    base = summaries["lenet_seed0"]
    for name in ("spec-lenet_beta0.1_tanh_bitmask_seed0", "spec-lenet_beta0.5_tanh_bitmask_seed0"):
        s, r = summaries[name], rows[name]
        assert s["storage"] == "bitmask" and s["beta"] == float(r["beta"])
        assert float(r["relative_error"]) == pytest.approx((1 - s["test_accuracy"]) / (1 - base["test_accuracy"]))
        assert float(r["relative_saved_mean"]) == pytest.approx(s["saved_bytes_mean"] / base["saved_bytes_mean"])
        assert 0 < float(r["density"]) < 1
    assert summaries["lenet_seed0"]["storage"] == "dense"
    table = json.loads((out / "table.json").read_text())
    assert table["sweep"]["grid"]["betas"] == [0.1, 0.5] and len(table["groups"]) == 3
    assert len(_read_csv(out / "table_mean.csv")) == 3
    assert cli.main(["plot", "--sweep", str(out)]) == 0
    assert (out / "fig1.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    stamps = {p: p.stat().st_mtime_ns for p in out.glob("*/*") if p.name in ("summary.json", "checkpoint.npz")}
    assert len(stamps) == 6
    capsys.readouterr()
    assert _sweep(out, scheduler, "--betas", "0.1,0.5") == 0
    assert "trained 0 (0 failed), skipped 3" in capsys.readouterr().out
    assert stamps == {p: p.stat().st_mtime_ns for p in stamps}

    assert _sweep(out, scheduler, "--betas", "0.1,0.25") == 1       # another grid in the same OUT
    assert "give --extend" in capsys.readouterr().err
    assert not (out / "spec-lenet_beta0.25_tanh_bitmask_seed0").exists()
    assert json.loads((out / "sweep.json").read_text())["grid"]["betas"] == [0.1, 0.5]

    # A cell interrupted after its checkpoint: the rerun resumes it, and only it.
    interrupted = out / "spec-lenet_beta0.5_tanh_bitmask_seed0"
    cell = json.loads((interrupted / "cell.json").read_text())
    (interrupted / "cell.json").write_text(json.dumps({**cell, "status": "running"}))
    config = json.loads((out / "sweep.json").read_text())
    result = sweep.run(config, str(out), scheduler=scheduler)
    assert result["trained"] == [interrupted.name] and not result["failed"]
    assert json.loads((interrupted / "summary.json").read_text())["resumed_from_epoch"] == 1


def test_a_failing_cell_is_recorded_and_the_rest_finish(scheduler, tmp_path, capsys):
    out = tmp_path / "sweep"
    # The activation name is checked by nets.build inside the cell, on the worker.
    assert _sweep(out, scheduler, "--betas", "0.1", "--activations", "tanh,no-such-activation") == 1
    captured = capsys.readouterr()
    assert "trained 3 (1 failed)" in captured.out
    rows = {r["name"]: r for r in _read_csv(out / "table.csv")}
    failed = rows.pop("spec-lenet_beta0.1_no-such-activation_bitmask_seed0")
    assert failed["status"] == "error" and "no-such-activation" in failed["error"] and failed["test_accuracy"] == ""
    assert all(r["status"] == "ok" and r["relative_error"] for r in rows.values())
    assert f"{failed['name']} failed: ValueError" in captured.err
    result = sweep.run(json.loads((out / "sweep.json").read_text()), str(out), scheduler=scheduler)
    assert result["trained"] == result["failed"] == [failed["name"]]  # failed cells are retried, done ones not


def test_a_cell_whose_worker_dies_is_retried_once_then_recorded(scheduler, tmp_path):
    out, attempts = tmp_path / "sweep", tmp_path / "attempts"

    def runner(cell, recipe, out_dir):         # pickled by value: runs on the workers
        if cell["beta"] == 0.5:
            with open(attempts, "a") as f:
                f.write("attempt\n")
            os._exit(1)
        return sweep.run_cell(cell, recipe, out_dir)

    config = _config(limit_train=48, limit_test=32, batch_size=16)
    result = sweep.run(config, str(out), scheduler=scheduler, runner=runner)
    assert result["failed"] == ["spec-lenet_beta0.5_tanh_bitmask_seed0"]
    assert attempts.read_text().count("attempt") == 2
    rows = {r["name"]: r for r in sweep_table.read(out)["cells"]}
    assert "KilledWorker" in rows["spec-lenet_beta0.5_tanh_bitmask_seed0"]["error"]
    assert rows["spec-lenet_beta0.1_tanh_bitmask_seed0"]["status"] == "ok"
