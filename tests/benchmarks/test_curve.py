"""One run's kept checkpoints benchmarked step by step: the learning curve and its table."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from benchmarks import curve, table
from tests.benchmarks.test_seeds import FAKE_ANYGPT, _result


def _kept(folder: Path, *steps: int) -> Path:
    folder.mkdir(parents=True)
    for step in steps:
        (folder / f"step={step}.ckpt").write_bytes(b"")
    (folder / "last.ckpt").write_bytes(b"")  # not a kept step
    return folder


def test_each_kept_step_is_benchmarked_once_into_its_own_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ckpts = _kept(tmp_path / "run/checkpoints", 1000, 2000, 10000)
    assert list(curve.kept_checkpoints(ckpts)) == [1000, 2000, 10000]  # by number, not by name
    fake = tmp_path / "fake_anygpt"
    fake.write_text(f"#!{sys.executable}\n{FAKE_ANYGPT}")
    fake.chmod(0o755)
    argv = ["run/checkpoints", "--steps", "2000", "10000", "--publish", "pub", "--tasks", "coco-caption",
            "--anygpt", str(fake)]
    assert curve.main(argv) == 0
    calls = [json.loads(line) for line in Path("calls.jsonl").read_text().splitlines()]
    assert [c[:4] for c in calls] == [["benchmark", "coco-caption", "--ckpt", "run/checkpoints/step=2000.ckpt"],
                                      ["benchmark", "coco-caption", "--ckpt", "run/checkpoints/step=10000.ckpt"]]
    assert calls[0][4:6] == ["--out", "run/curve/step2000/coco-caption"]
    assert (tmp_path / "pub/step10000/coco-caption.json").exists()
    Path("calls.jsonl").unlink()
    assert curve.main(argv) == 0 and not Path("calls.jsonl").exists()  # published results are kept
    with pytest.raises(FileNotFoundError, match="no checkpoint at step 3000 .*1000, 2000, 10000"):
        curve.main([*argv[:1], "--steps", "3000", *argv[4:]])
    with pytest.raises(FileNotFoundError, match='filename is "step=\\{step\\}"'):
        curve.kept_checkpoints(_kept(tmp_path / "empty"))


def _at(step: int, value: float, beats: bool) -> dict:
    result = _result("librispeech-asr", 0, value, beats)
    result["training"]["steps"] = step
    return result


def test_the_curve_table_has_a_column_per_step_and_refuses_a_mislabelled_result(tmp_path):
    for step, value, beats in ((2000, 0.9, False), (8000, 0.4, True)):
        (tmp_path / f"step{step}").mkdir()
        (tmp_path / f"step{step}/librispeech-asr.json").write_text(json.dumps(_at(step, value, beats)))
    text = table.render_curve(table.load_runs(tmp_path, "step"))
    assert "| task | metric | step 2000 | step 8000 |" in text
    row = next(line for line in text.splitlines() if line.startswith("| `librispeech-asr` | WER"))
    assert "| 0.900 [0.850, 0.950]; beats 0 of 1 | 0.400 [0.350, 0.450]; beats 1 of 1 |" in row
    fd = next(line for line in text.splitlines() if "FD (judge features)" in line)
    assert "1.800 (n 10 vs 10 real)" in fd and "0.800 (n 10 vs 10 real)" in fd
    assert "(seed 0) at steps 2000, 8000" in text
    assert table.main([str(tmp_path)]) == 0  # step folders are recognised
    (tmp_path / "step4000").mkdir()
    (tmp_path / "step4000/librispeech-asr.json").write_text(json.dumps(_at(2000, 0.5, True)))
    with pytest.raises(ValueError, match="at step 2000, not 4000"):
        table.load_runs(tmp_path, "step")
