"""Golden files: one training step of a network, every value of it, in one ``.npz``.

A golden file lets an implementation that does not share specref's code (PyTorch, JAX, C++) be
checked against it array by array. :func:`record` runs one step (forward, mean softmax
cross-entropy, backward with the input gradient) and keeps

    input, labels, loss, grad_input, param/<layer>/<name>, output/<layer>, grad/<layer>/<name>

with ``<layer>`` the qualified names of ``net.named_layers()`` (a DenseConcat branch's layers are
"3.0", "3.1", ...), plus a JSON ``manifest``: the layers in forward order with their type,
configuration and input/output descriptors, the conventions, specref's version and per array its
meaning. Spectral outputs are the complex half-spectrum values; their spatial size is in the
manifest. :func:`compare` checks a candidate file against a golden one; validation/README.md
documents the format for people who do not read Python.

Tolerance, per array a (golden) and b (candidate): passes when max|a - b| <= atol + rtol max|a|
(|.| the complex magnitude). The relative error reported is max|a - b| / max|a|. Spectral arrays
are compared on the part a real map defines: on the self-conjugate columns (DC and, Q even,
Nyquist) both sides are first replaced by their Hermitian part (x[p] + conj(x[-p mod P])) / 2,
which is all irfft2 reads there.
"""
from __future__ import annotations

import argparse
import json
import zipfile

import numpy as np

from . import __version__, nets
from .backend import to_numpy
from .init import lsuv
from .layers.base import Layer
from .layers.loss import SoftmaxCrossEntropy
from .layers.sequential import Sequential
from .spectrum import Spectrum
from .tree import leaf_layers

FORMAT = "specref-golden/1"
# Manifest fields that must agree between golden and candidate (the rest is description).
IDENTITY_FIELDS = ("format", "net", "layers", "conventions")
COMPARISON_RULE = ("per array: pass when max|a - b| <= atol + rtol * max|a| (a golden, b candidate, |.| complex "
                   "magnitude); spectral arrays first have their DC column (and Nyquist column when Q is even) "
                   "replaced by its Hermitian part (x[p] + conj(x[-p mod P])) / 2 on both sides, the part a "
                   "real map defines (irfft2 ignores the rest)")
# Layer attributes that are implementation state, not configuration.
_NOT_CONFIG = {"params", "grads", "cache", "training", "storage", "mask_source", "mask_in_backward",
               "fn", "derivative", "derivative_of", "zero_only_at_zero", "downsample", "layers"}


class GoldenError(ValueError):
    """A golden or candidate file that cannot be read or used; the message names the file and why."""


def conventions(net):
    """The conventions every value of a golden file of ``net`` follows (the paper is silent on them)."""
    norms = sorted({layer.fft_norm for _, layer in leaf_layers(net) if hasattr(layer, "fft_norm")})
    modes = sorted({layer.mode for _, layer in leaf_layers(net) if hasattr(layer, "mode")})
    return {
        "fft_norm": norms[0] if len(norms) == 1 else norms or None,
        "fft_norm_rule": "numpy.fft norm of feature-map transforms: 'ortho' X = 1/sqrt(PQ) sum x e^{-i..}, "
                         "'backward' no factor, 'forward' 1/(PQ); kernels are always transformed unnormalized",
        "half_spectrum": "rfft2 over the last two axes: complex (B, C, P, Q//2+1), row p = frequency p "
                         "(numpy order, p >= P/2 stands for p - P), column h = frequency h along the width; "
                         "the spatial size (P, Q) is in the array's manifest entry ('size')",
        "convolution": "true convolution (kernel flipped, as scipy.signal.convolve2d): y[i, j] = sum x[i-p, j-q] "
                       "w[p, q]; Y = sum_c X_c K_{o,c}, K = unnormalized rfft2 of w zero-padded at the end to "
                       "(P, Q); a spatial input is zero-padded at the end to P = M + k - 1, Q = N + k - 1 "
                       "(linear convolution), a spectral input is convolved circularly at its own size",
        "bias": "bias[o] is added to the DC bin (0, 0) only, times dc_scale = sqrt(PQ) ('ortho'), PQ ('backward') "
                "or 1 ('forward'): the spectrum of the constant bias[o] added in space",
        "threshold": "Y_hat = Y where |Y| > beta (strictly, complex magnitude), else 0; the gradient passes "
                     "where |Y| > beta and is 0 elsewhere (subgradient 0 at the kink)",
        "activation": "spectral: as each activation layer's entry says (ComplexTanh, the paper's: f(a + ib) = "
                      "tanh(a) + i tanh(b)); spatial layers as named in their type",
        "pooling": modes[0] if len(modes) == 1 else modes or None,
        "pooling_rule": "SpectralDownsample(f): output size ceil(P/f) x ceil(Q/f), values scaled by "
                        "sqrt(P'Q'/(PQ)) under 'ortho' (spatial values kept); 'alias' equals x[::f, ::f] in space "
                        "(output frequency sums its f aliases); 'crop' keeps the ceil(P/f) lowest frequencies and, "
                        "for an even output size, sums the two input frequencies +-P'/2 into the output's "
                        "Nyquist bin (Nyquist fold)",
        "complex_gradient": "dL/dRe(z) + i dL/dIm(z) with respect to the stored half-spectrum values "
                            "(PyTorch and JAX convention); the adjoint of a product by K multiplies by conj(K)",
        "dense_concat": "a DenseConcat at name N concatenates its input and its branch's output (layers N.0, N.1, "
                        "...) along channels; output/N.i are the branch's maps",
        "loss": "mean over the batch of softmax cross-entropy of the last layer's output (logits) and labels",
        "mode": "training mode (batch norm, where present, uses the batch's statistics)",
    }


