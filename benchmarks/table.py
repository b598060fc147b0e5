"""The README's benchmark table, generated from committed results.json files (never typed by hand).

    python -m benchmarks.table docs/demo/results                         # print the table (markdown)
    python -m benchmarks.table docs/demo/results --readme README.md      # rewrite the table inside README.md
    python -m benchmarks.table docs/demo/results --readme README.md --check   # fail if README.md is out of date
    python -m benchmarks.table docs/demo/seeds --readme README.md --name seeds  # a distribution over seeds
    python -m benchmarks.table docs/demo/long --readme README.md --name long    # one run's learning curve

A folder of ``seed{S}/`` folders (what ``python -m benchmarks.seeds`` publishes: one training run per seed, each
benchmarked) gives the distribution table instead: per task and metric the median run with its interval, the range
over seeds, and each baseline's paired difference in the median run with the number of seeds whose model beats it.
A folder of ``step{N}/`` folders (``python -m benchmarks.curve``: one run's kept checkpoints) gives its learning
curve instead, a column per step.

The results files are what ``anygpt benchmark TASK ... --publish docs/demo/results/TASK.json`` writes (or
``--collect runs/benchmarks`` copies from earlier runs' output folders); the text under each table says how to read it.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.tasks.distances import value_text

START, END = "<!-- benchmark-table:start -->", "<!-- benchmark-table:end -->"
ORDER = ("coco-caption", "coco-t2i", "librispeech-asr", "vctk-tts", "musiccaps-caption", "musiccaps-gen")
NAMES = {"cider": "CIDEr-D", "wer": "WER", "clip_score": "CLIP score", "clap_score": "CLAP score",
         "speaker_similarity": "speaker sim.", "dnsmos_ovrl": "DNSMOS OVRL"}


def load_results(folder: str | Path) -> list[dict[str, Any]]:
    """Every results file (``*.json`` with a task and metrics) of ``folder``, in the paper's task order, built-in
    tasks first. Other files in the folder are skipped, each with a line on stderr saying why."""
    files = sorted(Path(folder).glob("*.json"))
    results = []
    for f in files:
        try:
            data = json.loads(f.read_text())
        except (OSError, ValueError) as err:
            print(f"[table] skipping {f}: not JSON ({err})", file=sys.stderr)
            continue
        if not isinstance(data, dict) or "task" not in data or "metrics" not in data:
            print(f"[table] skipping {f}: not a benchmark results.json (no task/metrics)", file=sys.stderr)
            continue
        results.append(data)
    if not results:
        raise FileNotFoundError(f"no results files (*.json with task and metrics) in {folder}: write them with "
                                f"anygpt benchmark TASK --publish {folder}/TASK.json, or collect earlier runs with "
                                "--collect")
    rank = {name: i for i, name in enumerate(ORDER)}
    return sorted(results, key=lambda r: (rank.get(r["task"], len(ORDER)), r["task"]))


def load_runs(folder: str | Path, kind: str = "seed") -> dict[int, list[dict[str, Any]]]:
    """``folder/{kind}{N}/TASK.json`` -> N -> its results: ``seed`` folders hold one training run per seed (what
    ``benchmarks.seeds`` publishes), ``step`` folders one run's checkpoints (``benchmarks.curve``). A results file whose
    training record names another seed or step than its folder is refused (the table would mix runs)."""
    recorded_as = {"seed": "train_seed", "step": "steps"}[kind]
    runs = {}
    for sub in sorted(Path(folder).glob(f"{kind}*/")):
        if not sub.name[len(kind):].isdigit():
            continue
        number, results = int(sub.name[len(kind):]), load_results(sub)
        for r in results:
            recorded = (r.get("training") or {}).get(recorded_as, r.get(recorded_as))
            if recorded is not None and recorded != number:
                raise ValueError(f"{sub}/{r['task']}.json measured a model at {kind} {recorded}, not {number}: "
                                 f"publish each result under {kind}<its {recorded_as}>/")
        runs[number] = results
    if not runs:
        command = ("python -m benchmarks.seeds --seeds 0 1 2" if kind == "seed" else
                   "python -m benchmarks.curve RUN/checkpoints")
        raise FileNotFoundError(f"no {kind}*/ folders of results files in {folder}: make them with {command} "
                                f"--publish {folder}")
    return runs


def load_seed_runs(folder: str | Path) -> dict[int, list[dict[str, Any]]]:
    return load_runs(folder, "seed")


def collect(runs: str | Path, into: str | Path) -> list[Path]:
    """Copy ``runs/*/results.json`` (one folder per task, as `anygpt benchmark` writes them) to ``into/TASK.json``."""
    copied = []
    for found in sorted(Path(runs).glob("*/results.json")):
        task = json.loads(found.read_text())["task"]
        target = Path(into) / f"{task}.json"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(found, target)
        copied.append(target)
    if not copied:
        raise FileNotFoundError(f"no */results.json under {runs}")
    return copied


