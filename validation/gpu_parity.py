"""Stage 2 of validation/gpu_check.py: one Spec-net training step on NumPy and on the device.

The net is built on the host, its weights scaled by LSUV (:func:`specref.init.lsuv`, unit RMS
per layer on a seeded batch of 16 images) at a beta that keeps entries in every block, and copied
to the device (:func:`device_copy`): at the default init and beta 1.0, Spec-VGG-16's blocks 3 to
13 keep nothing, 27 of its 30 gradients are exactly zero and a device error in any of those
layers is invisible. Compared per tensor, max|a - b| / max|a|: the logits, the loss and every
parameter gradient; reported with them the kept density of every block on both sides.

Pass/fail is decided on float64 (tolerance 1e-9), where rounding cannot flip the threshold's
mask, and the stage fails where a block keeps nothing. float32 is reported, not judged: an entry
with |Y| within rounding of beta can legitimately flip between backends and move everything after
it, so its errors come with the number of flipped mask entries.
"""
from __future__ import annotations

import copy

import numpy as np

from validation.measure import relative_error

DECIDING_DTYPE, TOLERANCE = "float64", 1e-9
FLOAT32_REFERENCE = 1e-4          # the float32 error expected where no mask entry flips
LSUV_BATCH = 16


def stage_parity(dev, args, remaining, result, save):
    result.update(net=f"spec-{dev.net}", beta=args.beta, init="lsuv", seed=0, batch=dev.parity_batch,
                  measure="max|a - b| / max|a| per tensor", reference="numpy", candidate=dev.mode,
                  decided_on=DECIDING_DTYPE, tolerance=TOLERANCE, float32_reference=FLOAT32_REFERENCE)
    for dtype in (DECIDING_DTYPE, "float32"):
        print(f"[gpu_check]   parity {dtype} ...", flush=True)
        try:
            result[dtype] = parity_run(dev, np.dtype(dtype), args.beta)
        except Exception as exc:  # noqa: BLE001 (recorded; the other dtype still runs)
            result[dtype] = {"error": f"{type(exc).__name__}: {exc}"}
        save()
    problems = [f"{dtype}: {run['error']}" for dtype, run in result.items()
                if dtype in (DECIDING_DTYPE, "float32") and "error" in run]
    deciding = result[DECIDING_DTYPE]
    if "error" not in deciding:
        worst = deciding["worst"]
        if not worst["relative_error"] <= TOLERANCE:
            problems.append(f"{DECIDING_DTYPE}: {worst['name']} differs by {worst['relative_error']:.2e} "
                            f"(tolerance {TOLERANCE:g})")
        if deciding["empty_blocks"]:
            problems.append(f"blocks keeping nothing at beta {args.beta:g}: {deciding['empty_blocks']} "
                            "(their layers are not compared)")
    result["problems"] = problems
    result["status"] = "failed" if problems else "ok"


def parity_run(dev, dtype, beta):
    """Errors, kept densities and mask flips of one step in ``dtype`` on both sides."""
    x, y = host_batch(dev.parity_batch, dtype, seed=0)
    template = lsuv_template(dev, dtype, beta)
    host, device = copy.deepcopy(template), device_copy(dev, template)
    ref = step_values(host, x, y)
    got = step_values(device, dev.backend.asarray(x), dev.backend.asarray(y))
    errors = {"logits": relative_error(got[0], ref[0]), "loss": abs(got[1] - ref[1]) / abs(ref[1])}
    errors.update({f"grad/{k}": relative_error(got[2][k], ref[2][k]) for k in ref[2]})
    name = max(errors, key=lambda k: (np.nan_to_num(errors[k], nan=np.inf), k))
    densities = kept_densities(host, device)
    return {"worst": {"name": name, "relative_error": errors[name]}, "loss": [ref[1], got[1]],
            "mask_flips": mask_flips(host, device), "kept_density": densities,
            "empty_blocks": [block for block, pair in densities.items() if not pair[0]],
            "zero_gradients": [k for k, g in ref[2].items() if not np.any(g)], "errors": errors}


def lsuv_template(dev, dtype, beta):
    """The host net of this check, LSUV-scaled once per (dtype, beta) and kept on ``dev``."""
    from specref import nets
    from specref.init import lsuv

    key = (np.dtype(dtype).name, float(beta))
    if key not in dev.templates:
        net = nets.build(f"spec-{dev.net}", beta=beta, dtype=dtype, seed=0)
        lsuv(net, host_batch(LSUV_BATCH, dtype, seed=1)[0])
        dev.templates[key] = net
    return dev.templates[key]


def device_copy(dev, template):
    """A copy of the host net ``template`` on the device (the net the candidate side runs)."""
    return dev.backend.move(copy.deepcopy(template))


def host_batch(batch, dtype, seed):
    """A seeded batch of 32 x 32 RGB images and labels, on the host."""
    rng = np.random.default_rng(seed)
    return rng.standard_normal((batch, 3, 32, 32)).astype(dtype), rng.integers(0, 10, batch)


def step_values(net, x, y):
    """(logits, loss as a float, gradients) of one forward and backward."""
    from specref.layers.loss import SoftmaxCrossEntropy

    loss = SoftmaxCrossEntropy()
    logits = net.forward(x)
    value = float(loss.forward(logits, y))
    net.backward(loss.backward())
    return logits, value, net.gradients()


def kept_densities(host, device):
    """{block: [host density, device density]} of every thresholded block (after a step)."""
    from specref.memory import block_densities

    return {block: [a, b] for (block, _, a), (_, _, b) in zip(block_densities(host), block_densities(device))}


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
