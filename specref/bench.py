"""Benchmarks that print their figures (``specref bench step|layers|kernels``).

``step``: one training step (forward, softmax cross-entropy, backward, SGD with momentum) of a
Spec net, of its spatial form in specref (tanh, no batch norm) and of that spatial net in PyTorch
(converted with the same weights) when PyTorch is installed. Each candidate lives in a worker
process of its own (``python -m specref.bench worker ...``), so no two thread pools share the
cores; the parent runs them in alternating rounds, one worker at a time while the others wait
idle on their pipes, and reports per candidate the median step with its min and max, the ratios
of medians, each worker's thread counts, and the load average before and after. A load average
above the core count marks the ratios unreliable: only ratios taken side by side, on a quiet
machine, mean anything here.

``layers`` and ``kernels`` time candidates round-robin in one process (one library, one pool).
"""
from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time

import numpy as np

from .backend import Backend

STEP_ROUNDS = 7
STEP_PER_ROUND = 3
STEP_WARMUP = 2


def add_arguments(subparsers, handler):
    """The ``step``, ``layers`` and ``kernels`` subcommands of ``specref bench``."""
    commands = (("step", "a training step: Spec vs spatial net, each framework in its own process"),
                ("layers", "one Spec block vs Conv2d + Tanh, forward and backward"),
                ("kernels", "the Spec block's elementwise kernels, numba vs NumPy"))
    for name, text in commands:
        p = subparsers.add_parser(name, help=text)
        p.add_argument("--net", default=None, help="step: a Spec registry name (default spec-vgg16)")
        p.add_argument("--batch", "--batch-size", dest="batch", type=int, default=None)
        p.add_argument("--backend", choices=("numpy", "cupy"), default="numpy")
        p.add_argument("--beta", type=float, default=None, help="threshold (default nets.DEFAULT_BETA)")
        p.add_argument("--repeats", type=int, default=None, help="rounds (step) or repetitions")
        p.add_argument("--warmup", type=int, default=None)
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--out", default=None, help="also append the JSON record(s) to this file")
        if name == "step":
            p.add_argument("--per-round", type=int, default=None,
                           help=f"steps per worker per round (default {STEP_PER_ROUND})")
            p.add_argument("--no-torch", dest="torch", action="store_false",
                           help="leave PyTorch out even when it is installed")
            p.add_argument("--json", action="store_true", help="print the JSON record instead of a table")
        p.set_defaults(handler=handler)


# --- specref bench step -----------------------------------------------------------------------
def step(args):
    """Alternating rounds of the step workers; prints a table (or ``--json``) and returns 0."""
    from . import nets

    name = args.net or "spec-vgg16"
    spatial = name[len("spec-"):] if name.startswith("spec-") else name
    beta = nets.DEFAULT_BETA if args.beta is None else args.beta
    batch = args.batch or 32
    candidates = {f"spec-{spatial}": "specref", spatial: "specref"}
    if getattr(args, "torch", True) and _has_torch():
        candidates[f"pytorch-{spatial}"] = "torch"
    common = ["--batch", str(batch), "--beta", repr(beta), "--seed", str(args.seed),
              "--backend", args.backend, "--warmup", str(args.warmup or STEP_WARMUP)]
    load_before = os.getloadavg()
    workers = {label: _Worker(label, ["--framework", framework,
                                      "--net", label.removeprefix("pytorch-"), *common])
               for label, framework in candidates.items()}
    try:
        info = {label: w.ready() for label, w in workers.items()}
        times = {label: [] for label in workers}
        labels = list(workers)
        for round_ in range(args.repeats or STEP_ROUNDS):
            for label in labels[round_ % len(labels):] + labels[: round_ % len(labels)]:
                times[label] += workers[label].run(getattr(args, "per_round", None) or STEP_PER_ROUND)
    finally:
        for w in workers.values():
            w.close()
    load_after = os.getloadavg()
    record = _step_record(name, spatial, batch, beta, times, info, load_before, load_after, args.backend)
    _emit(args, record)
    if not getattr(args, "json", False):
        print(_step_table(record), flush=True)
    return 0


