"""Stage 1 of validation/gpu_check.py: the test suite, the GPU-relevant tests first.

Two pytest runs in subprocesses, each without ``-x`` (one failure unrelated to the GPU, say from
a newer NumPy or SciPy on the GPU machine, must not hide the rest), with a timeout per test and a
budget per run (``validation.pytest_budget``), the deterministic Hypothesis profile "gpu-check"
(few examples: every CuPy kernel compiles on its first call), and a hard subprocess timeout as
the last resort:

1. "gpu": ``tests/gpu`` and every test module with a test taking the ``xp`` fixture (the bodies
   that run on CuPy), :func:`gpu_test_paths`;
2. "rest": everything else, with what is left of the stage's budget.

``--tests`` replaces both with one run of the given targets. Each run's log is DIR/pytest-NAME.log.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
XP_TEST = re.compile(r"^\s*def test_\w+\([^)]*\bxp\b", re.MULTILINE)
GRACE_S = 30.0          # the subprocess is killed this long after its --session-budget


def gpu_test_paths(root=ROOT):
    """tests/gpu, then every tests/**/test_*.py with a test taking ``xp``, repository-relative."""
    paths = ["tests/gpu"]
    for folder, _, files in sorted(os.walk(os.path.join(root, "tests"))):
        rel = os.path.relpath(folder, root).replace(os.sep, "/")
        if rel == "tests/gpu" or rel.startswith("tests/gpu/"):
            continue
        for name in sorted(files):
            if name.startswith("test_") and name.endswith(".py"):
                with open(os.path.join(folder, name), encoding="utf-8") as f:
                    if XP_TEST.search(f.read()):
                        paths.append(f"{rel}/{name}")
    return paths


def stage_tests(dev, args, remaining, result, save):
    """Fill ``result`` run by run (saved after each); status "failed" when a run failed."""
    budget = max(20.0, min(args.tests_budget, remaining - 90))
    if args.tests:
        runs = [("selected", list(args.tests))]
    else:
        gpu = gpu_test_paths()
        runs = [("gpu", gpu), ("rest", ["tests", *(f"--ignore={path}" for path in gpu)])]
    started = time.perf_counter()
    result.update(budget_s=round(budget), test_timeout_s=args.test_timeout,
                  cupy_cases="ran" if dev.mode == "cupy" else f"skipped: {dev.reason}", runs={})
    for name, targets in runs:
        left = budget - (time.perf_counter() - started)
        if left < 10:
            result["runs"][name] = {"status": "skipped", "reason": f"stage budget spent ({budget:.0f} s)"}
            continue
        print(f"[gpu_check]   tests/{name}: {' '.join(targets)[:120]} (budget {left:.0f} s)", flush=True)
        result["runs"][name] = {"status": "running"}
        save()
        result["runs"][name] = run_pytest(name, targets, left, args.test_timeout, args.out)
        print(f"[gpu_check]   tests/{name}: {result['runs'][name]['summary']}", flush=True)
        save()
    ran = [r for r in result["runs"].values() if r["status"] != "skipped"]
    result["status"] = "ok" if ran and all(r["status"] == "ok" for r in ran) else "failed"


def run_pytest(name, targets, budget, test_timeout, out):
    log = os.path.join(out, f"pytest-{name}.log")
    command = [sys.executable, "-m", "pytest", "-q", "-rfE", "--durations=10", "-p", "no:cacheprovider",
               "-p", "validation.pytest_budget", f"--test-timeout={test_timeout:g}",
               f"--session-budget={budget:g}", *targets]
    env = dict(os.environ, SPECREF_IN_GPU_CHECK="1", SPECREF_HYPOTHESIS="gpu-check",
               PYTHONPATH=os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")])))
    t0 = time.perf_counter()
    with open(log, "w", encoding="utf-8") as f:
        proc = subprocess.Popen(command, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)
        try:
            returncode, killed = proc.wait(timeout=budget + GRACE_S), False
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)       # pytest and anything it started
            returncode, killed = proc.wait(), True
    with open(log, encoding="utf-8", errors="replace") as f:
        lines = f.read().splitlines()
    summary = next((line.strip("=! ") for line in reversed(lines)
                    if re.search(r"\d+ (passed|failed|errors?|skipped)", line)), None)
    counts = {k.rstrip("s") if k.startswith("error") else k: int(n)
              for n, k in re.findall(r"(\d+) (passed|failed|skipped|errors?|deselected)", summary or "")}
    stopped = next((line for line in lines if line.startswith("budget: stopped")), None)
    failures = [line for line in lines if line.startswith(("FAILED ", "ERROR "))]
    return {"status": "ok" if returncode == 0 else "failed", "command": " ".join(command[1:]),
            "returncode": returncode, "killed_after_s": round(budget + GRACE_S) if killed else None,
            "budget_stop": stopped, "seconds": round(time.perf_counter() - t0, 1),
            "summary": summary or f"no summary (returncode {returncode})", "counts": counts,
            "failures": failures[:40], "log": os.path.basename(log),
            "tail": lines[-15:] if returncode != 0 else []}
