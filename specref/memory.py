"""What a training step holds for backward, layer by layer, and the peak it reaches.

``ledger(net)``, after a forward pass, walks every leaf layer's ``cache`` and counts every array
held there: a stored map's ``arrays`` (values, indices, index pointers, masks, scales; see
:mod:`specref.storage`), raw arrays, and arrays inside tuples, lists, dicts and Spectra. Bytes are
counted by the memory really held: a view keeps its whole base alive, so it counts as the
``nbytes`` of its root buffer, and each root counts once, for the first layer in forward order
that holds it (a Spectrum kept by ComplexTanh and read again by the next SpectralConv2d, or
Tanh's output that is the next Conv2d's input, belongs to the earlier layer). Parameters and
buffers are not counted (they are held whether or not a step runs). ``entries`` and
``nonzeros`` count feature-map values (floating or complex arrays and stored maps); masks and
index arrays (bool, integer) count bytes only.

``measure(net, x, y, storage=None)`` runs one training step (forward, softmax cross-entropy,
backward; no update) and returns the ledger taken after forward with the step's peak: the most
bytes allocated during the step and live at once, from the allocator. On NumPy that is
``tracemalloc``, to which NumPy reports its data buffers (not the private scratch of BLAS or
pocketfft). On CuPy it is the memory hook of ``specref_gpu.memory`` when that module is
installed, else ``peak_bytes`` is None and ``peak_note`` says why. Caches of an earlier step and
the im2col workspace are released first, so the step starts clean and its own buffers (the
batch, a copy made inside the window, included) are what the peak counts. The same measure is
taken, in the same process, for the spatial networks of the same architecture that
:func:`specref.nets.spatial_baselines` builds: tanh without batch norm (``baseline_*``) and with
batch norm and ReLU (``baseline_bn_*``).

``block_densities(net)`` is the share of entries each thresholded block kept on the last forward,
read from the kept maps' own counts: training checks it to warn when a Spec net keeps almost
nothing.
"""
from __future__ import annotations

import contextlib
import gc
import importlib
import tracemalloc

import numpy as np

from . import nets
from .backend import Backend, array_module, is_cupy_array
from .workspace import release as release_workspaces
from .layers.loss import SoftmaxCrossEntropy
from .spectrum import Spectrum
from .storage import Stored, set_storage
from .tree import leaf_layers, state_stores


def ledger(net, counts=True):
    """{"saved_bytes", "entries", "nonzeros", "density", "layers"} of what ``net`` holds now.

    ``counts=False`` skips the non-zero count (a pass over every dense map): bytes and entries
    then come from array metadata alone, no copy and no device sync.
    """
    owners = {}      # id(root buffer) -> root, for every buffer counted so far
    mapped = set()   # id(root of a map's first array): maps whose entries are counted
    excluded = {id(_root(a)) for a in _state_arrays(net)}
    rows = []
    for name, layer in leaf_layers(net):
        row = {"name": f"{name}:{type(layer).__name__}", "saved_bytes": 0, "entries": 0,
               "nonzeros": 0 if counts else None}
        for item in _held(getattr(layer, "cache", {})):
            roots = [_root(a) for a in (item.arrays if _is_stored(item) else (item,))]
            for root in roots:
                if id(root) not in owners and id(root) not in excluded:
                    owners[id(root)] = root
                    row["saved_bytes"] += int(root.nbytes)
            if not roots or id(roots[0]) in mapped or id(roots[0]) in excluded or not _is_map(item):
                continue
            mapped.add(id(roots[0]))
            row["entries"] += _entries(item)
            if counts:
                row["nonzeros"] += _nonzeros(item)
        row["density"] = row["nonzeros"] / row["entries"] if counts and row["entries"] else None
        rows.append(row)
    entries = sum(r["entries"] for r in rows)
    nonzeros = sum(r["nonzeros"] for r in rows) if counts else None
    return {"saved_bytes": sum(r["saved_bytes"] for r in rows), "entries": entries,
            "nonzeros": nonzeros, "density": nonzeros / entries if counts and entries else None,
            "layers": rows}