def _num(block: dict[str, Any] | None, signed: bool = False) -> str:
    if block is None or block.get("value") is None:
        return "n/a"
    spec = "+.3f" if signed else ".3f"
    low, high = block["interval"]
    return f"{block['value']:{spec}} [{low:{spec}}, {high:{spec}}]"


def render(results: Sequence[dict[str, Any]]) -> str:
    """The markdown table (one row per task and metric) and the commands behind it."""
    lines = ["| task | metric | n (failed) | model | baselines (same run): score; model - baseline | "
             "reference: real pairs |", "|---|---|---|---|---|---|"]
    for r in results:
        for metric, block in r["metrics"].items():
            arrow = "higher is better" if block["higher_is_better"] else "lower is better"
            cells = []
            for name, b in r["baselines"].items():
                if metric not in b["metrics"]:
                    continue
                diff = b["difference"].get(metric)
                verdict = ""
                if diff is not None:
                    verdict = f"; {_num(diff, signed=True)} " + ("**beats**" if diff["beats"] else "does not beat")
                cells.append(f"{name}: {_num(b['metrics'][metric])}{verdict}")
            ref = r.get("reference") or {}
            reference = _num(ref.get("metrics", {}).get(metric)) if ref.get("metrics", {}).get(metric) else "-"
            lines.append(f"| `{r['task']}` | {NAMES.get(metric, metric)} ({arrow}) | {r['n']} ({r['n_failed']}) | "
                         f"{_num(block)} | {'<br>'.join(cells) or '-'} | {reference} |")
        for d in r.get("set_distances", {}).values():  # set distances: no interval, a floor instead of a ceiling
            cells = [f"{name}: {value_text(b)}" for name, b in d["baselines"].items()]
            lines.append(f"| `{r['task']}` | {d['name']} (lower is better) | {r['n']} ({r['n_failed']}) | "
                         f"{value_text(d['model'])} | {'<br>'.join(cells) or '-'} | "
                         f"floor, real half vs real half: {value_text(d['floor'])} |")
    confidence = {int(round(r.get("confidence", 0.95) * 100)) for r in results}
    lines += ["", f"Intervals: {'/'.join(map(str, sorted(confidence)))}% bootstrap over the evaluated items "
                  "(corpus WER and CIDEr-D recomputed on each redraw); model - baseline is paired, and **beats** "
                  "means its whole interval is on the better side of zero. Failed generations stay in n and are "
                  "scored as what they are (see each task's notes)."]
    if any(r.get("set_distances") for r in results):
        lines[-1] += (" Set distances (FD/FID/FAD, lower is better) have no per-item values to bootstrap: each is "
                      "shown with its n (generated vs real vectors; failed generations left out) and read against "
                      "its floor, the distance between two random halves of the real set in the same run.")
    lines += ["", "Each row comes from:", ""]
    for r in results:
        lines.append(f"- `{r['task']}` (judge: {r['judge']}): `{r['command']}`")
    return "\n".join(lines) + "\n"