def _step_record(name, spatial, batch, beta, times, info, load_before, load_after, backend):
    stats = {label: {"median_ms": round(float(np.median(t)), 1), "min_ms": round(float(np.min(t)), 1),
                     "max_ms": round(float(np.max(t)), 1), "steps": len(t), **info[label]}
             for label, t in times.items()}
    spec, torch_label = f"spec-{spatial}", f"pytorch-{spatial}"
    ratios = {"spec_over_spatial": stats[spec]["median_ms"] / stats[spatial]["median_ms"]}
    if torch_label in stats:
        ratios["spec_over_pytorch"] = stats[spec]["median_ms"] / stats[torch_label]["median_ms"]
        ratios["spatial_over_pytorch"] = stats[spatial]["median_ms"] / stats[torch_label]["median_ms"]
    cpus = os.cpu_count() or 1
    busy = max(load_before[0], load_after[0])
    return {"bench": "step", "net": name, "batch": batch, "beta": beta, "dtype": "float32",
            "input": [3, 32, 32], "candidates": stats,
            "ratios": {k: round(v, 3) for k, v in ratios.items()},
            "load_before": [round(v, 2) for v in load_before], "load_after": [round(v, 2) for v in load_after],
            "reliable": busy <= cpus,
            "note": None if busy <= cpus else f"load average {busy:.2f} exceeded the {cpus} cores: "
                                               "other work shared the machine, the ratios are unreliable",
            **_machine(Backend(backend))}


def _step_table(record):
    lines = [f"training step, batch {record['batch']}, float32, beta {record['beta']} "
             f"({record['cpus']} CPUs; load average before {record['load_before'][0]}, "
             f"after {record['load_after'][0]})",
             f"  {'candidate':24s} {'median ms':>10s} {'min':>8s} {'max':>8s}  threads"]
    for label, s in record["candidates"].items():
        lines.append(f"  {label:24s} {s['median_ms']:10.1f} {s['min_ms']:8.1f} {s['max_ms']:8.1f}  "
                     f"{s.get('threads')}")
    lines += [f"  {k}: {v}" for k, v in record["ratios"].items()]
    if record["note"]:
        lines.append(f"  UNRELIABLE: {record['note']}")
    return "\n".join(lines)


