"""The GPU check of the CuPy backend: tests, NumPy/CuPy parity, step time and memory vs PyTorch.

Run from the repository root on a machine with one NVIDIA GPU (written for an H100 or H200; it
needs numpy, scipy, cupy, pytest, hypothesis and, for the comparison, torch; nothing from this
repository is installed, the script puts the repository root on sys.path itself):

    python validation/gpu_check.py --out DIR

Stages, each guarded (a failure is recorded and the next stage still runs), under ~5 minutes:

1. tests: ``python -m pytest -q -x tests`` in a subprocess with a timeout (DIR/pytest.log);
2. parity: one Spec-VGG-16 training step (beta 1.0, seed 0, batch 8, float32) on NumPy and on
   CuPy: logits, loss and every parameter gradient, each max|a - b| / max|a| <= 1e-4. Also
   reported: the ComplexTanh non-zero patterns that differ (entries within rounding of |Y| = beta
   flip between backends, which moves everything after them), and the same step in float64, where
   rounding is too small to flip anything, as a control of the code itself;
3. timing: the Spec-VGG-16 training step (forward, loss, backward, SGD with momentum) at batch
   128, 32x32, beta 1.0 on CuPy, and PyTorch's spatial VGG-16 (tanh without batch norm; ReLU
   with batch norm; cudnn.benchmark on) side by side, round-robin, timed with CUDA events
   (cupy.cuda.Event / torch.cuda.Event), medians after warm-up;
4. memory: saved-activation bytes of the Spec net (``specref.memory.measure``) and peak bytes
   of one step (a CuPy memory-pool hook, specref_gpu.memory.PoolPeak);
   PyTorch's saved activations (unique storages seen by saved_tensors_hooks, parameters apart)
   and peak (torch.cuda.max_memory_allocated);
5. DIR/gpu_check.json (rewritten after each stage) and a short table, printed last.

Exit status 1 when a stage failed (a parity error above tolerance included), else 0. Without a
GPU every stage is skipped with the reason (what to install). ``--allow-cpu`` then runs the
parity stage NumPy-vs-NumPy and the timing and memory stages on NumPy at batch 2 instead, to
exercise the code paths (the figures mean nothing); ``--cpu`` does that even where a GPU is.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import time
import traceback

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402

from validation.measure import host_peak, relative_error, to_json  # noqa: E402

PARITY_TOLERANCE = {"float32": 1e-4, "float64": 1e-9}
# PyTorch's spatial baselines: name suffix -> nets.build options.
TORCH_VARIANTS = {"tanh": dict(activation="tanh", batch_norm=False),
                  "bn-relu": dict(activation="relu", batch_norm=True)}


def parse(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True, help="directory for gpu_check.json and pytest.log")
    p.add_argument("--allow-cpu", action="store_true", help="where no GPU: run on NumPy at batch 2")
    p.add_argument("--cpu", action="store_true", help="run on NumPy even where a GPU is present")
    p.add_argument("--net", default="vgg16", help="architecture (default vgg16; lenet for quick runs)")
    p.add_argument("--tests", nargs="+", default=["tests"], help="pytest targets (default: tests)")
    p.add_argument("--skip-tests", action="store_true", help="skip stage 1")
    p.add_argument("--tests-timeout", type=float, default=150.0, help="seconds for stage 1")
    p.add_argument("--budget", type=float, default=285.0, help="seconds for the whole check")
    p.add_argument("--batch", type=int, help="timing and memory batch (128; 2 on NumPy)")
    p.add_argument("--parity-batch", type=int, help="parity batch (8; 2 on NumPy)")
    p.add_argument("--warmup", type=int, help="warm-up rounds (3; 1 on NumPy)")
    p.add_argument("--repeats", type=int, help="timed rounds (20; 3 on NumPy)")
    p.add_argument("--storages", nargs="+", default=["dense", "csr"], help="codecs for the ledger")
    return p.parse_args(argv)


class Device:
    """Where the check runs: mode "cupy", "numpy" (--allow-cpu / --cpu) or None (skipped)."""

    def __init__(self, args):
        from specref.backend import Backend
        from specref_gpu import unavailable_reason

        self.reason = "--cpu was given" if args.cpu else unavailable_reason()
        if self.reason is None:
            self.mode = "cupy"
        elif args.cpu or args.allow_cpu:
            self.mode = "numpy"
        else:
            self.mode = None
        self.backend = Backend(self.mode) if self.mode else None
        self.xp = self.backend.xp if self.backend else np
        torch = None
        if self.mode:
            try:
                import torch
            except Exception:  # missing, or its CUDA libraries are broken: no comparison
                torch = None
        self.torch = torch
        self.torch_device = "cuda" if self.mode == "cupy" and torch and torch.cuda.is_available() else "cpu"
        small = self.mode == "numpy"
        self.batch = args.batch or (2 if small else 128)
        self.parity_batch = args.parity_batch or (2 if small else 8)
        self.warmup = args.warmup or (1 if small else 3)
        self.repeats = args.repeats or (3 if small else 20)
        self.net = args.net
        self.spec_label = f"specref-spec-{args.net}"
        self.torch_nets = {f"pytorch-{args.net}-{k}": v for k, v in TORCH_VARIANTS.items()}

    def timer(self, kind):
        from validation.measure import timer

        return timer(kind, self.synchronize, cupy=self.xp if self.mode == "cupy" else None, torch=self.torch)

    def synchronize(self):
        if self.mode == "cupy":
            self.xp.cuda.Device().synchronize()
        if self.torch is not None and self.torch_device == "cuda":
            self.torch.cuda.synchronize()

    def describe(self):
        from specref import kernels
        from validation.measure import machine_info

        info = machine_info(self.xp if self.mode == "cupy" else None, self.torch, self.torch_device)
        return {"mode": self.mode, "unavailable_reason": self.reason, **info,
                "specref_numba_kernels": bool(kernels._numba())}


# --- stage 1: the test suite ------------------------------------------------------------------
def stage_tests(dev, args, remaining):
    if args.skip_tests:
        return {"status": "skipped", "reason": "--skip-tests"}
    timeout = max(20.0, min(args.tests_timeout, remaining - 90))
    log = os.path.join(args.out, "pytest.log")
    command = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *args.tests]
    env = dict(os.environ, SPECREF_IN_GPU_CHECK="1",
               PYTHONPATH=os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")])))
    with open(log, "w", encoding="utf-8") as f:
        proc = subprocess.Popen(command, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)
        try:
            returncode, timed_out = proc.wait(timeout=timeout), False
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)       # pytest and anything it started
            returncode, timed_out = proc.wait(), True
    with open(log, encoding="utf-8", errors="replace") as f:
        lines = f.read().splitlines()
    summary = next((line.strip("= ") for line in reversed(lines)
                    if re.search(r"\d+ (passed|failed|error)", line)), None)
    counts = {k: int(n) for n, k in re.findall(r"(\d+) (passed|failed|skipped|errors?|deselected)", summary or "")}
    return {"status": "ok" if returncode == 0 else "failed", "command": " ".join(command[1:]),
            "returncode": returncode, "timed_out": timed_out, "timeout_s": round(timeout), "summary": summary,
            "counts": counts, "cupy_cases": "ran" if dev.mode == "cupy" else f"skipped: {dev.reason}",
            "log": "pytest.log", "tail": lines[-12:] if returncode != 0 else []}


# --- stage 2: NumPy/CuPy parity of one Spec-VGG-16 training step ----------------------------------
def stage_parity(dev, args, remaining):
    runs = {dtype: parity_run(dev, np.dtype(dtype)) for dtype in ("float32", "float64")}
    ok = all(run["worst"]["relative_error"] <= PARITY_TOLERANCE[d] for d, run in runs.items())
    return {"status": "ok" if ok else "failed", "net": f"spec-{dev.net}", "beta": 1.0, "seed": 0,
            "batch": dev.parity_batch, "measure": "max|a - b| / max|a| per tensor",
            "reference": "numpy", "candidate": dev.mode, "tolerance": PARITY_TOLERANCE, **runs}


def parity_run(dev, dtype):
    from specref import nets

    x, y = inputs(dev, dev.parity_batch, dtype)[:2]
    host = nets.build(f"spec-{dev.net}", beta=1.0, dtype=dtype, seed=0)
    device = dev.backend.move(nets.build(f"spec-{dev.net}", beta=1.0, dtype=dtype, seed=0))
    ref = step_values(host, x, y)
    got = step_values(device, dev.backend.asarray(x), dev.backend.asarray(y))
    errors = {"logits": relative_error(got[0], ref[0]), "loss": abs(got[1] - ref[1]) / abs(ref[1])}
    errors.update({f"grad/{k}": relative_error(got[2][k], ref[2][k]) for k in ref[2]})
    name = max(errors, key=errors.get)
    return {"worst": {"name": name, "relative_error": errors[name]}, "loss": [ref[1], got[1]],
            "mask_flips": mask_flips(host, device), "errors": errors}


def step_values(net, x, y):
    from specref.layers.loss import SoftmaxCrossEntropy

    loss = SoftmaxCrossEntropy()
    logits = net.forward(x)
    value = float(loss.forward(logits, y))
    net.backward(loss.backward())
    return logits, value, net.gradients()


def mask_flips(host, device):
    """Entries whose ComplexTanh non-zero pattern (= the threshold's mask) differs."""
    from specref.backend import to_numpy
    from specref.layers.activation import ComplexTanh

    entries, by_layer = 0, {}
    for (name, a), (_, b) in zip(host.named_layers(), device.named_layers()):
        if isinstance(a, ComplexTanh):
            pa, pb = to_numpy(a.kept_pattern()), to_numpy(b.kept_pattern())
            entries += pa.size
            if (pa != pb).any():
                by_layer[name] = int((pa != pb).sum())
    return {"differing": sum(by_layer.values()), "entries": entries, "by_layer": by_layer}


# --- stage 3: step time, round-robin with device events -----------------------------------------
def stage_timing(dev, args, remaining):
    from validation.measure import round_robin, summary

    candidates, notes = training_steps(dev)
    result = {"status": "ok", "batch": dev.batch, "input": [3, 32, 32], "beta": 1.0, "warmup": dev.warmup,
              "repeats": dev.repeats, "clock": "cuda events" if dev.mode == "cupy" else "time.perf_counter",
              **summary(round_robin(candidates, dev.warmup, dev.repeats)), **notes}
    for name in dev.torch_nets:
        if name in result["median_ms"]:
            result[f"spec_over_{name}"] = result["median_ms"][dev.spec_label] / result["median_ms"][name]
    if dev.mode == "cupy":
        cache = dev.xp.fft.config.get_plan_cache()
        result["cufft_plan_cache"] = {"plans": cache.get_curr_size(), "max_plans": cache.get_size(),
                                      "bytes": cache.get_curr_memsize()}
    return result


def training_steps(dev):
    """{name: (run, measure)} for the Spec net and the PyTorch nets, and notes."""
    from specref import nets
    from specref.layers.loss import SoftmaxCrossEntropy
    from specref.optim import SGD

    x_host, y_host, x, y = inputs(dev, dev.batch)
    spec = dev.backend.move(nets.build(f"spec-{dev.net}", beta=1.0, seed=0))
    optimizer, loss = SGD(spec.parameters(), lr=1e-3, momentum=0.95), SoftmaxCrossEntropy()

    def spec_step():
        loss.forward(spec.forward(x), y)
        spec.backward(loss.backward())
        optimizer.step(spec.gradients())

    steps = {dev.spec_label: (spec_step, dev.timer("cupy" if dev.mode == "cupy" else "host"))}
    notes = {"spec_backend": dev.mode}
    if dev.torch is None:
        return steps, {**notes, "pytorch": "torch is not importable: no PyTorch comparison"}
    dev.torch.backends.cudnn.benchmark = True
    notes["pytorch"] = {"device": dev.torch_device, "cudnn_benchmark": True}
    for name, options in dev.torch_nets.items():
        run = torch_step(dev, nets.build(dev.net, seed=0, **options), x_host, y_host)[0]
        steps[name] = (run, dev.timer("torch" if dev.torch_device == "cuda" else "host"))
    return steps, notes


def torch_step(dev, spatial_net, x_host, y_host):
    """(run one SGD step, model, x, y) of ``spatial_net`` converted to PyTorch (same weights)."""
    from specref.torch_bridge import to_torch

    torch = dev.torch
    model = to_torch(spatial_net).to(dev.torch_device).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.95)
    x = torch.from_numpy(x_host).to(dev.torch_device)
    y = torch.from_numpy(y_host).to(dev.torch_device)

    def run():
        optimizer.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
    return run, model, x, y