def render_distribution(runs: dict[int, list[dict[str, Any]]]) -> str:
    """The table over seeds: per task and metric, the median run (its seed, value and interval), the range over seeds
    and, for each baseline, the median run's paired difference and in how many seeds the model beats it."""
    seeds = sorted(runs)
    by_task: dict[str, dict[int, dict[str, Any]]] = {}
    for seed in seeds:
        for r in runs[seed]:
            by_task.setdefault(r["task"], {})[seed] = r
    lines = ["| task | metric | seeds | median run: model | range over seeds | baselines (median run): score; "
             "model - baseline; seeds that beat it | reference: real pairs |", "|---|---|---|---|---|---|---|"]
    for task, per_seed in by_task.items():
        first = next(iter(per_seed.values()))
        for metric, block in first["metrics"].items():
            scored = sorted((r["metrics"][metric]["value"], seed) for seed, r in per_seed.items()
                            if r["metrics"].get(metric, {}).get("value") is not None)
            if not scored:
                continue
            _, median_seed = scored[(len(scored) - 1) // 2]
            median = per_seed[median_seed]
            arrow = "higher is better" if block["higher_is_better"] else "lower is better"
            spread = f"{scored[0][0]:.3f} (seed {scored[0][1]}) - {scored[-1][0]:.3f} (seed {scored[-1][1]})"
            cells = []
            for name, b in median["baselines"].items():
                if metric not in b["metrics"]:
                    continue
                diff = b["difference"].get(metric)
                wins = sum(bool(r["baselines"].get(name, {}).get("difference", {}).get(metric, {}).get("beats"))
                           for r in per_seed.values())
                verdict = (f"; {_num(diff, signed=True)} " + ("**beats**" if diff["beats"] else "does not beat")
                           if diff is not None else "")
                cells.append(f"{name}: {_num(b['metrics'][metric])}{verdict}; {wins} of {len(per_seed)}")
            ref = (median.get("reference") or {}).get("metrics", {}).get(metric)
            lines.append(f"| `{task}` | {NAMES.get(metric, metric)} ({arrow}) | {len(scored)} | "
                         f"{_num(median['metrics'][metric])} (seed {median_seed}) | {spread} | "
                         f"{'<br>'.join(cells) or '-'} | {_num(ref) if ref else '-'} |")
        for key, d in (first.get("set_distances") or {}).items():  # lower is better; no interval, a floor
            scored = sorted((r["set_distances"][key]["model"]["value"], seed) for seed, r in per_seed.items()
                            if (r.get("set_distances") or {}).get(key, {}).get("model", {}).get("value") is not None)
            if not scored:
                continue
            _, median_seed = scored[(len(scored) - 1) // 2]
            block = per_seed[median_seed]["set_distances"][key]
            spread = f"{scored[0][0]:.3f} (seed {scored[0][1]}) - {scored[-1][0]:.3f} (seed {scored[-1][1]})"
            cells = [f"{name}: {value_text(b)}" for name, b in block["baselines"].items()]
            lines.append(f"| `{task}` | {d['name']} (lower is better) | {len(scored)} | {value_text(block['model'])} "
                         f"(seed {median_seed}) | {spread} | {'<br>'.join(cells) or '-'} | floor, real half vs real "
                         f"half: {value_text(block['floor'])} |")
    trainings = {json.dumps(r.get("training"), sort_keys=True) for results in runs.values() for r in results}
    records = [json.loads(t) for t in trainings if t != "null"]
    hardware = sorted({f"{t.get('steps')} steps, {t.get('precision')}, {t.get('device')}, {t.get('threads')} "
                       f"thread{'' if t.get('threads') == 1 else 's'}" for t in records})
    trained = "; ".join(hardware) or "training record not in the results"
    lines += ["", f"Seeds {', '.join(map(str, seeds))} of the same recipe on one machine ({trained}). "
              "The median run is the middle one of the seeds for that metric; its interval is the 95% bootstrap over "
              "the evaluated items, as in the single-run table; the range is over seeds.",
              "", "Each run comes from:", ""]
    for seed in seeds:
        lines += [f"- seed {seed}: " + "; ".join(f"`{r['command']}`" for r in runs[seed])]
    return "\n".join(lines) + "\n"


def render_curve(runs: dict[int, list[dict[str, Any]]]) -> str:
    """One run's learning curve: per task and metric a column per kept step, each the model's value with its interval
    and how many of that step's baselines it beats (paired interval excluding zero)."""
    steps = sorted(runs)
    by_task: dict[str, dict[int, dict[str, Any]]] = {}
    for step in steps:
        for r in runs[step]:
            by_task.setdefault(r["task"], {})[step] = r
    lines = ["| task | metric | " + " | ".join(f"step {s}" for s in steps) + " |", "|---|---|" + "---|" * len(steps)]
    for task, per_step in by_task.items():
        first = next(iter(per_step.values()))
        for metric, block in first["metrics"].items():
            cells = []
            for step in steps:
                r = per_step.get(step)
                if r is None or metric not in r["metrics"]:
                    cells.append("-")
                    continue
                diffs = [b["difference"][metric] for b in r["baselines"].values() if b["difference"].get(metric)]
                beaten = sum(bool(d["beats"]) for d in diffs)
                cells.append(f"{_num(r['metrics'][metric])}; beats {beaten} of {len(diffs)}" if diffs else
                             _num(r["metrics"][metric]))
            arrow = "higher is better" if block["higher_is_better"] else "lower is better"
            lines.append(f"| `{task}` | {NAMES.get(metric, metric)} ({arrow}) | " + " | ".join(cells) + " |")
        for key, d in (first.get("set_distances") or {}).items():
            cells = [value_text(per_step[s]["set_distances"][key]["model"])
                     if key in (per_step.get(s, {}).get("set_distances") or {}) else "-" for s in steps]
            lines.append(f"| `{task}` | {d['name']} (lower is better) | " + " | ".join(cells) + " |")
    records = [r.get("training") or {} for results in runs.values() for r in results]
    seeds = sorted({str(t.get("train_seed")) for t in records})
    lines += ["", f"Checkpoints of one training run (seed {', '.join(seeds)}) at steps {', '.join(map(str, steps))}; "
              "each cell is the model's score with its 95% bootstrap interval and how many of the task's baselines "
              "(measured in the same benchmark run) its paired difference beats.", "", "Each column comes from:", ""]
    for step in steps:
        lines += [f"- step {step}: " + "; ".join(f"`{r['command']}`" for r in runs[step])]
    return "\n".join(lines) + "\n"


def markers(name: str | None = None) -> tuple[str, str]:
    """The comment lines around a table: ``benchmark-table`` or, for a second table in the same file,
    ``benchmark-table:NAME``."""
    if name is None:
        return START, END
    if not name.replace("-", "").isalnum():
        raise ValueError(f"table name {name!r}: use letters, digits and '-'")
    return f"<!-- benchmark-table:{name}:start -->", f"<!-- benchmark-table:{name}:end -->"


def replace_in(text: str, table: str, source: str = "README", name: str | None = None) -> str:
    """``text`` with everything between the markers of table ``name`` replaced by ``table``."""
    start, end = markers(name)
    if start not in text or end not in text:
        raise ValueError(f"{source} has no {start} ... {end} markers around its benchmark table")
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    return f"{head}{start}\n{table}{end}{tail}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, help="folder of results files (TASK.json)")
    parser.add_argument("--collect", type=Path, default=None,
                        help="first copy RUNS/*/results.json (anygpt benchmark output folders) into the folder")
    parser.add_argument("--readme", type=Path, default=None, help="rewrite the table between the markers of this file")
    parser.add_argument("--check", action="store_true", help="with --readme: fail if the file's table is out of date")
    parser.add_argument("--name", default=None,
                        help="with --readme: the table between <!-- benchmark-table:NAME:start/end --> markers")
    args = parser.parse_args(argv)
    if args.collect is not None:
        for path in collect(args.collect, args.results):
            print(f"copied {path}", file=sys.stderr)
    if any(p.is_dir() and p.name[4:].isdigit() for p in args.results.glob("seed*")):
        table = render_distribution(load_runs(args.results, "seed"))
    elif any(p.is_dir() and p.name[4:].isdigit() for p in args.results.glob("step*")):
        table = render_curve(load_runs(args.results, "step"))
    else:
        table = render(load_results(args.results))
    if args.readme is None:
        print(table, end="")
        return 0
    text = args.readme.read_text()
    updated = replace_in(text, table, str(args.readme), args.name)
    if args.check:
        if updated != text:
            named = f" --name {args.name}" if args.name else ""
            print(f"{args.readme}: the benchmark table differs from {args.results}; regenerate it with "
                  f"python -m benchmarks.table {args.results} --readme {args.readme}{named}", file=sys.stderr)
            return 1
        return 0
    args.readme.write_text(updated)
    print(f"wrote the benchmark table into {args.readme}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