def saved_bytes(net):
    """Bytes held for backward right now (the ledger's total, from metadata only)."""
    return ledger(net, counts=False)["saved_bytes"]


def measure(net, x, y, storage=None, baseline=True):
    """One training step of ``net`` on (x, y): the ledger after forward, the peak, the baselines.

    storage: a codec name for every layer during the step (None keeps the net's). baseline=False
    skips the spatial baselines (their keys are then None). Afterwards the net is as it was (its
    layers' codecs and batch-norm running statistics restored), with no caches and no gradients
    held.
    """
    codecs = [(layer, layer.__dict__.get("storage")) for _, layer in leaf_layers(net)]
    try:
        if storage is not None:
            set_storage(net, storage)
        return _measure(net, x, y, baseline)
    finally:
        for layer, codec in codecs:
            if codec is None:
                layer.__dict__.pop("storage", None)     # back to the class's default codec
            else:
                layer.storage = codec


def _measure(net, x, y, baseline):
    xp = array_module(x, y)
    result = {"net": getattr(net, "name", type(net).__name__), "storage": storage_name(net),
              "beta": nets.beta_of(net), "fft_norm": getattr(net, "fft_norm", None),
              "dtype": str(x.dtype), "batch": int(x.shape[0]), "backend": xp.__name__}
    own = _step(net, x, y)
    layers = own.pop("layers")
    result.update(own)
    result.update(_baselines(net, x, y, own) if baseline else _no_baselines("baseline=False"))
    result["layers"] = layers
    return result


def storage_name(net):
    """The codec name the net's layers store with ("mixed" when they differ)."""
    names = {layer.storage.name for _, layer in leaf_layers(net) if hasattr(layer, "storage")}
    return names.pop() if len(names) == 1 else ("mixed" if names else None)


def block_densities(net):
    """[(threshold layer's name, beta, density)] for every layer with a ``beta``, in forward order:
    the share of non-zero entries in the first map kept after it (its block's output Z), from the
    last forward pass; density None where no map was kept. Reads the kept maps' own counts (a
    sparse codec's index count; one non-zero count over a dense map)."""
    found, pending = [], None
    for name, layer in leaf_layers(net):
        if getattr(layer, "beta", None) is not None:
            if pending is not None:
                found.append((*pending, None))
            pending = (f"{name}:{type(layer).__name__}", float(layer.beta))
            continue
        if pending is None:
            continue
        maps = [item for item in _held(getattr(layer, "cache", {}))
                if (not _is_stored(item) or item.arrays) and _is_map(item)]
        entries = sum(_entries(item) for item in maps)
        if entries:
            found.append((*pending, sum(_nonzeros(item) for item in maps) / entries))
            pending = None
    if pending is not None:
        found.append((*pending, None))
    return found


class PeakMeter:
    """``with PeakMeter(xp) as m: ...`` then ``m.peak_bytes``: the most bytes allocated inside the
    block and live at once (None where no allocator hook is available; ``m.note`` says why)."""

    def __init__(self, xp=np):
        self.xp, self.peak_bytes, self.note, self._device = xp, None, None, None

    def __enter__(self):
        if self.xp is np:
            self._started = not tracemalloc.is_tracing()
            if self._started:
                tracemalloc.start()
            tracemalloc.reset_peak()
            self._base = tracemalloc.get_traced_memory()[0]
        else:
            self.xp.cuda.Device().synchronize()
            self._device, self.note = _device_hook()
            if self._device is not None:
                self._value = self._device.__enter__()
        return self

    def current_bytes(self):
        """Bytes allocated inside the block and still live (NumPy only)."""
        return tracemalloc.get_traced_memory()[0] - self._base

    def __exit__(self, *exc):
        if self.xp is np:
            self.peak_bytes = tracemalloc.get_traced_memory()[1] - self._base
            if self._started:
                tracemalloc.stop()
        elif self._device is not None:
            self.xp.cuda.Device().synchronize()
            self._device.__exit__(*exc)
            self.peak_bytes = int(self._value.peak_bytes)
        return False