# --- stage 4: memory ------------------------------------------------------------------------
def stage_memory(dev, args, remaining):
    from specref import memory, nets

    result = {"status": "ok", "batch": dev.batch}
    x_host, y_host, x, y = inputs(dev, dev.batch)
    result["spec_saved"] = {}
    for storage in args.storages:
        net = dev.backend.move(nets.build(f"spec-{dev.net}", beta=1.0, seed=0))
        try:
            result["spec_saved"][storage] = to_json(memory.measure(net, x, y, storage=storage))
        except Exception as exc:  # record it; the peak and PyTorch figures still come
            result["spec_saved"][storage] = {"error": f"{type(exc).__name__}: {exc}"}
    result["spec_peak"] = {storage: spec_peak(dev, x, y, storage) for storage in args.storages}
    if dev.torch is not None:
        result["pytorch"] = {name: torch_memory(dev, nets.build(dev.net, seed=0, **options), x_host, y_host)
                             for name, options in dev.torch_nets.items()}
        result["spec_saved_over_pytorch"] = {
            storage: {name: saved["saved_bytes"] / torch_result["saved_activation_bytes"]
                      for name, torch_result in result["pytorch"].items()}
            for storage, saved in result["spec_saved"].items() if isinstance(saved.get("saved_bytes"), int)}
    return result