def record(net, x, labels):
    """(arrays, manifest) of one step of ``net`` (a Sequential) on ``x`` and integer ``labels``;
    every array is a host copy. ``net``'s caches are cleared afterwards."""
    if not isinstance(net, Sequential):
        raise TypeError(f"net must be a Sequential (a registry network), got {type(net).__name__}")
    named = net.named_layers()
    containers = _containers(net)
    outputs, entries = {}, []

    def recording(name, layer, forward):
        def forward_and_keep(inputs):
            y = forward(inputs)
            # copied now: a later layer may write into this memory (scratch buffers, in-place steps)
            outputs[name] = np.array(to_numpy(y.values if isinstance(y, Spectrum) else y), copy=True)
            entries.append(_layer_entry(name, layer, inputs, y, containers))
            return y
        return forward_and_keep

    for name, layer in named:
        layer.forward = recording(name, layer, layer.forward)
    try:
        net.train()
        loss_layer = SoftmaxCrossEntropy()
        loss = loss_layer.forward(net.forward(x), labels)
        grad_input = net.backward(loss_layer.backward())
    finally:
        for _, layer in named:
            del layer.forward                   # back to the class's method
        net.clear_cache()
    order = [name for name, _ in named]
    entries.sort(key=lambda entry: order.index(entry["name"]))
    arrays = {"input": np.array(to_numpy(x)), "labels": np.array(to_numpy(labels)),
              "loss": np.array(to_numpy(loss), dtype=np.float64), "grad_input": np.array(to_numpy(grad_input))}
    for name, layer in named:
        for key, value in layer.params.items():
            arrays[f"param/{name}/{key}"] = np.array(to_numpy(value))
        arrays[f"output/{name}"] = outputs[name]
        for key in layer.params:
            arrays[f"grad/{name}/{key}"] = np.array(to_numpy(layer.grads[key]))
    manifest = {"format": FORMAT, "specref_version": __version__, "net": _net_identity(net),
                "layers": entries, "conventions": conventions(net), "comparison": COMPARISON_RULE,
                "arrays": _describe_arrays(arrays, entries)}
    return arrays, manifest


def _containers(net, prefix=""):
    """{qualified name of a leaf: type name of the Sequential subclass holding it}, nested only."""
    found = {}
    for i, layer in enumerate(net.layers):
        name = f"{prefix}{i}"
        if isinstance(layer, Sequential):
            found.update({leaf: type(layer).__name__ for leaf, _ in layer.named_layers(prefix=f"{name}.")})
            found.update(_containers(layer, prefix=f"{name}."))
    return found