class RunRecord:
    """Memory along a training run (used by :func:`specref.training.train`).

    ``saved_bytes`` after every forward (the ledger's total from metadata: no copy, no sync), and
    the allocator peak on traced steps: the second of each epoch (the first of a run makes the
    caches that outlive a step, DFT matrices and thread pools) and every ``every``-th one
    (``every=0``: none). Call ``window(step)`` around a step, ``after_forward(net)`` inside it,
    ``after_step(net, window)`` once it is done, ``epoch()`` at the end of an epoch.
    """

    def __init__(self, xp=np, every=100):
        self.xp, self.every = xp, int(every)
        self._reset()

    def _reset(self):
        self.saved, self.peaks, self.densities, self.note = [], [], [], None

    def traced(self, step):
        return self.every > 0 and (step == 2 or step % self.every == 0)

    def window(self, step):
        if not self.traced(step):
            return contextlib.nullcontext()
        release_workspaces()              # live during every step: let the traced one allocate it
        return PeakMeter(self.xp)

    def after_forward(self, net):
        self.saved.append(saved_bytes(net))

    def after_step(self, net, window):
        if isinstance(window, PeakMeter):
            self.note = window.note
            if window.peak_bytes is not None:
                self.peaks.append(int(window.peak_bytes))
            self.densities.append(ledger(net)["density"])

    def epoch(self):
        """This epoch's figures (then start the next): the keys of ``EPOCH_KEYS``."""
        densities = [d for d in self.densities if d is not None]
        entry = {"saved_bytes_mean": float(np.mean(self.saved)) if self.saved else None,
                 "saved_bytes_peak": max(self.saved) if self.saved else None,
                 "peak_bytes": max(self.peaks) if self.peaks else None,
                 "peak_bytes_mean": float(np.mean(self.peaks)) if self.peaks else None,
                 "peak_steps": len(self.peaks),
                 "density": float(np.mean(densities)) if densities else None}
        if self.note:
            entry["peak_note"] = self.note
        self._reset()
        return entry

    @staticmethod
    def summary(history):
        """Average and peak over every epoch of a run (entries written by :meth:`epoch`)."""
        def column(key):
            return [e[key] for e in history if e.get(key) is not None]

        def weighted(key, weight):
            pairs = [(e[key], e.get(weight, 1)) for e in history if e.get(key) is not None]
            return sum(v * n for v, n in pairs) / sum(n for _, n in pairs) if pairs else None

        return {"saved_bytes_mean": weighted("saved_bytes_mean", "steps"),
                "saved_bytes_peak": max(column("saved_bytes_peak"), default=None),
                "peak_bytes": max(column("peak_bytes"), default=None),
                "peak_bytes_mean": weighted("peak_bytes_mean", "peak_steps")}


# --- one step ---------------------------------------------------------------------------------
def _step(net, x, y):
    xp = array_module(x, y)
    buffers = [(layer.buffers, key, value.copy()) for _, layer in leaf_layers(net)
               for key, value in (getattr(layer, "buffers", None) or {}).items()]
    net.train()
    criterion = SoftmaxCrossEntropy()
    # Warm up on two examples: per-size caches (DFT matrices, thread pools) that persist across
    # steps are made here, outside the window, so the peak is the step's own.
    criterion.forward(net.forward(x[:2].copy()), y[:2])
    net.backward(criterion.backward())
    _clear(net)
    with PeakMeter(xp) as meter:
        batch = x.copy()                 # the batch is step memory, as in training
        logits = net.forward(batch)
        after_forward = ledger(net, counts=False)["saved_bytes"]
        loss = criterion.forward(logits, y)
        net.backward(criterion.backward())
        del batch, logits
    book = ledger(net)                   # backward reads the caches, never replaces them
    if book["saved_bytes"] != after_forward:
        raise RuntimeError(f"the caches changed during backward ({after_forward} -> "
                           f"{book['saved_bytes']} bytes): the ledger after forward is not the one reported")
    _clear(net)
    for store, key, value in buffers:
        store[key][...] = value
    return {"saved_bytes": after_forward, "peak_bytes": meter.peak_bytes, "peak_note": meter.note,
            "entries": book["entries"], "nonzeros": book["nonzeros"], "density": book["density"],
            "loss": float(loss), "layers": book["layers"]}