class _Worker:
    """A step worker process: ``ready()`` after its warm-up, ``run(n)`` -> n step times (ms)."""

    def __init__(self, label, argv):
        self.label = label
        self.proc = subprocess.Popen([sys.executable, "-m", "specref.bench", "worker", *argv],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)

    def _reply(self):
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"bench worker {self.label!r} exited with status {self.proc.wait()} "
                               "(its error is printed above)")
        return json.loads(line)

    def ready(self):
        return self._reply()

    def run(self, steps):
        self.proc.stdin.write(f"{steps}\n")
        return self._reply()["ms"]

    def close(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write("0\n")
                self.proc.stdin.flush()
                self.proc.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()


def _worker(argv):
    """The worker loop: build, warm up, say ready, then time ``n`` steps per line read (0: exit)."""
    import argparse

    parser = argparse.ArgumentParser(prog="specref.bench worker")
    parser.add_argument("--framework", choices=("specref", "torch"), required=True)
    parser.add_argument("--net", required=True)
    parser.add_argument("--batch", type=int, required=True)
    parser.add_argument("--beta", type=float, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--backend", default="numpy")
    parser.add_argument("--warmup", type=int, default=STEP_WARMUP)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    x = rng.standard_normal((args.batch, 3, 32, 32)).astype(np.float32)
    y = rng.integers(0, 10, args.batch)
    run, sync, threads = (_torch_step if args.framework == "torch" else _specref_step)(args, x, y)
    for _ in range(args.warmup):
        run()
    print(json.dumps({"ready": True, "threads": threads}), flush=True)
    for line in sys.stdin:
        steps = int(line)
        if steps <= 0:
            break
        ms = []
        for _ in range(steps):
            sync()
            start = time.perf_counter()
            run()
            sync()
            ms.append((time.perf_counter() - start) * 1e3)
        print(json.dumps({"ms": ms}), flush=True)


def _specref_step(args, x_host, y_host):
    from . import nets
    from .layers.loss import SoftmaxCrossEntropy
    from .optim import SGD

    backend = Backend(args.backend)
    kwargs = {"beta": args.beta} if args.net.startswith("spec-") else {"activation": "tanh", "batch_norm": False}
    net = backend.move(nets.build(args.net, seed=args.seed, **kwargs))
    x, y = backend.asarray(x_host), backend.asarray(y_host)
    loss = SoftmaxCrossEntropy()
    optimizer = SGD(net.parameters(), lr=0.001, momentum=0.9)

    def run():
        loss.forward(net.forward(x), y)
        net.backward(loss.backward(), input_grad=False)     # as PyTorch: no gradient for x
        optimizer.step(net.gradients())
        net.clear_cache()

    from threadpoolctl import threadpool_info

    from .batched import WORKERS
    blas = [f"{i['internal_api']}:{i['num_threads']}" for i in threadpool_info()]
    return run, backend.synchronize, {"pool": WORKERS, "blas": blas}


def _torch_step(args, x_host, y_host):
    import torch

    from . import nets
    from .torch_bridge import to_torch

    torch.set_num_threads(os.cpu_count() or 1)
    device = "cuda" if args.backend == "cupy" else "cpu"
    model = to_torch(nets.build(args.net, seed=args.seed, activation="tanh", batch_norm=False)).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.001, momentum=0.9)
    x, y = torch.from_numpy(x_host).to(device), torch.from_numpy(y_host).to(device)

    def run():
        optimizer.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()

    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    return run, sync, {"torch": torch.__version__, "intra_op": torch.get_num_threads(),
                       "inter_op": torch.get_num_interop_threads()}


def _has_torch():
    import importlib.util

    return importlib.util.find_spec("torch") is not None


# --- specref bench layers ---------------------------------------------------------------------
def layers(args):
    """Forward + backward of a Spec block (SpectralConv2d -> Threshold -> ComplexTanh) vs
    Conv2d("same") -> Tanh, batch 32, 64 -> 64 channels, 32 x 32, float32."""
    from . import nets
    from .layers.activation import ComplexTanh
    from .layers.conv2d import Conv2d
    from .layers.spatial_activation import Tanh
    from .layers.spectral_conv import SpectralConv2d
    from .layers.threshold import Threshold
    from .spectrum import Spectrum

    backend = Backend(args.backend)
    batch = args.batch or 32
    beta = nets.DEFAULT_BETA if args.beta is None else args.beta
    rng = np.random.default_rng(args.seed)
    x = backend.asarray(rng.standard_normal((batch, 64, 32, 32)).astype(np.float32))
    spectrum = Spectrum.from_spatial(x)

    def block(first, rest):
        layers_ = [backend.move(layer) for layer in (first, *rest)]

        def run(inp):
            out = inp
            for layer in layers_:
                out = layer.forward(out)
            grad = out
            for layer in reversed(layers_):
                grad = layer.backward(grad)
            return grad
        return run

    def spec_block():
        threshold, activation = Threshold(beta), ComplexTanh()
        threshold.share_mask_with(activation)          # as the Spec nets build it
        return block(SpectralConv2d(64, 64, 3, rng=1), [threshold, activation])

    spec_circ, spec_lin = spec_block(), spec_block()
    spatial = block(Conv2d(64, 64, 3, padding="same", rng=1), [Tanh()])
    candidates = {
        "spec_block_spectrum_input": lambda: spec_circ(spectrum),
        "spec_block_spatial_input": lambda: spec_lin(x),
        "conv2d_tanh": lambda: spatial(x),
    }
    medians = _time_round_robin(candidates, backend.synchronize, args.repeats or 10, args.warmup or 2)
    base = medians["conv2d_tanh"]
    for name, ms in medians.items():
        _emit(args, {"bench": "layers", "case": name, "batch": batch, "channels": 64, "size": 32,
                     "kernel": 3, "beta": beta, "median_ms": round(ms, 2),
                     "relative_to_conv2d_tanh": round(ms / base, 3), "load": list(os.getloadavg()),
                     **_machine(backend)})
    return 0


# --- specref bench kernels --------------------------------------------------------------------
def kernels(args):
    """The measurement behind the numba choice in :mod:`specref.kernels`: each elementwise step on
    a frequency-major complex64 spectrum (batch, 64, 34, 18), numba against plain NumPy."""
    from . import kernels as k

    rng = np.random.default_rng(args.seed)
    b, c, p, h = args.batch or 32, 64, 34, 18
    draw = lambda: (rng.standard_normal((p, h, b, c)) + 1j * rng.standard_normal((p, h, b, c)))  # noqa: E731
    y = draw().astype(np.complex64).transpose(2, 3, 0, 1)
    dz = draw().astype(np.complex64).transpose(2, 3, 0, 1)
    beta = 1.0 if args.beta is None else args.beta
    z = k.split_tanh(k._threshold_numpy(y, beta)[0])

    def both(name, call):
        def plain():
            saved, k._numba_kernels = k._numba_kernels, False
            try:
                return call()
            finally:
                k._numba_kernels = saved
        return {f"{name}/numba": call, f"{name}/numpy": plain}

    if k._numba() is None:
        raise RuntimeError("numba does not import here: nothing to compare")
    candidates = {**both("threshold", lambda: k.threshold(y, beta)),
                  **both("threshold (mask not written)", lambda: k.threshold(y, beta, with_mask=False)),
                  **both("split_tanh_backward", lambda: k.split_tanh_backward(dz, z)),
                  **both("where_nonzero", lambda: k.where_nonzero(dz, z)),
                  "split_tanh (NumPy tanh over the pool)": lambda: k.split_tanh(y),
                  "threshold backward as dY * pattern (before where_nonzero)": lambda: dz * (z != 0)}
    spectra, adjoints = _kernel_spectrum_cases(rng)
    candidates.update(both("kernel spectra, Spec-VGG-16's 13 layers", spectra))
    candidates.update(both("their adjoint, Spec-VGG-16's 13 layers", adjoints))
    medians = _time_round_robin(candidates, lambda: None, args.repeats or 30, args.warmup or 3)
    print(f"round-robin medians, {(b, c, p, h)} complex64 frequency-major (kernel spectra: float32 "
          f"3 x 3 kernels), {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}:")
    for name, ms in medians.items():
        print(f"  {name:58s} {ms:7.2f} ms")
    return 0


def _kernel_spectrum_cases(rng):
    """(all kernel spectra, all their adjoints) of Spec-VGG-16's 13 convolutions at 32 x 32 input."""
    from . import fft
    from .nets.vgg import CONFIGS

    layers, channels, size = [], 3, 34
    for item in CONFIGS[16]:
        if item == "M":
            size = (size + 1) // 2
            continue
        w = rng.standard_normal((item, channels, 3, 3)).astype(np.float32)
        g = rng.standard_normal((size * (size // 2 + 1), item, channels)).astype(np.complex64)
        layers.append((w, g, (size, size)))
        channels = item

    def spectra():
        for w, _, size in layers:
            fft.kernel_spectrum_frequency_major(w, size)

    def adjoints():
        for _, g, size in layers:
            fft.kernel_spectrum_adjoint_frequency_major(g, 3, size)
    return spectra, adjoints


# --- shared -----------------------------------------------------------------------------------
def _time_round_robin(candidates, synchronize, repeats, warmup):
    times = {name: [] for name in candidates}
    for _ in range(warmup):
        for run in candidates.values():
            run()
    for _ in range(repeats):
        for name, run in candidates.items():
            synchronize()
            start = time.perf_counter()
            run()
            synchronize()
            times[name].append((time.perf_counter() - start) * 1e3)
    return {name: float(np.median(t)) for name, t in times.items()}


def _machine(backend):
    return {"backend": backend.name, "cpus": os.cpu_count(), "machine": platform.machine(),
            "numpy": np.__version__}


def _emit(args, record):
    line = json.dumps(record)
    if getattr(args, "json", False) or record.get("bench") != "step":
        print(line, flush=True)
    if getattr(args, "out", None):
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "a") as f:
            f.write(line + "\n")


if __name__ == "__main__":
    if sys.argv[1:2] != ["worker"]:
        sys.exit("usage: python -m specref.bench worker ... (started by `specref bench step`)")
    _worker(sys.argv[2:])