def _layer_entry(name, layer, inputs, output, containers):
    entry = {"name": name, "type": type(layer).__name__, "config": layer_config(layer),
             "params": {key: list(value.shape) for key, value in layer.params.items()},
             "input": _map_descriptor(inputs), "output": _map_descriptor(output)}
    if name in containers:
        entry["inside"] = {"name": name.rsplit(".", 1)[0], "type": containers[name]}
    return entry


def layer_config(layer: Layer):
    """The layer's configuration: its public attributes that are numbers, strings or tuples of them."""
    config = {}
    for key, value in vars(layer).items():
        if key.startswith("_") or key in _NOT_CONFIG:
            continue
        if isinstance(value, np.dtype):
            value = value.name
        if isinstance(value, tuple) and all(isinstance(v, (int, float, str)) for v in value):
            value = list(value)
        if value is None or isinstance(value, (bool, int, float, str, list)):
            config[key] = value
    if "bias" in getattr(layer, "params", {}) or hasattr(layer, "in_channels") or hasattr(layer, "in_features"):
        config["bias"] = "bias" in layer.params
    return config


def _map_descriptor(value):
    if isinstance(value, Spectrum):
        return {"domain": "spectral", "shape": list(value.shape), "size": list(value.size), "norm": value.norm}
    return {"domain": "spatial", "shape": list(value.shape)}


def _net_identity(net):
    if isinstance(net, nets.Network):
        return {"name": net.name, **{k: v for k, v in net.config.items() if k not in ("name", "storage")}}
    return {"name": None, "type": type(net).__name__}


def _describe_arrays(arrays, entries):
    by_name = {entry["name"]: entry for entry in entries}
    meanings = {"input": "the input batch (B, C, H, W), real", "labels": "class indices (B,), int64",
                "loss": "mean softmax cross-entropy, a 0-d float64", "grad_input": "dL/d input, real, input's shape"}
    described = {}
    for key, value in arrays.items():
        kind, _, rest = key.partition("/")
        layer, _, pname = rest.partition("/")
        entry = {"shape": list(value.shape), "dtype": value.dtype.name}
        if kind == "param":
            entry["meaning"] = f"parameter {pname!r} of layer {layer} ({by_name[layer]['type']})"
        elif kind == "grad":
            entry["meaning"] = f"dL/d {pname!r} of layer {layer} ({by_name[layer]['type']})"
        elif kind == "output":
            out = by_name[layer]["output"]
            entry["meaning"] = f"output of layer {layer} ({by_name[layer]['type']}), {out['domain']}"
            if out["domain"] == "spectral":
                entry.update(spectral=True, size=out["size"], norm=out["norm"])
        else:
            entry["meaning"] = meanings[key]
        described[key] = entry
    return described


def export(name, *, beta=nets.DEFAULT_BETA, seed=0, batch=4, dtype="float64", init="default",
           dataset=None, input_shape=(3, 32, 32)):
    """(arrays, manifest) of registry net ``name`` on the first test batch of ``dataset`` (a
    :class:`specref.data.Dataset`) or, without one, a Gaussian batch (N(0, 1) pixels, seed ``seed``)."""
    if batch < 1:
        raise ValueError(f"batch must be at least 1, got {batch}")
    if init not in ("default", "lsuv"):
        raise ValueError(f"init must be 'default' or 'lsuv', got {init!r}")
    if dataset is not None:
        x, labels = next(iter(dataset.batches("test", batch, shuffle=False, augment=False)))
        input_shape, classes, source = dataset.input_shape, dataset.num_classes, f"{dataset.name} test[0:{len(labels)}]"
    else:
        rng = np.random.default_rng(seed)
        classes, source = 10, f"gaussian N(0, 1), seed {seed}"
        x, labels = rng.standard_normal((batch, *input_shape)), rng.integers(0, classes, batch)
    net = nets.build(name, beta=beta, dtype=dtype, seed=seed, input_shape=tuple(input_shape), num_classes=classes)
    x, labels = np.asarray(x, dtype=dtype), np.asarray(labels, dtype=np.int64)
    if init == "lsuv":
        lsuv(net, x)
    arrays, manifest = record(net, x, labels)
    manifest["net"]["init"] = init if init == "default" else "lsuv on the input batch (unit output RMS per layer)"
    manifest["batch"] = {"source": source, "size": int(len(labels))}
    return arrays, manifest


