"""Benchmark the checkpoints one training run kept on its way: the run's learning curve, task by task.

    anygpt fit --config experiments/demo/pretrain.yaml --config experiments/demo/long.yaml     # keeps step=N.ckpt
    python -m benchmarks.curve runs/demo-long/checkpoints --steps 2000 4000 8000 --publish docs/demo/long
    python -m benchmarks.table docs/demo/long --readme README.md --name long        # one column per step

Each ``step=N.ckpt`` in the folder (what a ``ModelCheckpoint`` with ``filename: "step={step}"`` keeps) is benchmarked
on every task into ``PUBLISH/step{N}/TASK.json``, each run with its own output folder ``RUNS/step{N}/TASK`` and log
``RUNS/step{N}/benchmark-TASK.log``. A published result is kept, so the command can be re-run as the training goes on
and only the new checkpoints are measured. The results record the step and seed the checkpoint was saved at
(``training``), and the table refuses a file whose step is not its folder's.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from pathlib import Path

from benchmarks.seeds import run_logged
from benchmarks.table import ORDER

STEP_FILE = re.compile(r"step=(\d+)\.ckpt")


def kept_checkpoints(folder: Path) -> dict[int, Path]:
    """step -> ``step=N.ckpt`` in ``folder``."""
    found = {int(m.group(1)): path for path in folder.glob("step=*.ckpt") if (m := STEP_FILE.fullmatch(path.name))}
    if not found:
        raise FileNotFoundError(f"no step=N.ckpt in {folder}: keep them with a ModelCheckpoint whose filename is "
                                '"step={step}" (auto_insert_metric_name: false, save_top_k: -1), as '
                                "experiments/demo/long.yaml does")
    return dict(sorted(found.items()))


def benchmark_steps(folder: Path, steps: Sequence[int] | None, publish: Path, runs: Path, tasks: Sequence[str],
                    anygpt: str) -> list[Path]:
    """Benchmark the kept checkpoints at ``steps`` (default: all) on ``tasks``; returns the results files."""
    kept = kept_checkpoints(folder)
    missing = sorted(set(steps or ()) - set(kept))
    if missing:
        raise FileNotFoundError(f"{folder} keeps no checkpoint at step {', '.join(map(str, missing))} (it has "
                                f"{', '.join(map(str, kept))}): train further, or choose among those")
    published = []
    for step in steps or list(kept):
        for task in tasks:
            result = publish / f"step{step}" / f"{task}.json"
            published.append(result)
            if result.exists():
                print(f"[curve] {result} exists: step {step} {task} kept", flush=True)
                continue
            out = runs / f"step{step}"
            out.mkdir(parents=True, exist_ok=True)
            run_logged([anygpt, "benchmark", task, "--ckpt", str(kept[step]), "--out", str(out / task),
                        "--publish", str(result)], out / f"benchmark-{task}.log", tag="curve")
    return published


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoints", type=Path, help="the run's folder of step=N.ckpt files")
    parser.add_argument("--steps", type=int, nargs="*", default=None, help="which kept steps (default: all)")
    parser.add_argument("--publish", type=Path, required=True, help="results go to PUBLISH/step{N}/TASK.json")
    parser.add_argument("--runs", type=Path, default=None,
                        help="benchmark output folders and logs (default: 'curve' next to the checkpoints folder)")
    parser.add_argument("--tasks", nargs="+", default=list(ORDER), help="benchmark tasks (default: all six)")
    parser.add_argument("--anygpt", default=str(Path(sys.executable).with_name("anygpt")),
                        help="the anygpt command (default: the one next to this Python)")
    args = parser.parse_args(argv)
    if not args.checkpoints.is_dir():
        parser.error(f"{args.checkpoints} is not a folder of checkpoints")
    runs = args.runs or args.checkpoints.parent / "curve"
    benchmark_steps(args.checkpoints, args.steps, args.publish, runs, args.tasks, args.anygpt)
    return 0


if __name__ == "__main__":
    sys.exit(main())
