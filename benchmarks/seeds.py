"""Train one recipe with several seeds and benchmark every run: the demo's results as a distribution, not one draw.

    python -m benchmarks.seeds --seeds 0 1 2                       # the main command's recipe, all six tasks
    python -m benchmarks.seeds --seeds 0 \\
        --config experiments/demo/pretrain.yaml experiments/demo/ablations/asr_only.yaml \\
        --runs runs/ablations/asr-only --publish docs/demo/ablations/asr-only --tasks librispeech-asr
    python -m benchmarks.table docs/demo/seeds --readme README.md --name seeds   # median run and range over seeds

Each seed trains in its own folder, ``RUNS/seed{S}``: the recipe's paths under its ``trainer.default_root_dir`` are
moved there by a second config file written next to the run (``RUNS/seed{S}/overrides.yaml``, read after the
recipe, so the run is ``anygpt fit --config RECIPE --config RUNS/seed{S}/overrides.yaml``). Work already done is
kept: a run with an export is not trained again, one with ``checkpoints/last.ckpt`` resumes from it, and a task whose
published file exists is not benchmarked again. Each run's output goes to ``RUNS/seed{S}/fit.log`` and
``RUNS/seed{S}/benchmark-TASK.log``; the published results record ``train_seed`` (from the export).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from benchmarks.table import ORDER

RECIPE = Path("experiments/demo/pretrain.yaml")


def _moved(value: Any, old_roots: Sequence[str], new_root: str) -> Any:
    """``value`` with every string path under one of ``old_roots`` moved under ``new_root`` (lists and dicts
    walked; each path moved once, from the longest root it is under)."""
    if isinstance(value, str):
        for old in sorted((r.rstrip("/") for r in old_roots), key=len, reverse=True):
            if value.rstrip("/") == old or value.startswith(old + "/"):
                return new_root + value.rstrip("/")[len(old):]
        return value
    if isinstance(value, list):
        return [_moved(v, old_roots, new_root) for v in value]
    if isinstance(value, dict):
        return {k: _moved(v, old_roots, new_root) for k, v in value.items()}
    return value


def overrides(recipe: Sequence[Path], seed: int, run_dir: Path) -> dict[str, Any]:
    """The last config of seed ``seed``'s run: its seed and the recipe's trainer paths moved into ``run_dir``.

    ``recipe`` is one config or a base and overlays (read in order, later trainer keys replacing earlier ones, as
    ``anygpt fit`` reads them); paths under any of their ``trainer.default_root_dir`` move."""
    trainer: dict[str, Any] = {}
    roots = []
    for path in recipe:
        part = (yaml.safe_load(path.read_text()) or {}).get("trainer") or {}
        trainer.update(part)
        roots += [part["default_root_dir"]] if part.get("default_root_dir") else []
    if not roots:
        raise ValueError(f"{', '.join(map(str, recipe))} set no trainer.default_root_dir: the run's outputs cannot be "
                         "moved per seed; set one and put the loggers', checkpoints' and export's folders under it")
    moved = _moved({key: trainer[key] for key in ("default_root_dir", "logger", "callbacks") if key in trainer},
                   roots, str(run_dir))
    return {"seed_everything": seed, "trainer": moved}


def export_dir(run_overrides: dict[str, Any]) -> Path:
    """Where the run's ``ExportBundle`` writes the model."""
    for callback in run_overrides["trainer"].get("callbacks") or []:
        if isinstance(callback, dict) and str(callback.get("class_path", "")).endswith("ExportBundle"):
            return Path(callback["init_args"]["dirpath"])
    raise ValueError("the recipe has no anygpt.checkpoints.ExportBundle callback: there would be nothing to benchmark")


def run_logged(command: list[str], log: Path, tag: str = "seeds") -> None:
    """Run ``command`` with its output in ``log``; a failure exits naming the log's last lines."""
    print(f"[{tag}] {' '.join(command)}  (output: {log})", flush=True)
    start = time.perf_counter()
    with log.open("w") as out:
        code = subprocess.call(command, stdout=out, stderr=subprocess.STDOUT)
    if code != 0:
        tail = "".join(log.read_text(errors="replace").splitlines(keepends=True)[-20:])
        raise SystemExit(f"[{tag}] failed (exit {code}) after {time.perf_counter() - start:.0f} s; the end of {log}:\n"
                         f"{tail}")
    print(f"[{tag}] done in {time.perf_counter() - start:.0f} s", flush=True)


def run_seed(recipe: Sequence[Path], seed: int, runs: Path, publish: Path, tasks: Sequence[str], anygpt: str) -> None:
    run_dir = runs / f"seed{seed}"
    run_dir.mkdir(parents=True, exist_ok=True)
    config = overrides(recipe, seed, run_dir)
    config_file = run_dir / "overrides.yaml"
    config_file.write_text(yaml.safe_dump(config, sort_keys=False))
    export = export_dir(config)
    if not (export / "anygpt.json").exists():
        configs = [a for path in [*recipe, config_file] for a in ("--config", str(path))]
        command = [anygpt, "fit", *configs]
        last = min(run_dir.rglob("last.ckpt"), default=None)
        if last is not None:
            command += ["--ckpt_path", str(last)]
        run_logged(command, run_dir / "fit.log")
    for task in tasks:
        published = publish / f"seed{seed}" / f"{task}.json"
        if published.exists():
            print(f"[seeds] {published} exists: seed {seed} {task} kept", flush=True)
            continue
        # each run's own output folder: runs of two seeds may be benchmarked at once (their media would collide)
        run_logged([anygpt, "benchmark", task, "--ckpt", str(export), "--out", str(run_dir / "benchmarks" / task),
              "--publish", str(published)], run_dir / f"benchmark-{task}.log")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", required=True, help="training seeds (seed_everything)")
    parser.add_argument("--config", type=Path, nargs="+", default=[RECIPE],
                        help="the recipe: one config, or a base and overlays (default: the main command's)")
    parser.add_argument("--runs", type=Path, default=Path("runs/seeds"), help="one training folder per seed here")
    parser.add_argument("--publish", type=Path, default=Path("docs/demo/seeds"),
                        help="results files go to PUBLISH/seed{S}/TASK.json")
    parser.add_argument("--tasks", nargs="*", default=list(ORDER), help="benchmark tasks (none: train only)")
    parser.add_argument("--anygpt", default=str(Path(sys.executable).with_name("anygpt")),
                        help="the anygpt command (default: the one next to this Python)")
    args = parser.parse_args(argv)
    for path in args.config:
        if not path.exists():
            parser.error(f"--config {path} does not exist")
    for seed in args.seeds:
        run_seed(args.config, seed, args.runs, args.publish, args.tasks, args.anygpt)
    return 0


if __name__ == "__main__":
    sys.exit(main())