def _clear(net):
    net.clear_cache()
    for _, layer in leaf_layers(net):
        layer.grads = {}
    release_workspaces()
    gc.collect()


# --- the spatial baselines ----------------------------------------------------------------------
def _baselines(net, x, y, own):
    backend = Backend(array_module(x).__name__)
    out = {}
    for suffix, label, spatial in nets.spatial_baselines(net, dtype=x.dtype, input_shape=x.shape[1:]):
        figures = own if spatial is net else _step(backend.move(spatial), x, y)
        out[f"baseline{suffix}"] = label
        out[f"baseline{suffix}_saved_bytes"] = figures["saved_bytes"]
        out[f"baseline{suffix}_peak_bytes"] = figures["peak_bytes"]
        out[f"relative_saved{suffix}"] = _ratio(own["saved_bytes"], figures["saved_bytes"])
        out[f"relative_peak{suffix}"] = _ratio(own["peak_bytes"], figures["peak_bytes"])
    if not out:
        return _no_baselines("the net does not come from specref.nets.build")
    out["baseline_storage"] = "dense"
    return out


def _no_baselines(note):
    out = {}
    for suffix in ("", "_bn"):
        out.update({f"baseline{suffix}": None, f"baseline{suffix}_saved_bytes": None,
                    f"baseline{suffix}_peak_bytes": None, f"relative_saved{suffix}": None,
                    f"relative_peak{suffix}": None})
    out["baseline_note"] = note
    return out


def _ratio(a, b):
    return None if a is None or not b else a / b


# --- walking caches -------------------------------------------------------------------------------
def _state_arrays(net):
    for store in state_stores(net):
        yield from store.values()


def _is_array(value):
    return isinstance(value, np.ndarray) or is_cupy_array(value)


def _is_stored(value):
    return isinstance(value, Stored)


def _held(value):
    """Every stored map and raw array inside a cache value."""
    if _is_stored(value) or _is_array(value):
        yield value
    elif isinstance(value, Spectrum):
        yield value.values
        if value.stored is not None:
            yield value.stored
    elif isinstance(value, dict):
        for item in value.values():
            yield from _held(item)
    elif isinstance(value, (tuple, list)):
        for item in value:
            yield from _held(item)


def _root(array):
    """The array that owns the memory ``array`` shows (itself unless it is a view)."""
    while _is_array(getattr(array, "base", None)):
        array = array.base
    return array


def _is_map(item):
    return np.dtype(item.dtype).kind in "fc"


def _entries(item):
    return int(item.entries) if _is_stored(item) else int(item.size)


def _nonzeros(item):
    if _is_stored(item):
        return int(item.nonzeros)
    return int(array_module(item).count_nonzero(item))


def _device_hook():
    """(specref_gpu.memory.track(): a PoolPeak counting CuPy pool blocks, None) or (None, why not)."""
    try:
        gpu_memory = importlib.import_module("specref_gpu.memory")
    except ImportError as exc:
        return None, f"no CuPy allocator hook: specref_gpu.memory is not importable ({exc})"
    if not callable(getattr(gpu_memory, "track", None)):
        return None, "specref_gpu.memory has no track() context manager"
    return gpu_memory.track(), None