def spec_peak(dev, x, y, storage):
    """Peak bytes of one Spec-net training step (after a warm-up step) with ``storage``."""
    from specref import nets
    from specref.storage import set_storage

    net = dev.backend.move(nets.build(f"spec-{dev.net}", beta=1.0, seed=0))
    set_storage(net, storage)
    step_values(net, x, y)
    net.clear_cache()
    if dev.mode == "cupy":
        from specref_gpu.memory import PoolPeak

        dev.synchronize()
        with PoolPeak() as usage:
            step_values(net, x, y)
            dev.synchronize()
        return usage.as_dict()
    return host_peak(lambda: step_values(net, x, y))


def torch_memory(dev, spatial_net, x_host, y_host):
    from validation.measure import torch_memory as measure

    run, model, x, y = torch_step(dev, spatial_net, x_host, y_host)
    return measure(dev.torch, model, run, x, y)


# --- helpers ----------------------------------------------------------------------------------
def inputs(dev, batch, dtype=np.float32):
    """(x, y on the host, x, y on the device): a seeded random batch of 32 x 32 RGB images."""
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((batch, 3, 32, 32)).astype(dtype), rng.integers(0, 10, batch)
    return x, y, dev.backend.asarray(x), dev.backend.asarray(y)


def headline(name, stage, dev):
    """One line of figures for the table."""
    if stage.get("status") == "skipped" or "error" in stage:
        return stage.get("reason") or stage.get("error", "")
    if name == "tests":
        return stage.get("summary") or f"returncode {stage.get('returncode')}"
    if name == "parity":
        f32, f64 = stage["float32"], stage["float64"]
        return (f"float32 worst {f32['worst']['relative_error']:.2e} ({f32['worst']['name']}), "
                f"{f32['mask_flips']['differing']} mask flips; float64 {f64['worst']['relative_error']:.1e}")
    if name == "timing":
        parts = [f"{n} {ms:.1f} ms" for n, ms in stage["median_ms"].items()]
        ratio = stage.get(f"spec_over_{next(iter(dev.torch_nets))}")
        return "; ".join(parts) + (f"; spec/pytorch-tanh {ratio:.2f}x" if ratio else "")
    if name == "memory":
        mib = lambda n: f"{n / 2**20:.0f} MiB"  # noqa: E731
        parts = [f"spec saved[{s}] {mib(v['saved_bytes'])}" for s, v in stage["spec_saved"].items()
                 if isinstance(v, dict) and "saved_bytes" in v]
        parts += [f"spec peak[{s}] {mib(p.get('peak_bytes', 0))}" for s, p in stage["spec_peak"].items()]
        parts += [f"{n} saved {mib(m['saved_activation_bytes'])}" for n, m in (stage.get("pytorch") or {}).items()]
        return "; ".join(parts)
    return ""


