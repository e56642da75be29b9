"""The GPU check of the CuPy backend: tests, NumPy/CuPy parity, step time and memory vs PyTorch.

Run from the repository root on a machine with one NVIDIA GPU (written for an H100 or H200; it
needs numpy, scipy, cupy, pytest, hypothesis and, for the comparison, torch; nothing from this
repository is installed, the script puts the repository root on sys.path itself):

    python validation/gpu_check.py --out DIR

Stages, each guarded (a failure is recorded and the next stage still runs), under ~5 minutes:

1. tests (validation/gpu_tests.py): the GPU-relevant tests first (tests/gpu and every module
   with CuPy cases), then the rest, without -x, a timeout per test and a budget per stage
   (DIR/pytest-gpu.log, DIR/pytest-rest.log);
2. parity (validation/gpu_parity.py): one Spec-VGG-16 training step (LSUV-scaled weights, beta
   0.5, batch 8) on NumPy and on CuPy: logits, loss, every gradient and the kept density of every
   block; decided on float64 (1e-9), float32 reported with its flipped mask entries;
3. timing: the training step (forward, loss, backward, SGD with momentum) of the same LSUV net
   at batch 128, 32x32 on CuPy, and PyTorch's spatial VGG-16 (tanh without batch norm; ReLU with
   batch norm; cudnn.benchmark on) side by side, round-robin, CUDA events, medians after warm-up;
4. memory: saved-activation bytes of the Spec net per storage (``specref.memory.measure``; the
   spatial baselines once) and the peak of one step (a CuPy memory-pool hook); PyTorch's saved
   activations and peak.

DIR/gpu_check.json is written before anything runs and again whenever a figure is added: a stage
is marked "running" before it starts, each measurement is guarded on its own (one exception
drops no sibling), and progress lines are printed (flushed) as it goes, so a killed run still
says where it was and keeps what it measured. A short table is printed last.

Exit status 1 when a stage failed, else 0. Without a GPU every stage is skipped with the reason
(what to install). ``--allow-cpu`` then runs every stage on NumPy at batch 2 instead (parity is
NumPy against NumPy), exercising every code path of the GPU run (the figures mean nothing);
``--cpu`` does that even where a GPU is. ``--stages`` runs a subset.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
import traceback

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402

from validation.gpu_parity import host_batch, lsuv_template, stage_parity, step_values  # noqa: E402
from validation.gpu_tests import stage_tests  # noqa: E402
from validation.measure import host_peak, to_json  # noqa: E402

# PyTorch's spatial baselines: name suffix -> nets.build options.
TORCH_VARIANTS = {"tanh": dict(activation="tanh", batch_norm=False),
                  "bn-relu": dict(activation="relu", batch_norm=True)}
STAGE_NAMES = ("tests", "parity", "timing", "memory")


def parse(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True, help="directory for gpu_check.json and the pytest logs")
    p.add_argument("--allow-cpu", action="store_true", help="where no GPU: run on NumPy at batch 2")
    p.add_argument("--cpu", action="store_true", help="run on NumPy even where a GPU is present")
    p.add_argument("--net", default="vgg16", help="architecture (default vgg16; lenet for quick runs)")
    p.add_argument("--beta", type=float, default=0.5,
                   help="threshold of the Spec net (LSUV-scaled; 0.5 keeps about 70%% of every block)")
    p.add_argument("--stages", nargs="+", choices=STAGE_NAMES, default=list(STAGE_NAMES), help="stages to run")
    p.add_argument("--tests", nargs="+", help="pytest targets instead of the GPU-relevant tests, then the rest")
    p.add_argument("--skip-tests", action="store_true", help="skip stage 1")
    p.add_argument("--tests-budget", type=float, default=150.0, help="seconds for stage 1")
    p.add_argument("--test-timeout", type=float, default=30.0, help="seconds per test in stage 1")
    p.add_argument("--budget", type=float, default=285.0, help="seconds for the whole check")
    p.add_argument("--batch", type=int, help="timing and memory batch (128; 2 on NumPy)")
    p.add_argument("--parity-batch", type=int, help="parity batch (8; 2 on NumPy)")
    p.add_argument("--warmup", type=int, help="warm-up rounds (3; 1 on NumPy)")
    p.add_argument("--repeats", type=int, help="timed rounds (20; 3 on NumPy)")
    p.add_argument("--storages", nargs="+", default=["dense", "csr"], help="codecs for the ledger")
    return p.parse_args(argv)


def progress(text):
    print(f"[gpu_check] {text}", flush=True)


def error_of(exc):
    return {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc().splitlines()[-15:]}


class Report:
    """DIR/gpu_check.json, rewritten (atomically) by every :meth:`save`."""

    def __init__(self, path, data):
        self.path, self.data = path, data

    def save(self):
        with open(self.path + ".tmp", "w", encoding="utf-8") as f:
            json.dump(to_json(self.data), f, indent=2)
        os.replace(self.path + ".tmp", self.path)


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
        self.templates = {}         # LSUV-scaled host nets, by (dtype, beta): validation.gpu_parity

    def timer(self, kind):
        from validation.measure import timer

        return timer(kind, self.synchronize, cupy=self.xp if self.mode == "cupy" else None, torch=self.torch)

    def synchronize(self):
        if self.mode == "cupy":
            self.xp.cuda.Device().synchronize()
        if self.torch is not None and self.torch_device == "cuda":
            self.torch.cuda.synchronize()

    def describe(self):
        """Versions and the GPU; each part guarded (numba against a newer NumPy, PyTorch's TF32
        getters may raise): a failure becomes that entry's text."""
        from validation.measure import machine_info

        info = {"mode": self.mode, "unavailable_reason": self.reason}
        try:
            info.update(machine_info(self.xp if self.mode == "cupy" else None, self.torch, self.torch_device))
        except Exception as exc:  # noqa: BLE001
            info["machine_info_error"] = f"{type(exc).__name__}: {exc}"
        try:
            from specref import kernels

            info["specref_numba_kernels"] = bool(kernels._numba())
        except Exception as exc:  # noqa: BLE001
            info["specref_numba_kernels"] = f"unavailable: {type(exc).__name__}: {exc}"
        return info

    def spec_net(self, beta, dtype=np.float32):
        """The LSUV-scaled Spec net of the parity stage, a fresh copy on the device."""
        from validation.gpu_parity import device_copy

        return device_copy(self, lsuv_template(self, dtype, beta))


