"""A run's outputs: ``results.json`` (everything, with the command that reproduces it), ``report.html`` (numbers,
then inputs and outputs to look at and listen to) and the summary printed at the end. Formatting lives here only."""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from anygpt.htmlpage import HtmlPage
from anygpt.media import MEDIA_KINDS, MediaKind, kind_of_file
from anygpt.modalities.registry import media_kind_of
from benchmarks.tasks.distances import distance_lines, distance_table


@dataclass
class Row:
    """One item for the report: (label, value, kind) cells. ``kind`` is "text" or a media kind name; media cells show
    as the kind's HTML element (image, audio player) or a download link."""

    cells: list[tuple[str, Any, str]] = field(default_factory=list)

    def text(self, label: str, value: Any) -> Row:
        self.cells.append((label, value, "text"))
        return self

    def media(self, label: str, path: str | Path | None, modality: str | None = None) -> Row:
        """A media file (None: the model produced none), shown as the media kind of ``modality`` (a registered
        modality's name), or else the kind its suffix says."""
        found: MediaKind | None = media_kind_of(modality) if modality is not None else None
        found = found or (kind_of_file(path) if path is not None else None)
        self.cells.append((label, path, found.name if found else "download"))
        return self


def sample_rows(n: int, k: int) -> list[int]:
    """Up to ``k`` item indices spread evenly over ``n`` items (the report's sample)."""
    if n <= k:
        return list(range(n))
    step = n / k
    return [math.floor(i * step) for i in range(k)]


def write_outputs(results: dict[str, Any], rows: Sequence[Row], out_dir: Path, publish: Path | None) -> None:
    """results.json (and its published copy), report.html with inputs copied next to it; prints the summary."""
    out_dir.mkdir(parents=True, exist_ok=True)
    text = json.dumps(results, indent=2)
    (out_dir / "results.json").write_text(text)
    if publish is not None:
        Path(publish).parent.mkdir(parents=True, exist_ok=True)
        Path(publish).write_text(text)
    write_report(results, rows, out_dir)
    print(summary(results))


def write_report(results: dict[str, Any], rows: Sequence[Row], out_dir: Path) -> Path:
    page = HtmlPage(f"{results['task']}: {results['metric']} = {_fmt(results)}")
    page.heading(f"Scores on {results['n']} items ({results['n_failed']} failed), "
                 f"{int(round(results['confidence'] * 100))}% bootstrap intervals")
    header, table = scores_table(results)
    page.table(header, table)
    if results.get("set_distances"):
        page.heading("Set distances (lower is better; no bootstrap over items: read against the floor and n)")
        page.table(*distance_table(results["set_distances"]))
    page.heading("Run")
    page.table(["", ""], [line for line in summary_lines(results) if not line[0].startswith(
        ("model", "baseline ", "reference", "set distance"))])
    if rows:
        page.heading(f"Samples ({len(rows)} of {results['n']})")
        header = [label for label, _, _ in rows[0].cells]
        page.table(header, [[_cell(v, kind, i, out_dir) for _, v, kind in row.cells] for i, row in enumerate(rows)],
                   escape=False)
    return page.write(out_dir / "report.html")


def _cell(value: Any, kind: str, row: int, out_dir: Path) -> str:
    if kind == "text":
        if isinstance(value, (list, tuple)):
            return "<br>".join(HtmlPage.text(v) for v in value)
        return HtmlPage.text(value if value is not None else "")
    if value is None:
        return '<span class="note">(none)</span>'
    path = Path(value)
    if not path.resolve().is_relative_to(out_dir.resolve()):  # inputs: copy next to the report
        copy = out_dir / "media" / "inputs" / f"{row:04d}-{path.name}"
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, copy)
        path = copy
    return HtmlPage.media(path, MEDIA_KINDS.get(kind), out_dir)


def summary_lines(results: dict[str, Any]) -> list[tuple[str, str]]:
    """(label, text) lines: the scores with intervals, each baseline with the paired difference, the rest."""
    def scores(metrics: dict[str, Any]) -> str:
        return ", ".join(f"{m} {_fmt(v)}" for m, v in metrics.items())

    lines = [("model", f"{scores(results['metrics'])} on {results['n']} items ({results['n_failed']} failed)")]
    for name, b in results["baselines"].items():
        verdicts = [f"{m}: model - baseline {_fmt(d, signed=True)}, {_verdict(d)}" for m, d in b["difference"].items()]
        lines.append((f"baseline {name}", f"{scores(b['metrics'])} ({b['description']}); " + "; ".join(verdicts)))
    if results.get("reference"):
        ref = results["reference"]
        lines.append(("reference", f"{scores(ref['metrics'])} ({ref['description']})"))
    confidence = int(round(results["confidence"] * 100))
    lines += [("intervals", f"{confidence}% bootstrap over items, {results['resamples']} redraws; differences paired"),
              ("judge", results["judge"]), ("decoding", json.dumps(results["decoding"])),
              ("prompt template", results["template"]),
              *[(f"{name} tokenizer", ", ".join(f"{k} {v}" for k, v in info.items()))
                for name, info in results.get("tokenizers", {}).items()],
              ("checkpoint", f"{results['ckpt']} (sha256 of its files {results['model_hash'][:12]})"),
              ("data", results["data"]), ("devices", str(results["devices"])),
              ("wall time", f"{results['wall_time_s']} s"), ("command", results["command"])]
    lines += distance_lines(results.get("set_distances", {}))
    lines += [("note", n) for n in results["notes"]]
    return lines


def scores_table(results: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """The model, each baseline and the reference as rows; per metric its score and the paired model - row
    difference with the verdict."""
    metrics = results["metrics"]
    header = ["", "what", *(f"{m} ({'higher' if v['higher_is_better'] else 'lower'} is better)"
                            for m, v in metrics.items()), *(f"model - this, {m}" for m in metrics)]
    systems = [("model", "the evaluated checkpoint", metrics, {})]
    systems += [(f"baseline: {name}", b["description"], b["metrics"], b["difference"])
                for name, b in results["baselines"].items()]
    if results.get("reference"):
        systems.append(("reference", results["reference"]["description"], results["reference"]["metrics"], {}))
    return header, [[label, what, *(_fmt(scores.get(m)) for m in metrics),
                     *("" if m not in diffs else f"{_fmt(diffs[m], signed=True)}: {_verdict(diffs[m])}"
                       for m in metrics)] for label, what, scores, diffs in systems]


def summary(results: dict[str, Any]) -> str:
    lines = summary_lines(results)
    return "\n".join([f"[benchmark] {results['task']}"] + [f"  {label}: {text}" for label, text in lines])


def fmt(value: float | None, interval: Sequence[float] | None, signed: bool = False) -> str:
    """``value [low, high]`` with three decimals; "n/a" for a missing value."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    spec = "+.3f" if signed else ".3f"
    if interval is None:
        return format(value, spec)
    return f"{value:{spec}} [{interval[0]:{spec}}, {interval[1]:{spec}}]"


def _fmt(block: dict[str, Any] | None, signed: bool = False) -> str:
    """A results block's value and interval; "" for a missing block."""
    return "" if block is None else fmt(block["value"], block["interval"], signed)


def _verdict(difference: dict[str, Any]) -> str:
    return "beats it" if difference["beats"] else "does not beat it"
