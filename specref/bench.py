"""Benchmarks that print their figures as JSON lines (``specref bench layers|step``).

Candidates are timed round-robin in one process (warm-up first, then one call of each per
round), and medians are reported: these machines are shared, so only ratios taken side by side
mean anything.
"""
from __future__ import annotations

import json
import os
import platform
import time

import numpy as np

from .backend import Backend


def layers(args):
    """Forward + backward of a Spec block (SpectralConv2d -> Threshold -> ComplexTanh) vs
    Conv2d("same") -> Tanh, batch 32, 64 -> 64 channels, 32 x 32, float32."""
    from .layers.activation import ComplexTanh
    from .layers.conv2d import Conv2d
    from .layers.spatial_activation import Tanh
    from .layers.spectral_conv import SpectralConv2d
    from .layers.threshold import Threshold
    from .spectrum import Spectrum

    backend = Backend(args.backend)
    batch, beta = args.batch or 32, 1.0 if args.beta is None else args.beta
    rng = np.random.default_rng(args.seed)
    x = backend.asarray(rng.standard_normal((batch, 64, 32, 32)).astype(np.float32))
    spectrum = Spectrum.from_spatial(x)

    def block(first, rest):
        layers_ = [first, *rest]
        for layer in layers_:
            backend.move(layer)

        def run(inp):
            out = inp
            for layer in layers_:
                out = layer.forward(out)
            grad = out
            for layer in reversed(layers_):
                grad = layer.backward(grad)
            return grad
        return run

    spec_circ = block(SpectralConv2d(64, 64, 3, rng=1), [Threshold(beta), ComplexTanh()])
    spec_lin = block(SpectralConv2d(64, 64, 3, rng=1), [Threshold(beta), ComplexTanh()])
    spatial = block(Conv2d(64, 64, 3, padding="same", rng=1), [Tanh()])
    candidates = {
        "spec_block_spectrum_input": lambda: spec_circ(spectrum),
        "spec_block_spatial_input": lambda: spec_lin(x),
        "conv2d_tanh": lambda: spatial(x),
    }
    medians = _time_round_robin(candidates, backend, args.repeats or 10, args.warmup or 2)
    base = medians["conv2d_tanh"]
    for name, ms in medians.items():
        _emit(args, {"bench": "layers", "case": name, "batch": batch, "channels": 64, "size": 32,
                     "kernel": 3, "beta": beta, "median_ms": round(ms, 2),
                     "relative_to_conv2d_tanh": round(ms / base, 3), **_machine(backend)})
    return 0


def step(args):
    """Median training step (forward, loss, backward, SGD update) of a Spec net, its spatial
    form (no batch norm, tanh) in specref, and the same spatial net in PyTorch if installed."""
    from . import nets
    from .layers.loss import SoftmaxCrossEntropy

    backend = Backend(args.backend)
    name = args.net or "spec-vgg16"
    spatial_name = name[len("spec-"):] if name.startswith("spec-") else name
    spec_name = "spec-" + spatial_name
    batch, beta = args.batch or 32, 1.0 if args.beta is None else args.beta
    rng = np.random.default_rng(args.seed)
    x_host = rng.standard_normal((batch, 3, 32, 32)).astype(np.float32)
    y_host = rng.integers(0, 10, batch)
    x, y = backend.asarray(x_host), backend.asarray(y_host)

    def specref_step(net):
        backend.move(net)
        loss = SoftmaxCrossEntropy()

        def run():
            loss.forward(net.forward(x), y)
            net.backward(loss.backward())
            params, grads = net.parameters(), net.gradients()
            for key, p in params.items():
                p -= 0.001 * grads[key]
        return run

    spatial_net = nets.build(spatial_name, activation="tanh", batch_norm=False, seed=args.seed)
    candidates = {
        spec_name: specref_step(nets.build(spec_name, beta=beta, seed=args.seed)),
        spatial_name: specref_step(spatial_net),
    }
    torch_step = _torch_step(spatial_net, x_host, y_host, args.backend)
    if torch_step is not None:
        candidates["pytorch-" + spatial_name] = torch_step
    medians = _time_round_robin(candidates, backend, args.repeats or 5, args.warmup or 1)
    record = {"bench": "step", "batch": batch, "beta": beta, "input": [3, 32, 32],
              "median_ms": {k: round(v, 1) for k, v in medians.items()},
              "spec_over_spatial": round(medians[spec_name] / medians[spatial_name], 3),
              **_machine(backend)}
    if torch_step is not None:
        record["spec_over_pytorch"] = round(medians[spec_name] / medians["pytorch-" + spatial_name], 3)
    _emit(args, record)
    return 0


def _torch_step(net, x_host, y_host, backend_name):
    """A PyTorch training step of the same spatial net (converted, same weights), or None."""
    try:
        import torch
    except ImportError:
        return None
    from .torch_bridge import to_torch

    device = "cuda" if backend_name == "cupy" else "cpu"
    torch.set_num_threads(os.cpu_count() or 1)
    model = to_torch(net).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.001, momentum=0.95)
    x, y = torch.from_numpy(x_host).to(device), torch.from_numpy(y_host).to(device)

    def run():
        optimizer.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
        if device == "cuda":
            torch.cuda.synchronize()
    return run


def _time_round_robin(candidates, backend, repeats, warmup):
    times = {name: [] for name in candidates}
    for _ in range(warmup):
        for run in candidates.values():
            run()
    for _ in range(repeats):
        for name, run in candidates.items():
            backend.synchronize()
            start = time.perf_counter()
            run()
            backend.synchronize()
            times[name].append((time.perf_counter() - start) * 1e3)
    return {name: float(np.median(t)) for name, t in times.items()}


def _machine(backend):
    return {"backend": backend.name, "cpus": os.cpu_count(), "machine": platform.machine(),
            "numpy": np.__version__}


def _emit(args, record):
    line = json.dumps(record)
    print(line, flush=True)
    if getattr(args, "out", None):
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "a") as f:
            f.write(line + "\n")
