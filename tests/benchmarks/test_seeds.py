"""Several seeds of one recipe: each run in its own folder, work already done kept, the table over seeds."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from benchmarks import seeds, table

ROOT = Path(__file__).resolve().parents[2]
RECIPE = ROOT / "experiments/demo/pretrain.yaml"


def test_every_output_of_the_recipe_moves_into_the_seeds_folder():
    config = seeds.overrides([RECIPE], 3, Path("runs/s/seed3"))
    assert config["seed_everything"] == 3
    text = yaml.safe_dump(config)
    assert "runs/demo" not in text  # loggers, checkpoints and the export all moved
    assert config["trainer"]["default_root_dir"] == "runs/s/seed3"
    assert seeds.export_dir(config) == Path("runs/s/seed3/export")
    assert {lg["init_args"]["save_dir"] for lg in config["trainer"]["logger"]} == {"runs/s/seed3"}


def test_an_overlay_with_its_own_root_moves_once(tmp_path):
    overlay = tmp_path / "asr.yaml"
    overlay.write_text("trainer:\n  default_root_dir: runs/ablations/asr\n")
    config = seeds.overrides([RECIPE, overlay], 0, Path("runs/ablations/asr/seed0"))
    assert config["trainer"]["default_root_dir"] == "runs/ablations/asr/seed0"
    assert seeds.export_dir(config) == Path("runs/ablations/asr/seed0/export")


def test_a_recipe_without_a_root_or_an_export_is_refused(tmp_path):
    bare = tmp_path / "bare.yaml"
    bare.write_text("trainer: {max_steps: 3}\n")
    with pytest.raises(ValueError, match="default_root_dir"):
        seeds.overrides([bare], 0, tmp_path / "seed0")
    with pytest.raises(ValueError, match="ExportBundle"):
        seeds.export_dir({"trainer": {"callbacks": []}})


FAKE_ANYGPT = '''\
import json, sys
from pathlib import Path
args = sys.argv[1:]
Path("calls.jsonl").open("a").write(json.dumps(args) + "\\n")
if args[0] == "fit":
    import yaml
    config = yaml.safe_load(Path(args[-1]).read_text())
    export = [c for c in config["trainer"]["callbacks"] if c["class_path"].endswith("ExportBundle")][0]
    Path(export["init_args"]["dirpath"]).mkdir(parents=True)
    (Path(export["init_args"]["dirpath"]) / "anygpt.json").write_text("{}")
elif args[0] == "benchmark":
    if args[1] == "broken":
        print("the task failed"); sys.exit(3)
    out = Path(args[args.index("--publish") + 1]); out.parent.mkdir(parents=True, exist_ok=True); out.write_text("{}")
'''


def test_runs_train_then_benchmark_and_keep_finished_work(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    fake = tmp_path / "fake_anygpt"
    fake.write_text(f"#!{sys.executable}\n{FAKE_ANYGPT}")
    fake.chmod(0o755)
    argv = ["--seeds", "0", "1", "--config", str(RECIPE), "--runs", "runs/s", "--publish", "pub",
            "--tasks", "coco-caption", "vctk-tts", "--anygpt", str(fake)]
    assert seeds.main(argv) == 0
    calls = [json.loads(line) for line in Path("calls.jsonl").read_text().splitlines()]
    assert [c[:2] for c in calls] == [["fit", "--config"], ["benchmark", "coco-caption"], ["benchmark", "vctk-tts"]] * 2
    assert calls[0][-1] == "runs/s/seed0/overrides.yaml" and calls[1][3] == "runs/s/seed0/export"
    assert calls[1][4:6] == ["--out", "runs/s/seed0/benchmarks/coco-caption"]  # seeds never share an output folder
    assert (tmp_path / "pub/seed1/vctk-tts.json").exists()
    Path("calls.jsonl").unlink()
    (tmp_path / "pub/seed1/vctk-tts.json").unlink()
    assert seeds.main(argv) == 0  # trained and published runs are kept; only the missing result is made again
    again = [json.loads(line)[:2] for line in Path("calls.jsonl").read_text().splitlines()]
    assert again == [["benchmark", "vctk-tts"]]
    with pytest.raises(SystemExit, match=r"(?s)failed \(exit 3\).*the task failed"):
        seeds.main([*argv[:-4], "--tasks", "broken", "--anygpt", str(fake)])


def _result(task: str, seed: int | None, value: float, beats: bool) -> dict:
    block = {"value": value, "interval": [value - 0.05, value + 0.05], "higher_is_better": False}
    diff = {"value": value - 1.0, "interval": [value - 1.1, value - 0.9], "beats": beats}
    return {"task": task, "metric": "wer", "metrics": {"wer": block}, "n": 10, "n_failed": 0,
            "baselines": {"empty": {"metrics": {"wer": {"value": 1.0, "interval": [1.0, 1.0]}},
                                    "difference": {"wer": diff}}},
            "reference": None, "judge": "none", "command": f"anygpt benchmark {task} --ckpt runs/s/seed{seed}/export",
            "set_distances": {"fd": {"name": "FD (judge features)", "model": {"value": 2 * value, "n_real": 10,
                                                                             "n_generated": 10, "n_failed": 0},
                                     "baselines": {}, "floor": {"value": 0.1, "n_real": 5, "n_generated": 5}}},
            "train_seed": seed, "training": {"train_seed": seed, "steps": 2000, "precision": "bf16-mixed",
                                             "device": "AMD EPYC", "threads": 2, "world_size": 1}}


def test_the_distribution_table_shows_the_median_run_the_range_and_how_many_seeds_beat(tmp_path):
    for seed, value, beats in ((0, 0.90, False), (1, 0.70, True), (2, 0.80, True)):
        (tmp_path / f"seed{seed}").mkdir()
        (tmp_path / f"seed{seed}/librispeech-asr.json").write_text(json.dumps(_result("librispeech-asr", seed, value,
                                                                                      beats)))
    text = table.render_distribution(table.load_seed_runs(tmp_path))
    row = next(line for line in text.splitlines() if line.startswith("| `librispeech-asr`"))
    assert "| 3 | 0.800 [0.750, 0.850] (seed 2) | 0.700 (seed 1) - 0.900 (seed 0) |" in row
    assert "empty: 1.000 [1.000, 1.000]; -0.200 [-0.300, -0.100] **beats**; 2 of 3" in row
    assert "2000 steps, bf16-mixed, AMD EPYC, 2 threads" in text
    fd = next(line for line in text.splitlines() if "FD (judge features)" in line)
    assert "| 1.600 (n 10 vs 10 real) (seed 2) | 1.400 (seed 1) - 1.800 (seed 0) |" in fd and "0.100 (n 5 vs 5" in fd
    assert "`anygpt benchmark librispeech-asr --ckpt runs/s/seed1/export`" in text
    readme = tmp_path / "README.md"
    readme.write_text(textwrap.dedent(f"""\
        # x
        {table.markers('seeds')[0]}
        {table.markers('seeds')[1]}
        """))
    assert table.main([str(tmp_path), "--readme", str(readme), "--name", "seeds"]) == 0
    assert row in readme.read_text()


def test_a_result_of_another_seed_is_refused(tmp_path):
    (tmp_path / "seed1").mkdir()
    (tmp_path / "seed1/librispeech-asr.json").write_text(json.dumps(_result("librispeech-asr", 2, 0.8, True)))
    with pytest.raises(ValueError, match="seed 2, not 1"):
        table.load_seed_runs(tmp_path)