# --- stage 3: step time, round-robin with device events -----------------------------------------
def stage_timing(dev, args, remaining, result, save):
    from validation.measure import round_robin, summary

    candidates, notes = training_steps(dev, args, result)
    result.update(batch=dev.batch, input=[3, 32, 32], beta=args.beta, init="lsuv", warmup=dev.warmup,
                  repeats=dev.repeats, clock="cuda events" if dev.mode == "cupy" else "time.perf_counter",
                  **notes)
    save()
    progress(f"  timing {', '.join(candidates)} ...")
    errors = {}
    result.update(summary(round_robin(candidates, dev.warmup, dev.repeats, errors=errors)))
    result["errors"] = {**result.get("errors", {}), **errors}
    for name in dev.torch_nets:
        if name in result["median_ms"] and dev.spec_label in result["median_ms"]:
            result[f"spec_over_{name}"] = result["median_ms"][dev.spec_label] / result["median_ms"][name]
    if dev.mode == "cupy":
        try:
            cache = dev.xp.fft.config.get_plan_cache()
            result["cufft_plan_cache"] = {"plans": cache.get_curr_size(), "max_plans": cache.get_size(),
                                          "bytes": cache.get_curr_memsize()}
        except Exception as exc:  # noqa: BLE001
            result["cufft_plan_cache"] = error_of(exc)
    result["status"] = "ok" if dev.spec_label in result["median_ms"] else "failed"


def training_steps(dev, args, result):
    """{name: (run, measure)} for the Spec net and the PyTorch nets, and notes; a candidate that
    cannot be built is recorded under result["errors"] and left out."""
    result["errors"] = {}
    x_host, y_host = host_batch(dev.batch, np.float32, seed=0)
    steps = {}
    try:
        steps[dev.spec_label] = (spec_step(dev, args, x_host, y_host),
                                 dev.timer("cupy" if dev.mode == "cupy" else "host"))
    except Exception as exc:  # noqa: BLE001
        result["errors"][dev.spec_label] = error_of(exc)
    notes = {"spec_backend": dev.mode}
    if dev.torch is None:
        return steps, {**notes, "pytorch": "torch is not importable: no PyTorch comparison"}
    from specref import nets

    dev.torch.backends.cudnn.benchmark = True
    notes["pytorch"] = {"device": dev.torch_device, "cudnn_benchmark": True}
    for name, options in dev.torch_nets.items():
        try:
            run = torch_step(dev, nets.build(dev.net, seed=0, **options), x_host, y_host)[0]
            steps[name] = (run, dev.timer("torch" if dev.torch_device == "cuda" else "host"))
        except Exception as exc:  # noqa: BLE001
            result["errors"][name] = error_of(exc)
    return steps, notes


