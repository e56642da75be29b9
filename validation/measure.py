"""Timing and memory measurements side by side with PyTorch, for validation/gpu_check.py
(``validation.measure`` with the repository root on ``sys.path``; measuring code stays out of the
installed packages).

- :func:`timer`: run a step once and return its milliseconds, on the GPU's clock (CUDA events
  recorded around it: ``cupy.cuda.Event`` for CuPy work, ``torch.cuda.Event`` for PyTorch's) or
  on the host's (``time.perf_counter``); everything is synchronized first, so one step's work
  never overlaps the next one's timing.
- :func:`round_robin`: warm-up rounds, then each candidate once per round; the medians are
  what to compare (the machines are shared: only figures taken side by side mean anything).
- :func:`torch_memory`: the saved-activation bytes of one PyTorch training step (unique storages
  that autograd saves, seen by ``torch.autograd.graph.saved_tensors_hooks``, parameters counted
  apart) and, on CUDA, its peak (``torch.cuda.max_memory_allocated`` above the bytes held before).

- :func:`host_peak`: the tracemalloc peak of a NumPy step (NumPy reports its buffers to it).
- :func:`relative_error`: max|a - b| / max|b| over two arrays on any device.
- :func:`machine_info`: versions, CPU count and the GPU (name, memory, CUDA runtime and driver).
- :func:`to_json`: a report's values as JSON types (arrays as their shape and dtype).

Nothing here imports CuPy or PyTorch at import time.
"""
from __future__ import annotations

import dataclasses
import math
import os
import platform
import time

import numpy as np


def timer(kind, synchronize, cupy=None, torch=None):
    """A function ``measure(run) -> ms``; ``kind`` is "cupy", "torch" (CUDA events) or "host"."""
    if kind not in ("cupy", "torch", "host"):
        raise ValueError(f"kind must be 'cupy', 'torch' or 'host', got {kind!r}")

    def measure(run):
        synchronize()
        if kind == "host":
            start = time.perf_counter()
            run()
            synchronize()
            return (time.perf_counter() - start) * 1e3
        if kind == "cupy":
            start, end = cupy.cuda.Event(), cupy.cuda.Event()
        else:
            start, end = (torch.cuda.Event(enable_timing=True) for _ in range(2))
        start.record()
        run()
        end.record()
        end.synchronize()
        return float(cupy.cuda.get_elapsed_time(start, end) if kind == "cupy" else start.elapsed_time(end))
    return measure


def round_robin(candidates, warmup, repeats, errors=None):
    """{name: [ms per timed round]} for ``candidates`` {name: (run, measure)}.

    With an ``errors`` dict, a candidate that raises is recorded there ("Type: message") and left
    out of the later rounds and of the result; the others go on. Without one, the error propagates.
    """
    times = {name: [] for name in candidates}
    for round_ in range(warmup + repeats):
        for name, (run, measure) in candidates.items():
            if errors is not None and name in errors:
                continue
            try:
                elapsed = measure(run)
            except Exception as exc:
                if errors is None:
                    raise
                errors[name] = f"{type(exc).__name__}: {exc}"
                continue
            if round_ >= warmup:
                times[name].append(elapsed)
    return {name: t for name, t in times.items() if errors is None or name not in errors}


def summary(times):
    """Medians and minima of :func:`round_robin`'s times."""
    return {"median_ms": {n: float(np.median(t)) for n, t in times.items()},
            "min_ms": {n: float(np.min(t)) for n, t in times.items()}, "all_ms": times}


def torch_memory(torch, model, step, x, y):
    """Saved activations and peak of one training step of ``model`` on (x, y).

    ``step()`` runs one whole step first (so optimizer state exists, as in training); then one
    forward and backward is measured. Returns bytes: ``saved_activation_bytes`` (unique storages
    saved for backward that are not parameters; the input counts, as it is saved by the first
    layer), ``saved_parameter_bytes``, and on CUDA ``peak_bytes`` (above ``start_bytes``).
    """
    step()
    parameters = {p.untyped_storage().data_ptr() for p in model.parameters()}
    saved = {}

    def pack(tensor):
        storage = tensor.untyped_storage()
        saved.setdefault(storage.data_ptr(), storage.nbytes())
        return tensor

    cuda = x.is_cuda
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        start = torch.cuda.memory_allocated()
    model.zero_grad(set_to_none=True)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        loss = torch.nn.functional.cross_entropy(model(x), y)
    loss.backward()
    result = {"saved_activation_bytes": sum(n for p, n in saved.items() if p not in parameters),
              "saved_parameter_bytes": sum(n for p, n in saved.items() if p in parameters),
              "saved_storages": len(saved), "source": "saved_tensors_hooks, unique storages"}
    if cuda:
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated()
        result.update(peak_bytes=peak - start, start_bytes=start, high_water_bytes=peak,
                      peak_source="torch.cuda.max_memory_allocated (forward + backward)")
    return result


def host_peak(run):
    """{"peak_bytes", "current_bytes"} of tracemalloc over ``run()`` (host memory)."""
    import tracemalloc

    tracemalloc.start()
    try:
        run()
        current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return {"peak_bytes": peak, "current_bytes": current, "source": "tracemalloc (NumPy)"}


def relative_error(actual, expected):
    """max|actual - expected| / max|expected|, in float64 on the host."""
    from specref.backend import to_numpy

    a, b = to_numpy(actual).astype(np.float64), to_numpy(expected).astype(np.float64)
    return float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(b))), 1e-30))


def machine_info(cupy=None, torch=None, torch_device="cpu"):
    """Where the figures come from; pass ``cupy`` only where it runs on a GPU."""
    info = {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count(),
            "numpy": np.__version__}
    for name in ("scipy", "numba", "cupy"):
        try:
            info[name] = __import__(name).__version__
        except Exception as exc:  # not installed, or broken
            info[name] = f"unavailable: {exc}"
    if cupy is not None:
        runtime = cupy.cuda.runtime
        props = runtime.getDeviceProperties(cupy.cuda.Device().id)
        name = props["name"]
        info.update(gpu=name.decode() if isinstance(name, bytes) else name,
                    gpu_memory_bytes=int(props["totalGlobalMem"]),
                    cuda_runtime=runtime.runtimeGetVersion(), cuda_driver=runtime.driverGetVersion())
    if torch is not None:
        info.update(torch=torch.__version__, torch_device=torch_device)
        getters = {"cudnn": lambda: torch.backends.cudnn.version() if torch_device == "cuda" else None,
                   "cudnn_allow_tf32": lambda: bool(torch.backends.cudnn.allow_tf32),
                   "matmul_allow_tf32": lambda: bool(torch.backends.cuda.matmul.allow_tf32)}
        for key, get in getters.items():      # each on its own: a getter may raise on a new release
            try:
                info[key] = get()
            except Exception as exc:
                info[key] = f"unavailable: {type(exc).__name__}: {exc}"
    return info


def to_json(value):
    """``value`` with NumPy scalars, dataclasses and objects turned into JSON types."""
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    if isinstance(value, np.generic):
        return to_json(value.item())
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if dataclasses.is_dataclass(value):
        return to_json(dataclasses.asdict(value))
    if hasattr(value, "shape") and hasattr(value, "dtype"):
        return f"<array {tuple(value.shape)} {value.dtype}>"
    if hasattr(value, "as_dict"):
        return to_json(value.as_dict())
    if hasattr(value, "__dict__"):
        return to_json(vars(value))
    return repr(value)
