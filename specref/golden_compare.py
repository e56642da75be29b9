"""Comparing a candidate golden file with specref's: per array the error, the first layer that departs.

    report = compare_files("golden.npz", "candidate.npz", rtol=1e-6, atol=1e-9)
    print(format_report(report)); report["ok"]

Per array, a golden and b candidate (|.| the complex magnitude):

    passes  <=>  max|a - b| <= atol + rtol * max|a|,      relative error = max|a - b| / max|a|

A spectral array (a layer's output in the half-spectrum layout) is compared on the part a real map
defines: on the self-conjugate columns (DC, and Nyquist when Q is even) bins p and -p mod P stand
for one conjugate pair of the full spectrum and irfft2 reads only their Hermitian part, so both
sides are replaced there by (x[p] + conj(x[-p mod P])) / 2 before comparing. Arrays that cannot be
compared (missing, extra, another shape or kind) and manifest fields that differ are reported as
problems, by name; the file fails then too.
"""
from __future__ import annotations

import math

import numpy as np

from .golden import COMPARISON_RULE, IDENTITY_FIELDS, read

MAX_MANIFEST_DIFFERENCES = 12


def hermitian_columns(values, size):
    """``values`` (..., P, Q//2+1) with the DC (and, Q even, Nyquist) column replaced by its
    Hermitian part (x[p] + conj(x[-p mod P])) / 2: what irfft2 reads of those columns."""
    p, q = size
    out = np.array(values, dtype=np.complex128, copy=True)
    mirror = (-np.arange(p)) % p
    for column in [0] + ([q // 2] if q % 2 == 0 else []):
        col = out[..., :, column]
        out[..., :, column] = (col + np.conj(col[..., mirror])) / 2
    return out


def compare_files(golden_path, candidate_path, rtol=1e-6, atol=1e-9):
    """:func:`compare` of two files; GoldenError when one cannot be read."""
    golden, golden_manifest = read(golden_path, "golden")
    candidate, candidate_manifest = read(candidate_path, "candidate")
    report = compare(golden, golden_manifest, candidate, candidate_manifest, rtol=rtol, atol=atol)
    report.update(golden=str(golden_path), candidate=str(candidate_path))
    return report


def compare(golden, golden_manifest, candidate, candidate_manifest, rtol=1e-6, atol=1e-9):
    """A report dict: ``ok``, ``problems`` (structural), ``manifest_differences``, ``arrays``
    (forward order: key, layer, relative_error, max_abs_error, passed, spectral) and
    ``first_departure`` (the first failing arrays in computation order, forward then backward,
    with their layer and phase; see :func:`_first_departure`; None when all pass)."""
    for name, value in (("rtol", rtol), ("atol", atol)):
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
            raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    described = golden_manifest.get("arrays", {})
    layers = golden_manifest.get("layers", [])
    order = _forward_order(golden, layers)
    problems = [f"missing array {key!r} (expected shape {list(golden[key].shape)}, {golden[key].dtype})"
                for key in order if key not in candidate]
    problems += [f"extra array {key!r} (shape {list(candidate[key].shape)}): the golden file has no such array"
                 for key in sorted(set(candidate) - set(golden))]
    types = {entry["name"]: entry.get("type") for entry in layers}
    rows = []
    for key in order:
        if key not in candidate:
            continue
        problem = _structure_problem(key, golden[key], candidate[key])
        if problem:
            problems.append(problem)
            continue
        size = described.get(key, {}).get("size") if described.get(key, {}).get("spectral") else None
        layer = _layer_of(key)
        rows.append({"key": key, "layer": layer, "type": types.get(layer), "spectral": size is not None,
                     **_errors(golden[key], candidate[key], size, rtol, atol)})
    differences = manifest_differences(golden_manifest, candidate_manifest)
    first = _first_departure(rows, layers)
    ok = not problems and not differences and all(row["passed"] for row in rows)
    return {"ok": ok, "rtol": rtol, "atol": atol, "rule": COMPARISON_RULE, "problems": problems,
            "manifest_differences": differences, "first_departure": first, "arrays": rows,
            "net": golden_manifest.get("net", {}).get("name"),
            "golden_version": golden_manifest.get("specref_version"),
            "failed": sum(not row["passed"] for row in rows), "compared": len(rows)}


def _forward_order(golden, layers):
    """input, labels, then per layer its parameters, output and gradients, then loss, grad_input."""
    order = [key for key in ("input", "labels") if key in golden]
    for entry in layers:
        name = entry["name"]
        order += [f"param/{name}/{p}" for p in entry.get("params", {})]
        order.append(f"output/{name}")
        order += [f"grad/{name}/{p}" for p in entry.get("params", {})]
    order += [key for key in ("loss", "grad_input") if key in golden]
    order = [key for key in order if key in golden]
    return order + sorted(set(golden) - set(order))


def _layer_of(key):
    parts = key.split("/")
    return parts[1] if len(parts) >= 2 and parts[0] in ("param", "output", "grad") else None


def _kind(array):
    if np.issubdtype(array.dtype, np.complexfloating):
        return "complex"
    if np.issubdtype(array.dtype, np.floating):
        return "real floating"
    if np.issubdtype(array.dtype, np.integer):
        return "integer"
    return f"non-numeric ({array.dtype})"


def _structure_problem(key, expected, got):
    if tuple(got.shape) != tuple(expected.shape):
        return f"array {key!r}: shape {list(got.shape)}, expected {list(expected.shape)}"
    if _kind(got) != _kind(expected):
        return f"array {key!r}: dtype {got.dtype} ({_kind(got)}), expected {_kind(expected)} like {expected.dtype}"
    return None


def _errors(expected, got, size, rtol, atol):
    if size is not None:
        expected, got = hermitian_columns(expected, size), hermitian_columns(got, size)
    kind = np.complex128 if np.iscomplexobj(expected) else np.float64
    a, b = np.asarray(expected, dtype=kind), np.asarray(got, dtype=kind)
    if a.size == 0:
        return {"relative_error": 0.0, "max_abs_error": 0.0, "passed": True}
    difference = np.abs(a - b)
    error = float(np.nan if np.isnan(difference).any() else difference.max())
    scale = float(np.abs(a).max())
    relative = error / scale if scale > 0 else (0.0 if error == 0 else math.inf)
    return {"relative_error": relative, "max_abs_error": error, "passed": bool(error <= atol + rtol * scale)}


def _first_departure(rows, layers):
    """The first failing array in the order a training step computes them: inputs, each layer's
    parameters and output (forward), the loss, then each layer's gradients from the last layer
    back (backward), then grad_input. A forward error is pinned to the layer whose output first
    departs, a backward error to the last parameterised layer whose gradient departs."""
    failed = {row["key"]: row for row in rows if not row["passed"]}
    if not failed:
        return None
    types = {entry["name"]: entry.get("type") for entry in layers}
    for phase, keys in _computation_order(layers):
        mine = [failed[key] for key in keys if key in failed]
        if mine:
            layer = mine[0]["layer"]
            return {"layer": layer, "type": types.get(layer), "phase": phase, "arrays": [row["key"] for row in mine],
                    "relative_error": max(row["relative_error"] for row in mine)}
    rest = list(failed.values())        # arrays the manifest's layers do not name
    return {"layer": None, "type": None, "phase": None, "arrays": [row["key"] for row in rest],
            "relative_error": max(row["relative_error"] for row in rest)}


def _computation_order(layers):
    """(phase, keys) groups in computation order; one group per layer and phase."""
    groups = [("forward", ["input", "labels"])]
    for entry in layers:
        name = entry["name"]
        groups.append(("forward", [*(f"param/{name}/{p}" for p in entry.get("params", {})), f"output/{name}"]))
    groups.append(("forward", ["loss"]))
    for entry in reversed(layers):
        groups.append(("backward", [f"grad/{entry['name']}/{p}" for p in entry.get("params", {})]))
    groups.append(("backward", ["grad_input"]))
    return groups


def manifest_differences(golden, candidate):
    """Readable differences between the fields that must agree (:data:`IDENTITY_FIELDS`)."""
    found = []
    for field in IDENTITY_FIELDS:
        if field not in candidate:
            found.append(f"manifest field {field!r} is missing from the candidate")
        else:
            _diff(golden.get(field), candidate[field], field, found)
    if len(found) > MAX_MANIFEST_DIFFERENCES:
        found = found[:MAX_MANIFEST_DIFFERENCES] + [f"... and {len(found) - MAX_MANIFEST_DIFFERENCES} more"]
    return found


def _diff(expected, got, path, found):
    if isinstance(expected, dict) and isinstance(got, dict):
        for key in sorted(set(expected) | set(got), key=str):
            if key not in got:
                found.append(f"manifest {path}.{key} is missing from the candidate (golden: {expected[key]!r})")
            elif key not in expected:
                found.append(f"manifest {path}.{key} = {got[key]!r} is not in the golden file")
            else:
                _diff(expected[key], got[key], f"{path}.{key}", found)
    elif isinstance(expected, list) and isinstance(got, list) and len(expected) == len(got):
        for i, (e, g) in enumerate(zip(expected, got)):
            label = e.get("name", i) if isinstance(e, dict) else i
            _diff(e, g, f"{path}[{label}]", found)
    elif isinstance(expected, list) and isinstance(got, list):
        found.append(f"manifest {path}: the candidate has {len(got)} entries, the golden file {len(expected)}")
    elif expected != got:
        found.append(f"manifest {path}: candidate {got!r}, golden {expected!r}")


def format_report(report):
    """The report as text: problems, one line per array (forward order), the verdict."""
    lines = [f"golden {report.get('golden', '?')} ({report['net']}, specref {report['golden_version']}) "
             f"vs candidate {report.get('candidate', '?')}",
             f"rule: {report['rule']}; rtol {report['rtol']:g}, atol {report['atol']:g}"]
    for title, items in (("problems", report["problems"]), ("manifest differences", report["manifest_differences"])):
        if items:
            lines.append(f"{title} ({len(items)}):")
            lines += [f"  {item}" for item in items]
    width = max([len(row["key"]) for row in report["arrays"]] + [5]) + 2
    lines.append(f"{'array':<{width}} {'layer type':<20} {'rel. error':>10} {'max|a-b|':>10}  status")
    for row in report["arrays"]:
        name = row["key"] + (" ~" if row["spectral"] else "")
        lines.append(f"{name:<{width}} {row['type'] or '':<20} {row['relative_error']:>10.3g} "
                     f"{row['max_abs_error']:>10.3g}  {'ok' if row['passed'] else 'DEPARTS'}")
    lines.append("~ spectral: compared with the DC and Nyquist columns reduced to their Hermitian part")
    first = report["first_departure"]
    if report["ok"]:
        lines.append(f"PASSED: all {report['compared']} arrays match")
        return "\n".join(lines)
    verdict = [f"FAILED: {report['failed']} of {report['compared']} compared arrays depart"]
    if report["problems"] or report["manifest_differences"]:
        verdict.append(f"{len(report['problems'])} problem(s), "
                       f"{len(report['manifest_differences'])} manifest difference(s)")
    if first and first["layer"] is not None:
        verdict.append(f"first departure in computation order: layer {first['layer']} ({first['type']}, "
                       f"{first['phase']} pass), "
                       f"{', '.join(first['arrays'])} (rel. error {first['relative_error']:.3g})")
    elif first:
        verdict.append(f"departing outside the layers: {', '.join(first['arrays'])}")
    lines.append("; ".join(verdict))
    return "\n".join(lines)


def json_safe(report):
    """The report with non-finite numbers as strings ("nan", "inf"), so json.dumps writes strict JSON."""
    if isinstance(report, dict):
        return {key: json_safe(value) for key, value in report.items()}
    if isinstance(report, list):
        return [json_safe(value) for value in report]
    if isinstance(report, float) and not math.isfinite(report):
        return str(report)
    return report