def spec_step(dev, args, x_host, y_host):
    from specref.layers.loss import SoftmaxCrossEntropy
    from specref.optim import SGD

    spec = dev.spec_net(args.beta)
    x, y = dev.backend.asarray(x_host), dev.backend.asarray(y_host)
    optimizer, loss = SGD(spec.parameters(), lr=1e-3, momentum=0.95), SoftmaxCrossEntropy()

    def run():
        loss.forward(spec.forward(x), y)
        spec.backward(loss.backward())
        optimizer.step(spec.gradients())
        spec.clear_cache()
    return run


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
def stage_memory(dev, args, remaining, result, save):
    from specref import memory, nets

    x_host, y_host = host_batch(dev.batch, np.float32, seed=0)
    x, y = dev.backend.asarray(x_host), dev.backend.asarray(y_host)
    result.update(batch=dev.batch, beta=args.beta, init="lsuv", spec_saved={}, spec_peak={})
    for i, storage in enumerate(args.storages):
        progress(f"  memory spec {storage} ...")
        try:      # the spatial baselines do not depend on the storage: measured once
            result["spec_saved"][storage] = memory.measure(dev.spec_net(args.beta), x, y, storage=storage,
                                                           baseline=i == 0)
        except Exception as exc:  # noqa: BLE001
            result["spec_saved"][storage] = error_of(exc)
        try:
            result["spec_peak"][storage] = spec_peak(dev, args, x, y, storage)
        except Exception as exc:  # noqa: BLE001
            result["spec_peak"][storage] = error_of(exc)
        save()
    if dev.torch is not None:
        result["pytorch"] = {}
        for name, options in dev.torch_nets.items():
            progress(f"  memory {name} ...")
            try:
                result["pytorch"][name] = torch_memory(dev, nets.build(dev.net, seed=0, **options), x_host, y_host)
            except Exception as exc:  # noqa: BLE001
                result["pytorch"][name] = error_of(exc)
            save()
        result["spec_saved_over_pytorch"] = {
            storage: {name: saved["saved_bytes"] / t["saved_activation_bytes"]
                      for name, t in result["pytorch"].items() if "saved_activation_bytes" in t}
            for storage, saved in result["spec_saved"].items() if isinstance(saved.get("saved_bytes"), int)}
    measured = [*result["spec_saved"].values(), *result["spec_peak"].values(), *(result.get("pytorch") or {}).values()]
    result["status"] = "failed" if any("error" in m for m in measured) else "ok"


def spec_peak(dev, args, x, y, storage):
    """Peak bytes of one Spec-net training step (after a warm-up step) with ``storage``."""
    from specref.storage import set_storage

    net = dev.spec_net(args.beta)
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


# --- the table ----------------------------------------------------------------------------------
def headline(name, stage, dev):
    """One line of figures for the table."""
    if stage.get("status") == "skipped" or "error" in stage:
        return stage.get("reason") or stage.get("error", "")
    if name == "tests":
        return "; ".join(f"{run_name}: {run.get('summary') or run.get('reason')}"
                         for run_name, run in stage.get("runs", {}).items())
    if name == "parity":
        return parity_line(stage)
    if name == "timing":
        parts = [f"{n} {ms:.1f} ms" for n, ms in stage.get("median_ms", {}).items()]
        ratio = stage.get(f"spec_over_{next(iter(dev.torch_nets))}")
        errors = [f"{n} failed" for n in stage.get("errors", {})]
        return "; ".join(parts + errors) + (f"; spec/pytorch-tanh {ratio:.2f}x" if ratio else "")
    if name == "memory":
        mib = lambda n: f"{n / 2**20:.1f} MiB"  # noqa: E731
        parts = [f"spec saved[{s}] {mib(v['saved_bytes'])}" for s, v in stage["spec_saved"].items()
                 if "saved_bytes" in v]
        parts += [f"spec peak[{s}] {mib(p['peak_bytes'])}" for s, p in stage["spec_peak"].items()
                  if "peak_bytes" in p]
        parts += [f"{n} saved {mib(m['saved_activation_bytes'])}" for n, m in (stage.get("pytorch") or {}).items()
                  if "saved_activation_bytes" in m]
        return "; ".join(parts)
    return ""