def write(path, arrays, manifest):
    """One uncompressed .npz at ``path`` (no suffix added): the arrays under their keys, the
    manifest as a 0-d unicode array."""
    with open(path, "wb") as f:
        np.savez(f, manifest=np.array(json.dumps(manifest, indent=1)), **arrays)


def read(path, role="golden"):
    """(arrays, manifest) of a golden or candidate file; GoldenError names what is wrong."""
    try:
        with np.load(path, allow_pickle=False) as saved:
            arrays = {key: saved[key] for key in saved.files}
    except FileNotFoundError:
        raise GoldenError(f"{role} file {path!r} does not exist") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise GoldenError(f"{role} file {path!r} is not a readable .npz of plain arrays ({exc})") from None
    if not isinstance(arrays, dict) or "manifest" not in arrays:
        raise GoldenError(f"{role} file {path!r} has no 'manifest' entry (expected a JSON string, see "
                          "validation/README.md)")
    raw = arrays.pop("manifest")
    text = bytes(raw.astype(np.uint8)).decode("utf-8") if raw.dtype == np.uint8 else str(raw)
    try:
        manifest = json.loads(text)
    except json.JSONDecodeError as exc:
        raise GoldenError(f"{role} file {path!r}: 'manifest' is not valid JSON ({exc})") from None
    if not isinstance(manifest, dict):
        raise GoldenError(f"{role} file {path!r}: 'manifest' must be a JSON object, got {type(manifest).__name__}")
    return arrays, manifest


def add_arguments(subparsers, handler):
    """The ``export``, ``compare`` and ``torch`` subcommands of ``specref validate``."""
    export_parser = subparsers.add_parser("export", help="one training step of a net, every value, as golden .npz")
    export_parser.add_argument("--net", required=True, help="registry name, e.g. spec-lenet")
    export_parser.add_argument("--beta", type=float, default=None, help=f"threshold (default {nets.DEFAULT_BETA:g})")
    export_parser.add_argument("--seed", type=int, default=0, help="weights and (without --data) the Gaussian batch")
    export_parser.add_argument("--batch", type=int, default=4)
    export_parser.add_argument("--dtype", choices=("float32", "float64"), default="float64")
    export_parser.add_argument("--init", choices=("default", "lsuv"), default="default",
                               help="lsuv: rescale each layer to unit output RMS on the exported batch")
    export_parser.add_argument("--data", default=None, help="digits or cifar10: its first test batch "
                               "(default: a Gaussian batch, N(0, 1) pixels, uniform labels over 10 classes)")
    export_parser.add_argument("--data-dir", default=None)
    export_parser.add_argument("--input-shape", type=_shape, default=None,
                               help="C,H,W of the Gaussian batch (default 3,32,32; not with --data)")
    export_parser.add_argument("--out", required=True, help="the .npz to write")
    export_parser.set_defaults(handler=handler)
    compare_parser = subparsers.add_parser("compare", help="compare a candidate .npz with a golden one")
    compare_parser.add_argument("golden")
    compare_parser.add_argument("candidate")
    compare_parser.add_argument("--rtol", type=float, default=1e-6)
    compare_parser.add_argument("--atol", type=float, default=1e-9)
    compare_parser.add_argument("--json", action="store_true", help="print one JSON object")
    compare_parser.set_defaults(handler=handler)
    # Its logic is specref.golden_torch, which reads files through this module: the command line
    # dispatches to it (importing it here would make an import cycle).
    torch_parser = subparsers.add_parser("torch", help="recompute a golden file with the PyTorch implementation "
                                         "(specref.torch_spectral) and compare; needs PyTorch")
    torch_parser.add_argument("golden")
    torch_parser.add_argument("--rtol", type=float, default=1e-6)
    torch_parser.add_argument("--atol", type=float, default=1e-9)
    torch_parser.add_argument("--json", action="store_true", help="print one JSON object")
    torch_parser.add_argument("--out", default=None, help="also write the PyTorch candidate .npz here")
    torch_parser.set_defaults(handler=handler)


def _shape(text):
    try:
        shape = tuple(int(n) for n in text.split(","))
    except ValueError:
        shape = ()
    if len(shape) != 3 or min(shape) < 1:
        raise argparse.ArgumentTypeError(f"expected C,H,W (three positive integers), got {text!r}")
    return shape