STAGES = (("tests", stage_tests, 0), ("parity", stage_parity, 20), ("timing", stage_timing, 30),
          ("memory", stage_memory, 20))


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse(argv)
    os.makedirs(args.out, exist_ok=True)
    started = time.perf_counter()
    report = {"command": "python validation/gpu_check.py " + " ".join(argv),
              "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "stages": {}}
    dev = Device(args)
    report["machine"] = dev.describe()
    path = os.path.join(args.out, "gpu_check.json")
    for name, stage, needs_s in STAGES:
        remaining = args.budget - (time.perf_counter() - started)
        t0 = time.perf_counter()
        if dev.mode is None:
            result = {"status": "skipped", "reason": f"no GPU backend: {dev.reason}"}
        elif remaining < needs_s:
            result = {"status": "skipped", "reason": f"out of time ({remaining:.0f} s of --budget left)"}
        else:
            try:
                result = stage(dev, args, remaining)
            except Exception as exc:  # record it; the next stage still runs
                result = {"status": "failed", "error": f"{type(exc).__name__}: {exc}",
                          "traceback": traceback.format_exc().splitlines()[-15:]}
        result["seconds"] = round(time.perf_counter() - t0, 2)
        report["stages"][name] = to_json(result)
        report["seconds"] = round(time.perf_counter() - started, 1)
        with open(path + ".tmp", "w", encoding="utf-8") as f:
            json.dump(report, f, indent=2)
        os.replace(path + ".tmp", path)
    where = report["machine"].get("gpu") or f"{dev.mode or 'no GPU'}: {dev.reason}"
    print(f"\nspecref GPU check ({where}) -> {path}")
    for name, result in report["stages"].items():
        line = "no GPU backend (see above)" if dev.mode is None else headline(name, result, dev)
        print(f"  {name:7s} {result['status']:8s} {result['seconds']:7.1f} s  {line}")
    return 1 if any(r["status"] == "failed" for r in report["stages"].values()) else 0


if __name__ == "__main__":
    sys.exit(main())
