"""``specref validate torch``: recompute a golden file with the PyTorch implementation, compare.

    report = validate("golden.npz")          # golden_compare's report; report["ok"]

The net is rebuilt from the manifest (registry name and build arguments), its parameters loaded
from ``param/<layer>/<name>``, converted with :func:`specref.torch_bridge.convert` (Spec layers:
:mod:`specref.torch_spectral`, torch.fft and autograd), and run on the file's input and labels:
forward (each leaf's output recorded by a hook), mean softmax cross-entropy, autograd backward
with the input's gradient. The candidate holds the same keys as the golden file. Its manifest is
the golden one with ``layers`` and ``conventions`` rebuilt: each layer's type and configuration
from the rebuilt net, its parameter shapes and input/output descriptors from what PyTorch ran,
so a rebuild that differs from the golden net shows as manifest differences. Complex outputs are
stored as they are: torch's gradients already follow dL/dRe + i dL/dIm (see torch_spectral).
"""
from __future__ import annotations

import copy
import json
import sys

import numpy as np

from . import golden, golden_compare, nets
from .layers.sequential import Sequential
from .torch_bridge import convert, gradients, import_torch

# Manifest ``net`` fields that are build arguments of nets.build under the same name.
_BUILD_FIELDS = ("beta", "dtype", "seed", "input_shape", "num_classes", "activation", "batch_norm", "pooling",
                 "fft_norm")
_DESCRIPTIVE_FIELDS = ("name", "init")


def rebuild(manifest, path="golden"):
    """The registry net the manifest's ``net`` entry describes (weights as drawn, not loaded)."""
    described = manifest.get("net") or {}
    name = described.get("name")
    if not name:
        raise golden.GoldenError(f"golden file {path!r}: manifest.net has no registry name, so the net "
                                 "cannot be rebuilt (only files of registry nets can be)")
    options = {key: value for key, value in described.items() if key not in _DESCRIPTIVE_FIELDS}
    if isinstance(options.get("beta"), list):
        raise golden.GoldenError(f"golden file {path!r}: its layers have several betas {options['beta']}; "
                                 "nets.build takes one")
    for key in ("beta", "fft_norm"):
        if options.get(key) is None:
            options.pop(key, None)                # a spatial net: no threshold, no FFT
    if "input_shape" in options:
        options["input_shape"] = tuple(options["input_shape"])
    try:
        return nets.build(name, **options)
    except (TypeError, ValueError) as exc:
        raise golden.GoldenError(f"golden file {path!r}: cannot rebuild {name!r} from manifest.net ({exc})") from None


def load_parameters(net, arrays, path="golden"):
    """Copy every ``param/<layer>/<name>`` of the file into ``net``'s parameters."""
    for name, layer in net.named_layers():
        for key, value in layer.params.items():
            stored = arrays.get(f"param/{name}/{key}")
            if stored is None or stored.shape != value.shape:
                got = "missing" if stored is None else f"shape {list(stored.shape)}"
                raise golden.GoldenError(f"golden file {path!r}: param/{name}/{key} is {got}, the rebuilt "
                                         f"net needs shape {list(value.shape)}")
            value[...] = stored


def candidate(arrays, manifest, path="golden"):
    """(arrays, manifest) of the PyTorch implementation's step on the golden file's input, labels
    and parameters, in the golden file's format."""
    torch = import_torch()
    from .torch_spectral import Half

    for key in ("input", "labels"):
        if key not in arrays:
            raise golden.GoldenError(f"golden file {path!r} has no {key!r} array")
    net = rebuild(manifest, path)
    load_parameters(net, arrays, path)
    model, leaves = convert(net)
    model.train()
    outputs, descriptors = {}, {}

    def describe(value):
        if isinstance(value, Half):
            return {"domain": "spectral", "shape": list(value.values.shape), "size": list(value.size),
                    "norm": value.norm}
        return {"domain": "spatial", "shape": list(value.shape)}

    def recorder(name):
        def hook(module, inputs, output):
            tensor = output.values if isinstance(output, Half) else output
            outputs[name] = tensor.detach().cpu().numpy().copy()
            descriptors[name] = (describe(inputs[0]), describe(output))
        return hook

    handles = [leaf.module.register_forward_hook(recorder(leaf.name)) for leaf in leaves]
    try:
        x = torch.tensor(arrays["input"], requires_grad=True)
        logits = model(x)
        loss = torch.nn.functional.cross_entropy(logits, torch.from_numpy(arrays["labels"].astype(np.int64)))
        loss.backward()
    finally:
        for handle in handles:
            handle.remove()
    result = {"input": arrays["input"].copy(), "labels": arrays["labels"].copy(),
              "loss": np.array(loss.item(), dtype=np.float64), "grad_input": x.grad.detach().cpu().numpy()}
    grads = gradients(leaves)
    for leaf in leaves:
        for key, (param, flipped) in leaf.params.items():
            value = param.detach().cpu().numpy()
            result[f"param/{leaf.name}/{key}"] = value[..., ::-1, ::-1].copy() if flipped else value.copy()
            result[f"grad/{leaf.name}/{key}"] = grads[f"{leaf.name}.{key}"]
        result[f"output/{leaf.name}"] = outputs[leaf.name]
    return result, _manifest(manifest, net, leaves, descriptors, torch.__version__)


def _manifest(golden_manifest, net, leaves, descriptors, torch_version):
    parents = _parents(net)
    layers = []
    for leaf in leaves:
        entry = {"name": leaf.name, "type": type(leaf.layer).__name__, "config": golden.layer_config(leaf.layer),
                 "params": {key: list(param.shape) for key, (param, _) in leaf.params.items()},
                 "input": descriptors[leaf.name][0], "output": descriptors[leaf.name][1]}
        if leaf.name in parents:
            entry["inside"] = parents[leaf.name]
        layers.append(entry)
    manifest = copy.deepcopy(golden_manifest)
    manifest.update(layers=layers, conventions=golden.conventions(net),
                    implementation=f"specref.torch_spectral on PyTorch {torch_version} (torch.fft, autograd)")
    return manifest


def _parents(net, prefix=""):
    """{leaf name: {"name", "type"} of the nested Sequential directly holding it}."""
    found = {}
    for i, layer in enumerate(net):
        name = f"{prefix}{i}"
        if isinstance(layer, Sequential):
            for leaf, _ in layer.named_layers(prefix=f"{name}."):
                found[leaf] = {"name": name, "type": type(layer).__name__}
            found.update(_parents(layer, prefix=f"{name}."))
    return found


def validate(golden_path, rtol=1e-6, atol=1e-9, out=None):
    """golden_compare's report of the PyTorch candidate against ``golden_path``; the candidate is
    written to ``out`` when given."""
    import_torch()
    arrays, manifest = golden.read(golden_path, "golden")
    candidate_arrays, candidate_manifest = candidate(arrays, manifest, golden_path)
    if out is not None:
        golden.write(out, candidate_arrays, candidate_manifest)
    report = golden_compare.compare(arrays, manifest, candidate_arrays, candidate_manifest, rtol=rtol, atol=atol)
    report.update(golden=str(golden_path), candidate=str(out) if out else "PyTorch (specref.torch_spectral)")
    return report


def command(args):
    """``specref validate torch``: the report; exit status 0 only when every array matches."""
    try:
        report = validate(args.golden, rtol=args.rtol, atol=args.atol, out=args.out)
    except ModuleNotFoundError as exc:
        if exc.name != "torch":
            raise
        print(f"specref validate torch: error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(golden_compare.json_safe(report)) if args.json else golden_compare.format_report(report))
    return 0 if report["ok"] else 1