def parity_line(stage):
    parts = []
    for dtype in ("float64", "float32"):
        run = stage.get(dtype, {})
        if "error" in run:
            parts.append(f"{dtype} error")
        elif "worst" in run:
            flips = run["mask_flips"]["differing"]
            parts.append(f"{dtype} worst {run['worst']['relative_error']:.1e} ({run['worst']['name']})"
                         + (f", {flips} mask flips" if dtype == "float32" else ""))
    densities = [pair[0] for pair in stage.get("float64", {}).get("kept_density", {}).values()]
    if densities:
        parts.append(f"kept {min(d or 0 for d in densities):.0%}-{max(d or 0 for d in densities):.0%} per block")
    return "; ".join(parts + stage.get("problems", []))


STAGES = (("tests", stage_tests, 0), ("parity", stage_parity, 20), ("timing", stage_timing, 30),
          ("memory", stage_memory, 20))


def run_stages(dev, args, report, started):
    for name, stage, needs_s in STAGES:
        remaining = args.budget - (time.perf_counter() - started)
        result = report.data["stages"][name] = {"status": "running"}
        if dev is None or dev.mode is None:
            result.update(status="skipped", reason=f"no GPU backend: {dev.reason if dev else 'see machine'}")
        elif name not in args.stages or (name == "tests" and args.skip_tests):
            result.update(status="skipped", reason="not asked for (--stages / --skip-tests)")
        elif remaining < needs_s:
            result.update(status="skipped", reason=f"out of time ({remaining:.0f} s of --budget left)")
        else:
            report.save()
            progress(f"stage {name}: running ({remaining:.0f} s of --budget left)")
            t0 = time.perf_counter()
            try:
                stage(dev, args, remaining, result, report.save)
            except Exception as exc:  # noqa: BLE001 (recorded; the next stage still runs)
                result.update(status="failed", **error_of(exc))
            except BaseException:     # killed (SIGTERM, Ctrl-C): keep what was measured
                result.update(status="interrupted", seconds=round(time.perf_counter() - t0, 2))
                report.save()
                raise
            result["seconds"] = round(time.perf_counter() - t0, 2)
            progress(f"stage {name}: {result['status']} in {result['seconds']:.1f} s")
        report.data["seconds"] = round(time.perf_counter() - started, 1)
        report.save()


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse(argv)
    os.makedirs(args.out, exist_ok=True)
    started = time.perf_counter()
    report = Report(os.path.join(args.out, "gpu_check.json"),
                    {"command": "python validation/gpu_check.py " + " ".join(argv),
                     "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "machine": {"status": "running"},
                     "stages": {name: {"status": "pending"} for name in STAGE_NAMES}})
    report.save()
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        dev = None
        progress("setting up the device")
        try:
            dev = Device(args)
            report.data["machine"] = dev.describe()
        except Exception as exc:  # noqa: BLE001 (no device: every stage says so)
            report.data["machine"] = {"mode": None, **error_of(exc)}
        report.save()
        run_stages(dev, args, report, started)
    finally:
        signal.signal(signal.SIGTERM, previous)
    where = report.data["machine"].get("gpu") or f"{getattr(dev, 'mode', None) or 'no GPU'}: " \
        f"{getattr(dev, 'reason', None) or report.data['machine'].get('error')}"
    print(f"\nspecref GPU check ({where}) -> {report.path}", flush=True)
    for name, result in report.data["stages"].items():
        line = "no GPU backend (see above)" if dev is None or dev.mode is None else headline(name, result, dev)
        print(f"  {name:7s} {result['status']:8s} {result.get('seconds', 0):7.1f} s  {line}", flush=True)
    return 1 if any(r["status"] == "failed" for r in report.data["stages"].values()) else 0


def _terminate(signum, frame):
    raise SystemExit(f"gpu_check: terminated by signal {signum}")


if __name__ == "__main__":
    sys.exit(main())
