"""How set distances (`benchmarks.metrics.frechet.frechet_block` results, ``results["set_distances"]``) read in the
summary, report.html and the README table: the model's value with its n, each baseline's, and the real-halves floor.
There is no interval: a set distance has no per-item values to bootstrap over.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def value_text(part: Mapping[str, Any]) -> str:
    """"1.234 (n 98 vs 100 real)"; "n/a" where a set had fewer than 2 vectors."""
    shown = "n/a (fewer than 2 in a set)" if part["value"] is None else f"{part['value']:.3f}"
    return f"{shown} (n {part['n_generated']} vs {part['n_real']} real)"


def distance_lines(distances: Mapping[str, Mapping[str, Any]]) -> list[tuple[str, str]]:
    """(label, text) summary lines, one per set distance."""
    lines = []
    for block in distances.values():
        model = block["model"]
        parts = [f"model {value_text(model)}" + (f", {model['n_failed']} failed left out" if model["n_failed"] else "")]
        parts += [f"{name} {value_text(b)}" for name, b in block["baselines"].items()]
        parts.append(f"floor: real half vs real half {value_text(block['floor'])}")
        text = "; ".join(parts) + f" (lower is better; on {block['features']})"
        lines.append((f"set distance {block['name']}", text))
    return lines


def distance_table(distances: Mapping[str, Mapping[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """report.html's table: one row per distance and set (model, baselines, floor)."""
    rows = []
    for block in distances.values():
        rows.append([block["name"], "model", "the generated set", value_text(block["model"])])
        rows += [[block["name"], f"baseline: {name}", b["description"], value_text(b)]
                 for name, b in block["baselines"].items()]
        rows.append([block["name"], "floor", block["floor"]["description"], value_text(block["floor"])])
    return ["distance", "set vs the real set", "what", "value (lower is better)"], rows
